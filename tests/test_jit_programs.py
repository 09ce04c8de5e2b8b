"""The native executor on hand-assembled bytecode programs (see interp_asm.py), in every
dispatch mode: control flow, native calls and returns, tail calls, host calls, indirect
calls, traps, fuel, stack limits, memory growth seen by the host, globals, tables,
references, bulk memory, v128 values, nested activations, and bytecode rejection."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from deadeye.interp.memory import DataInstance, ElemInstance
from deadeye.interp.runtime import Store
from deadeye.ir import numerics
from deadeye.ir.errors import Trap, ValidationError
from deadeye.ir.types import FuncType, ValType
from deadeye.jit.llvmgen import MODES
from deadeye.jit.native import NativeExecutor

from interp_asm import F64, I32, I64, L, V128, Program, cf_program, fib_program, host

M32, M64 = (1 << 32) - 1, (1 << 64) - 1
pytestmark = pytest.mark.parametrize("mode", MODES)
_EX: dict = {}


def ft(params, results):
    return FuncType(tuple(params), tuple(results))


def prog(mode, funcs, *, fuel=False, max_call_depth=1000, **kw):
    ex = _EX.get(mode)
    if ex is None:
        ex = _EX[mode] = NativeExecutor(lambda f: (f.instance.module.code, f.defined_index),
                                        dispatch=mode)
    store = Store(ex, consume_fuel=fuel, max_call_depth=max_call_depth)
    return Program(funcs, store=store, **kw)


def test_recursive_calls(mode):
    p = prog(mode, [fib_program()])
    fibs = [0, 1]
    for _ in range(25):
        fibs.append(fibs[-1] + fibs[-2])
    assert [p.call("fib", n)[0] for n in range(22)] == fibs[:22]
    assert p.store.depth == 0


def test_loop_branches_and_select(mode):
    p = prog(mode, [("sum", ft([I32], [I32]), [  # r1 = 0 + 1 + ... + n
        ("const32", 1, 0),
        "top:",
        ("br_i32_eqz", 0, L("done")),
        ("i32.add", 1, 1, 0),
        ("i32.sub_imm", 0, 0, 1),
        ("jump", L("top")),
        "done:",
        ("return", (1,)),
    ], 2), ("f", ft([I32, I32], [I32]), [
        ("br_table", 0, (L("a"), L("b"), L("c"))),
        "a:",
        ("const32", 0, 10),
        ("return", (0,)),
        "b:",
        ("const32", 0, 20),
        ("select_i32_gt_u", 0, 0, 1, 1, 0),
        ("return", (0,)),
        "c:",
        ("const32", 2, 7),
        ("br_if_not", 1, L("a")),
        ("select", 0, 2, 1, 1),
        ("br_if", 0, L("out")),
        ("unreachable",),
        "out:",
        ("return", (0,)),
    ], 3)])
    for n in (0, 1, 10, 1000, 70000):
        assert p.call("sum", n) == [n * (n + 1) // 2 & M32]
    assert p.call("f", 0, 99) == [10]
    assert p.call("f", 1, 99) == [20]
    assert p.call("f", 1, 3) == [3]
    assert p.call("f", 2, 5) == [7]
    assert p.call("f", 2, 0) == [10]
    assert p.call("f", M32, 4) == [7]  # out of range: the default target


def test_multi_value_parallel_return(mode):
    p = prog(mode, [
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


def test_return_call_runs_in_constant_space(mode):
    n = 200_000
    p = prog(mode, [("count", ft([I64, I64], [I64]), [
        ("br_i64_eq_imm", 0, 0, L("done")),
        ("i64.add", 1, 1, 0),
        ("i64.sub_imm", 0, 0, 1),
        ("return_call", 0, (0, 1)),
        "done:",
        ("return", (1,)),
    ], 2)], max_call_depth=5)
    assert p.call("count", n, 0) == [n * (n + 1) // 2]


def test_call_stack_exhausted_is_a_trap(mode):
    p = prog(mode, [("inf", ft([], []), [("call", 0, 0), ("return", ())], 1)], max_call_depth=300)
    with pytest.raises(Trap, match="call stack exhausted"):
        p.call("inf")
    # A frame that grows by a large window runs out of register stack first.
    p = prog(mode, [("big", ft([], []), [("call", 0, 60000), ("return", ())], 60001)],
             max_call_depth=100_000)
    with pytest.raises(Trap, match="call stack exhausted"):
        p.call("big")
    assert p.store.depth == 0


@pytest.mark.parametrize("items, message", [
    ([("unreachable",)], "unreachable"),
    ([("trap", 1)], "integer divide by zero"),
    ([("trap", 11)], "null function reference"),
    ([("const32", 0, 0), ("i32.load_m0", 0, 0, 65533), ("return", (0,))], "out of bounds memory access"),
    ([("const32", 0, M32), ("i64.store8_m0", 0, 0, 1), ("return", (0,))], "out of bounds memory access"),
    ([("const32", 0, 0x80000000), ("const32", 1, M32), ("i32.div_s", 0, 0, 1), ("return", (0,))],
     "integer overflow"),
    ([("const32", 0, 0x7FC00000), ("i32.trunc_f32_s", 0, 0), ("return", (0,))],
     "invalid conversion to integer"),
    ([("const32", 0, 5), ("call_indirect", 0, 0, 0, 1), ("return", (0,))], "undefined element"),
    ([("const32", 0, 1), ("call_indirect", 0, 0, 0, 1), ("return", (0,))], "uninitialized element"),
    ([("const32", 0, 0), ("call_indirect", 1, 0, 0, 1), ("return", (0,))], "indirect call type mismatch"),
    ([("const32", 0, 9), ("const32", 1, 0), ("table.get", 0, 0, 0), ("return", (1,))],
     "out of bounds table access"),
])
def test_trap_kinds(mode, items, message):
    p = prog(mode, [("f", ft([], [I32]), items, 4), ("g", ft([I32], []), [("return", ())], 1)],
             memories=1, tables=[2])
    p.inst.tables[0].elements[0] = p.inst.funcs[0]
    with pytest.raises(Trap) as e:
        p.call("f")
    assert message in str(e.value)
    assert e.value.frames and e.value.frames[0][0] == "f"
    # The trap names the wasm offset of the op that trapped (srcmap: 100 + item index).
    assert e.value.frames[0][2] == 100 + len(items) - 1 - (items[-1][0] == "return")


def test_trap_in_native_callee(mode):
    p = prog(mode, [
        ("inner", ft([I32], [I32]), [("const32", 1, 10), ("i32.div_u", 0, 1, 0), ("return", (0,))], 2),
        ("outer", ft([I32], [I32]), [("mov", 1, 0), ("call", 0, 1), ("return", (1,))], 2),
    ])
    with pytest.raises(Trap, match="integer divide by zero"):
        p.call("outer", 0)
    assert p.store.depth == 0
    assert p.call("outer", 5) == [2]  # the executor is usable after a trap


def test_fuel(mode):
    loop = ("spin", ft([I32], [I32]), [
        ("fuel", 2),
        "top:",
        ("fuel", 3),
        ("br_i32_eqz", 0, L("done")),
        ("i32.sub_imm", 0, 0, 1),
        ("jump", L("top")),
        "done:",
        ("fuel", 1),
        ("return", (0,)),
    ], 1)
    p = prog(mode, [loop], fuel=True)
    p.store.set_fuel(1000)
    assert p.call("spin", 10) == [0]
    assert p.store.get_fuel() == 1000 - (2 + 3 * 11 + 1)
    p.store.set_fuel(50)
    with pytest.raises(Trap, match="all fuel consumed"):
        p.call("spin", 100)
    assert p.store.get_fuel() == 0


def test_host_calls_and_memory_growth_visible_to_host(mode):
    seen = []

    def peek(store, args):  # reads guest memory at args[0] (after the guest grew it)
        mem = p.inst.memories[0]
        seen.append((len(mem.data), mem.data[args[0]]))
        mem.data[args[0] + 1] = 0x5A  # and writes next to it
        return [args[0] * 2]

    h = host([I32], [I32], peek, "peek")
    p = prog(mode, [("f", ft([], [I32, I32, I32]), [
        ("const32", 0, 1),
        ("memory.grow", 0, 0, 0),       # r0 = old size (1)
        ("const32", 1, 65536 + 8),      # an address in the new page
        ("const32", 2, 0xAB),
        ("i32.store8_m0", 1, 2, 0),
        ("mov", 3, 1),
        ("call_host", 1, 3),           # r3 = peek(r1)
        ("i32.load8_u_m0", 4, 1, 1),    # the host's write
        ("memory.size", 5, 0),
        ("i32.add", 3, 3, 4),
        ("return", (0, 3, 5)),
    ], 6)], memories=1, hosts=[h])
    assert p.call("f") == [1, 2 * (65536 + 8) + 0x5A, 2]
    assert seen == [(2 * 65536, 0xAB)]
    # Growth beyond the maximum (4 pages) fails with -1.
    p2 = prog(mode, [("g", ft([I32], [I32]), [("memory.grow", 0, 0, 0), ("return", (0,))], 1)],
              memories=1)
    assert p2.call("g", 10) == [M32]
    assert p2.call("g", 3) == [1]


def test_host_exception_becomes_trap(mode):
    def boom(store, args):
        raise RuntimeError("nope")

    p = prog(mode, [("f", ft([], []), [("call_host", 1, 0), ("return", ())], 1)],
             hosts=[host([], [], boom, "boom")])
    with pytest.raises(Trap, match="boom"):
        p.call("f")


def test_nested_activation_host_calls_back_into_wasm(mode):
    def back(store, args):  # wasm -> host -> wasm, while the outer native frame waits
        return store.call(p.inst.funcs[0], [args[0] + 1])

    p = prog(mode, [fib_program(), ("outer", ft([I32], [I32]), [
        ("mov", 2, 0),
        ("call_host", 2, 2),
        ("call", 0, 2),                 # fib(fib(n + 1))
        ("return", (2,)),
    ], 3)], hosts=[host([I32], [I32], back, "back")])
    assert p.call("outer", 5) == [21]  # fib(6) = 8, fib(8) = 21


def test_indirect_calls_and_tail_calls(mode):
    double = ("double", ft([I64], [I64]), [("i64.add", 0, 0, 0), ("return", ())], 1)
    p = prog(mode, [double, ("via_table", ft([I64, I32], [I64]), [
        ("call_indirect", 0, 0, 1, 0),
        ("return", ()),
    ], 2), ("tail_table", ft([I64, I32], [I64]), [
        ("i64.add_imm", 0, 0, 1),
        ("return_call_indirect", 0, 0, 1, (0,)),
    ], 2), ("tail_host", ft([I64], [I64]), [
        ("return_call", 4, (0,)),  # the host function follows the 4 defined ones
    ], 1)], tables=[3], hosts=[host([I64], [I64], lambda s, a: [a[0] * 3], "triple")])
    p.inst.tables[0].elements[1] = p.inst.funcs[0]
    assert p.call("via_table", 21, 1) == [42]
    assert p.call("tail_table", 20, 1) == [42]
    assert p.call("tail_host", 14) == [42]
    with pytest.raises(Trap, match="uninitialized element"):
        p.call("tail_table", 1, 2)


def test_globals_v128_and_select128(mode):
    p = prog(mode, [("f", ft([I32], [I64, V128]), [
        ("global.get", 1, 0),
        ("i64.add_imm", 1, 1, 5),
        ("global.set", 1, 0),
        ("global.get128", 2, 1),
        ("const128", 4, (7 << 64) | 9),
        ("select128", 2, 2, 4, 0),
        ("mov128", 6, 2),
        ("global.set128", 6, 1),
        ("return", (1, 6, 7)),
    ], 8)], globals=[(I64, 37), (V128, (1 << 127) | 3)])
    assert p.call("f", 1) == [42, (1 << 127) | 3]
    assert p.inst.globals[0].value == 42
    assert p.call("f", 0) == [47, (7 << 64) | 9]
    assert p.inst.globals[1].value == (7 << 64) | 9


def test_tables_and_references(mode):
    p = prog(mode, [("f", ft([], [I32, I32, I32, I32, I32]), [
        ("ref.func", 0, 0),
        ("const32", 1, 0),
        ("table.set", 1, 0, 0),          # t[0] = f
        ("const32", 2, 2),
        ("table.grow", 3, 0, 2, 0),      # r3 = old size 2, filled with f
        ("table.size", 4, 0),            # 4
        ("ref.null", 5),
        ("const32", 6, 1),
        ("table.fill", 6, 5, 6, 0),      # t[1] = null
        ("table.get", 7, 6, 0),
        ("ref.is_null", 7, 7),           # 1
        ("table.get", 8, 2, 0),
        ("ref.is_null", 8, 8),           # 0
        ("const32", 9, 0),
        ("table.copy", 6, 9, 6, 0, 0),   # t[1] = t[0]
        ("table.get", 10, 6, 0),
        ("ref.is_null", 10, 10),         # 0
        ("table.init", 9, 9, 6, 0, 0),   # t[0] = elem[0][0] (null)
        ("elem.drop", 0),
        ("table.get", 11, 9, 0),
        ("ref.is_null", 11, 11),         # 1
        ("return", (3, 4, 7, 8, 10)),
    ], 12)], tables=[2])
    p.inst.elems.append(ElemInstance(ValType.FUNCREF, [None]))
    assert p.call("f") == [2, 4, 1, 0, 0]
    assert p.inst.tables[0].elements[2] is p.inst.funcs[0]
    assert p.inst.tables[0].elements[0] is None


def test_bulk_memory_and_other_memories(mode):
    p = prog(mode, [("f", ft([], [I32, I32, I64]), [
        ("const32", 0, 100), ("const32", 1, 0x77), ("const32", 2, 8),
        ("memory.fill", 0, 1, 2, 0),          # mem0[100..108] = 0x77
        ("const32", 3, 104),
        ("memory.copy", 3, 0, 2, 1, 0),       # mem1[104..112] = mem0[100..108]
        ("const32", 4, 0), ("const32", 5, 3),
        ("memory.init", 4, 4, 5, 0, 1),       # mem1[0..3] = data[0][0..3]
        ("data.drop", 0),
        ("i32.load", 6, 4, 1, 0),            # mem1[0..4]
        ("i64.load", 7, 3, 1, 0),            # mem1[104..112]
        ("i32.store", 4, 5, 1, 200),         # mem1[200] = 3
        ("memory.size", 8, 1),
        ("i32.load_m0", 9, 4, 0),            # memory 0 untouched at 0
        ("i32.add", 8, 8, 9),
        ("return", (6, 8, 7)),
    ], 10)], memories=2)
    p.inst.datas.append(DataInstance(b"\x01\x02\x03"))
    mem0 = bytes(p.inst.memories[0].data[0:4])
    assert p.call("f") == [0x030201, 1 + int.from_bytes(mem0, "little"), 0x7777777777777777]
    assert p.inst.memories[1].data[200] == 3
    with pytest.raises(Trap, match="out of bounds memory access"):
        p.call("f")  # the data segment was dropped: init of 3 bytes fails


def test_i64_pool_and_f64_results(mode):
    p = prog(mode, [("f", ft([F64], [F64, I64]), [
        ("constf64", 1, 0x4000000000000000),     # 2.0
        ("f64.mul", 0, 0, 1),
        ("const64", 2, 0x123456789ABCDEF0),       # needs the pool
        ("i64.add_imm", 2, 2, 0x7FFFFFFFFFFFFFFF),
        ("return", (0, 2)),
    ], 3)])
    from deadeye.ir.numerics_scalar import float_to_f64
    assert p.call("f", float_to_f64(1.25)) == [float_to_f64(2.5),
                                                (0x123456789ABCDEF0 + 0x7FFFFFFFFFFFFFFF) & M64]


@pytest.mark.parametrize("items, frame", [
    ([("i32.add", 0, 0, 5), ("return", ())], 2),         # register outside the frame
    ([("jump", 3), ("return", ())], 1),                   # branch into the middle of an op
    ([("const32", 0, 1)], 1),                             # falls off the end
    ([("return", (0, 4))], 2),                            # return list outside the frame
    ([("call", 7, 0), ("return", ())], 1),                # no such function
])
def test_bad_bytecode_is_rejected(mode, items, frame):
    p = prog(mode, [("f", ft([], []), items, frame)])
    with pytest.raises(ValidationError):
        p.call("f")


def test_no_memory_means_every_access_traps(mode):
    p = prog(mode, [("f", ft([I32], [I32]), [("i32.load_m0", 0, 0, 0), ("return", (0,))], 1)])
    with pytest.raises(Trap, match="out of bounds memory access"):
        p.call("f", 0)



@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=cf_program(), init=st.lists(st.integers(0, (1 << 64) - 1), min_size=6, max_size=6))
def test_random_programs_agree_with_the_interpreter(mode, items, init):
    # random bytecode (forks, br_table, bounded loops) on the native handlers and on the
    # Python interpreter: the same six results
    fn = [("f", ft([I64] * 6, [I64] * 6), items, 8)]
    assert prog(mode, fn).call("f", *init) == Program(fn).call("f", *init)
