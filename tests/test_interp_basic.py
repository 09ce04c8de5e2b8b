"""The bytecode interpreter on hand-assembled bytecode (see interp_asm.py): arithmetic,
loops, branches, calls through the call window, tail calls, traps with backtraces, fuel,
host calls, memory, globals, tables, v128, statistics."""

import pytest
from hypothesis import given, settings, strategies as st

from deadeye.interp.interpreter import generate_source
from deadeye.interp.isa.refexec import RefMachine, run as ref_run
from deadeye.ir import numerics
from deadeye.ir.errors import DecodeError, Trap
from deadeye.ir.types import FuncType, ValType

from interp_asm import F64, I32, I64, L, V128, Program, assemble, cf_program, fib_program, host

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1


def ft(params, results):
    return FuncType(tuple(params), tuple(results))


def test_add_and_imm_forms():
    p = Program([("f", ft([I32, I32], [I32]), [
        ("i32.add", 2, 0, 1),
        ("i32.mul_imm", 2, 2, 3),
        ("return", (2,)),
    ], 3)])
    for a, b in ((1, 2), (M32, 5), (123456789, 987654321)):
        assert p.call("f", a, b) == [numerics.i32_mul(numerics.i32_add(a, b), 3)]


def test_i32_readers_ignore_high_bits():
    # A mov of an i64 into a slot then read as i32 (as a wrap lowered to `mov` would).
    p = Program([("f", ft([I64], [I32]), [
        ("mov", 1, 0),
        ("i32.add_imm", 1, 1, 1),
        ("return", (1,)),
    ], 2)])
    assert p.call("f", (7 << 32) | 5) == [6]
    assert p.call("f", M64) == [0]


def _sum_loop():
    # sum of 1..n with a self-loop segment (compare-and-branch back to its start)
    return ("sum", ft([I32], [I32]), [
        ("const32", 1, 0),
        ("br_i32_eqz", 0, L("done")),
        "loop:",
        ("i32.add", 1, 1, 0),
        ("i32.sub_imm", 0, 0, 1),
        ("br_i32_ne_imm", 0, 0, L("loop")),
        "done:",
        ("return", (1,)),
    ], 2)


def test_loop():
    p = Program([_sum_loop()])
    for n in (0, 1, 10, 1000):
        assert p.call("sum", n) == [n * (n + 1) // 2 & M32]
    assert "while True" in generate_source(p.code, 0, p.inst)


def test_loop_exit_writes_back_slots_earlier_iterations_changed():
    # The runner of `head` loops through its inlined back edge (r0 changes only on that
    # path); its exit path, taken in a later iteration, leaves for the `spin` runner. That
    # exit must still write r0 back, or `spin` returns the stale value of the frame.
    items = [
        "head:",
        ("br_i32_eqz", 0, L("out")),
        ("i32.sub_imm", 0, 0, 1),
        ("jump", L("head")),
        "out:",
        ("const32", 1, 3),
        "spin:",  # a tight loop of its own: never inlined into `head`'s runner
        ("i32.sub_imm", 1, 1, 1),
        ("br_i32_ne_imm", 1, 0, L("spin")),
        ("return", (0, 1)),
    ]
    p = Program([("f", ft([I32], [I32, I32]), items, 2)])
    assert "while True" in generate_source(p.code, 0, p.inst)
    code, _ = assemble(items)
    for n in (0, 1, 4):
        ref = RefMachine(2)
        ref.regs[0] = n
        ref_run(ref, code)
        assert p.call("f", n) == ref.regs[:2] == [0, 0]


def test_select128_into_its_own_operand():
    # dst = a: the generated line must read a's slots before it defines them
    a, c = 0x0123456789ABCDEF_FEDCBA9876543210, (5 << 64) | 6
    p = Program([("f", ft([V128, V128, I32], [V128]), [
        ("select128", 0, 0, 2, 4),
        ("return", ()),
    ], 5)])
    assert p.call("f", a, c, 1) == [a]
    assert p.call("f", a, c, 0) == [c]


def test_recursive_calls_use_the_call_window():
    p = Program([fib_program()])
    fibs = [0, 1]
    for _ in range(20):
        fibs.append(fibs[-1] + fibs[-2])
    assert [p.call("fib", n)[0] for n in range(15)] == fibs[:15]
    assert p.store.depth == 0


def test_br_table_and_select():
    p = Program([("f", ft([I32, I32], [I32]), [
        ("br_table", 0, (L("a"), L("b"), L("c"))),
        "a:",
        ("const32", 0, 10),
        ("return", (0,)),
        "b:",
        ("const32", 0, 20),
        ("select_i32_gt_u", 0, 0, 1, 1, 0),  # r0 = r1 > r0 ? 20 : r1
        ("return", (0,)),
        "c:",
        ("const32", 2, 7),
        ("select", 0, 2, 1, 1),
        ("return", (0,)),
    ], 3)])
    assert p.call("f", 0, 99) == [10]
    assert p.call("f", 1, 99) == [20]
    assert p.call("f", 1, 3) == [3]
    assert p.call("f", 2, 5) == [7]
    assert p.call("f", 2, 0) == [0]
    assert p.call("f", 77, 0) == [0]  # out of range: the default


def test_multi_value_and_parallel_return():
    p = Program([
        ("swap", ft([I64, I64], [I64, I64]), [("return", (1, 0))], 2),
        ("g", ft([I64, I64], [I64, I64]), [
            ("mov", 3, 0), ("mov", 4, 1),
            ("call", 0, 3),
            ("i64.sub", 0, 3, 4),
            ("return", (0, 3)),
        ], 5),
    ])
    assert p.call("swap", 1, 2) == [2, 1]
    assert p.call("g", 10, 3) == [numerics.i64_sub(3, 10), 3]


def test_return_call_runs_in_constant_space():
    n = 1_000_000
    p = Program([("count", ft([I64, I64], [I64]), [
        ("br_i64_eq_imm", 0, 0, L("done")),
        ("i64.add", 1, 1, 0),
        ("i64.sub_imm", 0, 0, 1),
        ("return_call", 0, (0, 1)),
        "done:",
        ("return", (1,)),
    ], 2)], max_call_depth=5)
    assert p.call("count", n, 0) == [n * (n + 1) // 2]
    assert p.store.depth == 0


def test_call_stack_exhausted():
    p = Program([("inf", ft([], []), [("call", 0, 0), ("return", ())], 1)], max_call_depth=50)
    with pytest.raises(Trap) as e:
        p.call("inf")
    assert "call stack exhausted" in str(e.value)
    assert len(e.value.frames) == 50
    assert all(f[0] == "inf" and f[2] == 100 for f in e.value.frames)


def test_traps_carry_backtraces():
    p = Program([
        ("inner", ft([I32], [I32]), [
            ("const32", 1, 0),
            ("i32.div_u", 0, 0, 1),
            ("return", (0,)),
        ], 2),
        ("outer", ft([I32], [I32]), [
            ("mov", 1, 0),
            ("call", 0, 1),
            ("return", (1,)),
        ], 2),
    ])
    with pytest.raises(Trap) as e:
        p.call("outer", 5)
    assert "integer divide by zero" in str(e.value)
    # innermost first: inner's div (op #1 -> wasm offset 101), outer's call (op #1)
    assert [(f[0], f[2]) for f in e.value.frames] == [("inner", 101), ("outer", 101)]
    assert p.store.depth == 0


@pytest.mark.parametrize("items, message", [
    ([("unreachable",)], "unreachable"),
    ([("trap", 1)], "integer divide by zero"),
    ([("const32", 0, 0), ("i32.load_m0", 0, 0, 65533), ("return", (0,))],
     "out of bounds memory access"),
    ([("const32", 0, M32), ("i64.store8_m0", 0, 0, 1), ("return", (0,))],
     "out of bounds memory access"),
    ([("const32", 0, 0x80000000), ("const32", 1, M32), ("i32.div_s", 0, 0, 1), ("return", (0,))],
     "integer overflow"),
    ([("const32", 0, 0x7FC00000), ("i32.trunc_f32_s", 0, 0), ("return", (0,))],
     "invalid conversion to integer"),
    ([("const32", 0, 5), ("call_indirect", 0, 0, 0, 1), ("return", (0,))], "undefined element"),
    ([("const32", 0, 1), ("call_indirect", 0, 0, 0, 1), ("return", (0,))], "uninitialized element"),
    ([("const32", 0, 0), ("call_indirect", 1, 0, 0, 1), ("return", (0,))],
     "indirect call type mismatch"),
    ([("const32", 0, 9), ("const32", 1, 0), ("table.get", 0, 0, 0), ("return", (1,))],
     "out of bounds table access"),
])
def test_trap_kinds(items, message):
    p = Program([("f", ft([], [I32]), items, 4), ("g", ft([I32], []), [("return", ())], 1)],
                memories=1, tables=[2])
    p.inst.tables[0].elements[0] = p.inst.funcs[0]  # type () -> i32, not g's (i32) -> ()
    with pytest.raises(Trap) as e:
        p.call("f")
    assert message in str(e.value)
    assert e.value.frames and e.value.frames[0][0] == "f"
    assert e.value.frames[0][2] == 100 + len(items) - 1 - (items[-1][0] == "return")


def test_fuel():
    p = Program([("sum", ft([I32], [I32]), [
        ("fuel", 2),
        ("const32", 1, 0),
        "loop:",
        ("fuel", 3),
        ("i32.add", 1, 1, 0),
        ("i32.sub_imm", 0, 0, 1),
        ("br_i32_ne_imm", 0, 0, L("loop")),
        ("fuel", 1),
        ("return", (1,)),
    ], 2)], fuel=True)
    p.store.set_fuel(1000)
    assert p.call("sum", 10) == [55]
    assert p.store.get_fuel() == 1000 - 2 - 30 - 1
    p.store.set_fuel(20)
    with pytest.raises(Trap) as e:
        p.call("sum", 10)
    assert "all fuel consumed" in str(e.value)
    assert p.store.get_fuel() == 0
    assert e.value.frames[0][:1] == ("sum",)


def test_fuel_ops_cost_nothing_without_fuel():
    p = Program([_sum_loop()])
    src = generate_source(p.code, 0, p.inst)
    assert "fuel" not in src


def test_host_calls_through_the_store():
    seen = []

    def h(store, args):
        seen.append(list(args))
        return [args[0] * 2 & M32, args[1] + 1]

    hf = host([I32, I64], [I32, I64], h, "double")
    p = Program([("f", ft([I32, I64], [I32, I64]), [
        ("call_host", 1, 0),  # host function index 1 (after the one defined function)
        ("return", ()),
    ], 2)], hosts=[hf])
    assert p.call("f", 21, 5) == [42, 6]
    assert seen == [[21, 5]]


def test_host_exception_becomes_trap_with_frames():
    def boom(store, args):
        raise ValueError("nope")

    p = Program([("f", ft([], []), [("call_host", 1, 0), ("return", ())], 1)],
                hosts=[host([], [], boom, "boom")])
    with pytest.raises(Trap) as e:
        p.call("f")
    assert "boom" in str(e.value) and e.value.frames[0][0] == "f"


def test_memory_globals_and_grow():
    p = Program([("f", ft([I32], [I64]), [
        ("const64", 1, 0x1122334455667788),
        ("i64.store_m0", 0, 1, 8),
        ("i32.load16_s_m0", 2, 0, 9),
        ("global.set", 2, 0),
        ("const32", 3, 1),
        ("memory.grow", 3, 3, 0),
        ("memory.size", 4, 0),
        ("i32.add", 3, 3, 4),
        ("global.get", 5, 1),
        ("i64.add", 5, 5, 3),
        ("global.set", 5, 1),
        ("i64.load_m0", 0, 0, 8),
        ("return", (0,)),
    ], 6)], memories=1, globals=[(I32, 0), (I64, 100)])
    assert p.call("f", 16) == [0x1122334455667788]
    assert p.inst.globals[0].value == numerics.i32_load16_s(0x6677)
    assert p.inst.globals[1].value == 100 + 1 + 2
    assert p.inst.memories[0].pages == 2


def test_v128_ops_and_memory():
    a = int.from_bytes(bytes(range(16)), "little")
    p = Program([("f", ft([I32], []), [
        ("v128.load_m0", 2, 0, 0),
        ("const128", 4, a),
        ("i32x4.add", 6, 2, 4),
        ("i8x16.shuffle", 8, 6, 2, tuple(range(31, 15, -1))),
        ("v128.store_m0", 0, 8, 16),
        ("i32x4.extract_lane", 1, 6, 3),
        ("i32.store_m0", 0, 1, 32),
        ("v128.store32_lane_m0", 0, 6, 36, 1),
        ("return", ()),
    ], 10)], memories=1)
    mem = p.inst.memories[0].data
    x = 0x0123456789ABCDEF_FEDCBA9876543210
    mem[0:16] = x.to_bytes(16, "little")
    p.call("f", 0)
    s = numerics.i32x4_add(x, a)
    assert int.from_bytes(mem[16:32], "little") == numerics.i8x16_shuffle(s, x, tuple(range(31, 15, -1)))
    assert int.from_bytes(mem[32:36], "little") == numerics.i32x4_extract_lane(s, 3)
    assert int.from_bytes(mem[36:40], "little") == numerics.i32x4_extract_lane(s, 1)


def test_tables_and_refs():
    p = Program([
        ("f", ft([I32], [I32]), [
            ("ref.func", 1, 1),
            ("const32", 2, 0),
            ("table.set", 2, 1, 0),
            ("const32", 2, 3),
            ("table.grow", 3, 1, 2, 0),  # +3 entries of g: old size 2
            ("table.size", 4, 0),
            ("call_indirect", 1, 0, 2, 0),  # table[3] = g(r0)
            ("i32.add", 0, 0, 3),
            ("i32.add", 0, 0, 4),
            ("return", (0,)),
        ], 5),
        ("g", ft([I32], [I32]), [("i32.mul_imm", 0, 0, 2), ("return", ())], 1),
    ], tables=[2])
    assert p.call("f", 5) == [10 + 2 + 5]
    assert p.inst.tables[0].elements[0] is p.inst.funcs[1]


def test_bad_bytecode_is_a_decode_error():
    p = Program([("f", ft([], []), [("mov", 7, 0), ("return", ())], 2)])
    with pytest.raises(DecodeError):
        p.call("f")
    p = Program([("f", ft([], []), [("jump", 1)], 1)])
    with pytest.raises(DecodeError):
        p.call("f")
    p = Program([("f", ft([], []), [("mov", 0, 0)], 1)])
    with pytest.raises(DecodeError):
        p.call("f")


def test_stats_counts_ops_and_pairs():
    p = Program([_sum_loop()], stats=True)
    p.call("sum", 10)
    rep = p.interp.stats_report()
    ops = dict(rep["ops"])
    assert ops["i32.add"] == 10 and ops["br_i32_ne_imm"] == 10 and ops["return"] == 1
    assert rep["executed"] == 1 + 1 + 30 + 1
    assert dict(rep["pairs"])[("i32.add", "i32.sub_imm")] == 10


def test_reentrant_host_to_wasm():
    # host function calling back into wasm: a nested interpreter activation
    def h(store, args):
        f = store.instances[0].funcs[0]
        return store.call(f, [args[0] - 1]) if args[0] else [0]

    hf = host([I32], [I32], h, "back")
    p = Program([("f", ft([I32], [I32]), [
        ("call_host", 1, 0),
        ("i32.add_imm", 0, 0, 1),
        ("return", ()),
    ], 1)], hosts=[hf])
    assert p.call("f", 10) == [11]  # f(n) = f(n-1) + 1, f(0) = host's 0 + 1


# -- differential: random straight-line code against the reference executor ------------------
_BIN = ["i32.add", "i32.sub", "i32.mul", "i32.and", "i32.xor", "i32.shl", "i32.rotr",
        "i32.lt_s", "i64.add", "i64.mul", "i64.shr_s", "i64.rotl", "i64.ge_u",
        "f64.add", "f64.mul", "f64.min", "f32.div", "f32.max"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_BIN), st.integers(0, 5), st.integers(0, 5),
                          st.integers(0, 5)), min_size=1, max_size=12),
       st.lists(st.integers(0, M64), min_size=6, max_size=6))
def test_straight_line_matches_reference(prog, init):
    items = [(op, d, a, b) for op, d, a, b in prog]
    # 32-bit ops read low bits only; start every slot with a full 64-bit pattern
    ref = RefMachine(6)
    ref.regs[:] = list(init)
    code, _ = assemble(items + [("return", (0, 1, 2, 3, 4, 5))])
    ref_run(ref, code)
    p = Program([("f", ft([I64] * 6, [I64] * 6), items + [("return", (0, 1, 2, 3, 4, 5))], 6)])
    got = p.call("f", *init)
    assert got == ref.regs


# -- differential: random control flow (forks, superblocks, loops) against the reference -------
@settings(max_examples=150, deadline=None)
@given(cf_program(), st.lists(st.integers(0, M64), min_size=6, max_size=6))
def test_control_flow_matches_reference(items, init):
    ref = RefMachine(8)
    ref.regs[:6] = list(init)
    code, _ = assemble(items)
    ref_run(ref, code)
    p = Program([("f", ft([I64] * 6, [I64] * 6), items, 8)])
    assert p.call("f", *init) == ref.regs[:6]


def test_calls_across_instances():
    a = Program([("twice", ft([I32], [I32]), [("i32.mul_imm", 0, 0, 2), ("return", ())], 1),
                 ("boom", ft([], []), [("unreachable",)], 1)], memories=1)
    twice, boom = a.inst.funcs[0], a.inst.funcs[1]
    # b imports a's functions (placed after its own, as the helper does with hosts)
    b = Program([
        ("f", ft([I32], [I32]), [
            ("call_host", 3, 0),  # a.twice through the call window
            ("i32.add_imm", 0, 0, 1),
            ("return_call", 4, (0,)),  # tail call into the other instance: a.twice again
        ], 1),
        ("g", ft([], []), [("call", 5, 0), ("return", ())], 1),
        ("h", ft([I32], [I32]), [("const32", 1, 0), ("call_indirect", 0, 0, 1, 0),
                                 ("return", ())], 2),
    ], hosts=[twice, twice, boom], store=a.store, tables=[1])
    assert b.call("f", 5) == [(5 * 2 + 1) * 2]
    with pytest.raises(Trap) as e:
        b.call("g")
    assert [f[0] for f in e.value.frames] == ["boom", "g"]
    assert a.store.depth == 0 and a.store.instance_stack == []
    b.inst.tables[0].elements[0] = twice  # indirect call into the other instance
    assert b.call("h", 21) == [42]


def test_indirect_and_tail_calls_to_host_functions():
    hf = host([I32], [I32], lambda s, a: [a[0] + 100], "plus100")
    p = Program([
        ("f", ft([I32], [I32]), [("const32", 1, 0), ("call_indirect", 0, 0, 1, 0),
                                 ("return", ())], 2),
        ("g", ft([I32], [I32]), [("return_call", 3, (0,))], 1),
        ("h", ft([I32], [I32]), [("const32", 1, 0), ("return_call_indirect", 0, 0, 1, (0,))], 2),
    ], hosts=[hf], tables=[1])
    p.inst.tables[0].elements[0] = hf
    p.module.types[0] = hf.type  # type 0 is (i32) -> i32: f's own type
    assert p.call("f", 1) == [101]
    assert p.call("g", 2) == [102]
    assert p.call("h", 3) == [103]


def test_return_call_indirect_runs_in_constant_space():
    p = Program([("count", ft([I64, I64], [I64]), [
        ("br_i64_eq_imm", 0, 0, L("done")),
        ("i64.add", 1, 1, 0),
        ("i64.sub_imm", 0, 0, 1),
        ("const32", 2, 0),
        ("return_call_indirect", 0, 0, 2, (0, 1)),
        "done:",
        ("return", (1,)),
    ], 3)], tables=[1], max_call_depth=3)
    p.inst.tables[0].elements[0] = p.inst.funcs[0]
    assert p.call("count", 10000, 0) == [10000 * 10001 // 2]


def test_nan_canonicalization():
    nan = 0x7FC00001  # a non-canonical quiet NaN payload
    items = [("f32.add", 0, 0, 1), ("return", (0,))]
    plain = Program([("f", ft([ValType.F32, ValType.F32], [ValType.F32]), items, 2)])
    canon = Program([("f", ft([ValType.F32, ValType.F32], [ValType.F32]), items, 2)], canon=True)
    assert plain.call("f", nan, 0x3F800000) == [numerics.f32_add(nan, 0x3F800000)]
    assert canon.call("f", nan, 0x3F800000) == [numerics.CANONICAL_NAN_F32]
    assert canon.call("f", 0x3F800000, 0x3F800000) == [numerics.f32_add(0x3F800000, 0x3F800000)]


def test_runners_compile_on_first_use():
    p = Program([("f", ft([I32], [I32]), [
        ("br_i32_eqz", 0, L("cold")),
        ("return", ()),
        "cold:",
        ("i32.add_imm", 0, 0, 5),
        ("i32.mul_imm", 0, 0, 3),
        ("i32.xor_imm", 0, 0, 1),
        ("i32.or_imm", 0, 0, 8),
        ("i32.and_imm", 0, 0, 255),
        ("i32.sub_imm", 0, 0, 1),
        ("i32.shl_imm", 0, 0, 1),
        ("return", ()),
    ], 1)])
    assert p.call("f", 3) == [3]
    fc = p.inst.funcs[0].code
    ns = fc.entry.__globals__

    def stubs():
        return {n for n in ns if n.startswith("s_") and ns[n].__code__.co_filename != fc.filename}

    cold = stubs()
    assert cold  # the cold segment is still a stub
    want = numerics.i32_sub(((0 + 5) * 3 ^ 1 | 8) & 255, 1) << 1
    assert p.call("f", 0) == [want]
    assert len(stubs()) < len(cold)


def test_stats_text_and_fuel_ops_only_count_with_fuel():
    p = Program([("sum", ft([I32], [I32]), [
        ("fuel", 2), ("const32", 1, 0), "loop:", ("fuel", 3),
        ("i32.add", 1, 1, 0), ("i32.sub_imm", 0, 0, 1), ("br_i32_ne_imm", 0, 0, L("loop")),
        ("return", (1,)),
    ], 2)], stats=True)
    p.call("sum", 4)
    ops = dict(p.interp.stats_report()["ops"])
    assert "fuel" not in ops and ops["i32.add"] == 4
    text = p.interp.format_stats()
    assert "i32.add -> i32.sub_imm" in text and f"executed bytecode ops: {1 + 12 + 1}" in text
    q = Program([("sum", ft([I32], [I32]), [
        ("fuel", 2), ("const32", 1, 0), "loop:", ("fuel", 3),
        ("i32.add", 1, 1, 0), ("i32.sub_imm", 0, 0, 1), ("br_i32_ne_imm", 0, 0, L("loop")),
        ("return", (1,)),
    ], 2)], stats=True, fuel=True)
    q.store.set_fuel(100)
    q.call("sum", 4)
    assert dict(q.interp.stats_report()["ops"])["fuel"] == 5
