"""Reference semantics of the bytecode against `ir.numerics` and the runtime objects."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deadeye.interp.isa import OP_LIST, OPS, TRAP_MESSAGES, ConstPool, encode, trap_code
from deadeye.interp.isa.refexec import (RefMachine, execute, make_global, make_memory,
                                        make_table, run, step)
from deadeye.interp.isa.table import IR_FORMS
from deadeye.interp.runtime import HostFunction
from deadeye.ir import numerics, opcodes
from deadeye.ir.errors import Trap, ValidationError, WasmError
from deadeye.ir.types import FuncType, ValType

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
BITS = {I32: 32, I64: 64, F32: 32, F64: 64, V128: 128}
MASK64 = (1 << 64) - 1
_SPECIAL = {32: [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x7FC00000, 0x3F800000, 0xFF800000],
            64: [0, 1, (1 << 63) - 1, 1 << 63, MASK64, 0x7FF8000000000000, 0x3FF0000000000000]}


def value_strategy(t):
    bits = BITS[t]
    if bits == 128:
        return st.integers(0, (1 << 128) - 1)
    return st.one_of(st.integers(0, (1 << bits) - 1), st.sampled_from(_SPECIAL[bits]))


def random_value(rng, t):
    bits = BITS[t]
    if bits != 128 and rng.random() < 0.3:
        return rng.choice(_SPECIAL[bits])
    return rng.getrandbits(bits)


def expect(fn, *args):
    """(result, None) or (None, trap message) of a numerics call."""
    try:
        return fn(*args), None
    except Trap as t:
        return None, t.message


def run_numeric(name, args, imm=None):
    """Run ISA op `name` on inputs placed in registers; (result, trap message)."""
    info = numerics.INFO[name]
    m = RefMachine(32)
    regs, at = [], 2
    for t, v in zip(info.params, args):
        (m.set_v128 if t == V128 else m.set_reg)(at, v)
        regs.append(at)
        at += 2
    operands = [20, *regs] + ([] if imm is None else [imm])
    try:
        execute(m, name, *operands)
    except Trap as t:
        return None, t.message
    return (m.v128(20) if info.results[0] == V128 else m.reg(20)), None


def _imm_for(info, rng):
    if info.imm == "lane":
        return rng.randrange(info.imm_limit)
    if info.imm == "shuffle":
        return tuple(rng.randrange(32) for _ in range(16))
    return None


def test_every_numeric_op_matches_numerics():
    rng = random.Random(1234)
    for name, info in numerics.INFO.items():
        row = OPS[name]
        assert row.numerics == name
        for _ in range(4):
            args = [random_value(rng, t) for t in info.params]
            imm = _imm_for(info, rng)
            want = expect(info.fn, *args, *([] if imm is None else [imm]))
            assert run_numeric(name, args, imm) == want, (name, args, imm)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(numerics.INFO)), st.data())
def test_numeric_ops_property(name, data):
    info = numerics.INFO[name]
    args = [data.draw(value_strategy(t)) for t in info.params]
    imm = None
    if info.imm == "lane":
        imm = data.draw(st.integers(0, info.imm_limit - 1))
    elif info.imm == "shuffle":
        imm = data.draw(st.tuples(*[st.integers(0, 31)] * 16))
    want = expect(info.fn, *args, *([] if imm is None else [imm]))
    assert run_numeric(name, args, imm) == want


def test_32_bit_inputs_ignore_the_upper_half_of_a_slot():
    m = RefMachine(8)
    m.set_reg(1, 0xDEAD_0000_0000_0005)
    m.set_reg(2, 0x0000_0001_0000_0007)
    execute(m, "i32.add", 3, 1, 2)
    assert m.reg(3) == 12


def _derived(form):
    return [r for r in OP_LIST if r.base and r.group == "super" and not r.pool_field and
            (r.name.startswith("br_") if form == "branch" else
             r.name.startswith("select_") if form == "select" else "_imm" in r.name
             and not r.name.startswith(("br_", "select_")))]


def _imm_value(rng, row, t):
    kind = row.operands[[o.name for o in row.operands].index("imm")].kind.name
    if kind == "u8":
        return rng.randrange(256)
    if kind == "sx32":
        return rng.randrange(-(1 << 31), 1 << 31) & MASK64
    return random_value(rng, t)


def test_register_immediate_forms_agree_with_base():
    rng = random.Random(7)
    rows = _derived("imm")
    assert len(rows) == 2 * 21
    for row in rows:
        info = numerics.INFO[row.base]
        for _ in range(6):
            a = random_value(rng, info.params[0])
            imm = _imm_value(rng, row, info.params[1])
            m = RefMachine(8)
            m.set_reg(1, a)
            want = expect(info.fn, a, imm)
            try:
                execute(m, row.name, 2, 1, imm)
                got = m.reg(2), None
            except Trap as t:
                got = None, t.message
            assert got == want, (row.name, a, imm)


def test_compare_and_branch_forms():
    rng = random.Random(8)
    rows = _derived("branch")
    assert {"br_i32_lt_s", "br_i32_lt_s_imm", "br_i32_eqz", "br_i64_ge_u_imm", "br_f64_lt"} <= {
        r.name for r in rows}
    for row in rows:
        info = numerics.INFO[row.base]
        for _ in range(6):
            args = [random_value(rng, t) for t in info.params]
            ops = list(range(1, len(args) + 1))
            m = RefMachine(8)
            for r, v in zip(ops, args):
                m.set_reg(r, v)
            if row.name.endswith("_imm"):
                args[-1] = _imm_value(rng, row, info.params[-1])
                ops[-1] = args[-1]
            code = encode(row.name, *ops, 40)
            nxt = step(m, code, 0)
            assert nxt == (40 if info.fn(*args) else len(code)), (row.name, args)


def test_fused_select_forms():
    rng = random.Random(9)
    rows = _derived("select")
    assert len(rows) == 2 * 10 + 2 * 6
    for row in rows:
        info = numerics.INFO[row.base]
        for _ in range(4):
            x, y = (random_value(rng, t) for t in info.params)
            m = RefMachine(8)
            m.set_reg(1, 111)
            m.set_reg(2, None)  # select works on any one-slot value, references included
            m.set_reg(3, x)
            m.set_reg(4, y)
            execute(m, row.name, 5, 1, 2, 3, 4)
            assert m.reg(5) == (111 if info.fn(x, y) else None)


def test_pool_forms_agree_with_inline_forms():
    pool = ConstPool()
    for name in ("i64.add_imm", "i64.mul_imm", "i64.lt_u_imm", "i64.shr_s_imm"):
        row = OPS[name]
        value = 5 if row.operands[-1].kind.name == "u8" else (1 << 62) + 3
        info = numerics.INFO[row.base]
        m = RefMachine(8)
        m.set_reg(1, 0x8000_0000_1234_5678)
        execute(m, name, 2, 1, value, pool=pool)
        assert m.reg(2) == info.fn(0x8000_0000_1234_5678, value)
    m = RefMachine(8)
    execute(m, "const64", 3, 0xFEDC_BA98_7654_3210, pool=pool)
    assert m.reg(3) == 0xFEDC_BA98_7654_3210
    execute(m, "const64", 3, MASK64, pool=pool)
    assert m.reg(3) == MASK64


def test_constants_and_moves():
    m = RefMachine(8)
    v = 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210
    execute(m, "const128", 2, v)
    assert m.reg(2) == v & MASK64 and m.reg(3) == v >> 64  # two consecutive slots
    execute(m, "mov128", 4, 2)
    assert m.v128(4) == v
    execute(m, "constf32", 1, 0x3F800000)
    execute(m, "mov", 0, 1)
    assert m.reg(0) == 0x3F800000
    m.set_reg(7, 0)
    execute(m, "select128", 4, 2, 2, 7)
    assert m.v128(4) == v


# --- memory ------------------------------------------------------------------------------
def _mem_ops(prefix):
    return [r for r in OP_LIST if r.group == "memory" and r.base is None and "." in r.name
            and r.name.split(".")[1].startswith(prefix) and r.name.split(".")[0] != "memory"]


def test_loads_match_memory_numerics():
    rng = random.Random(10)
    for row in _mem_ops("load"):
        mem = make_memory(1)
        mem.data[:64] = bytes(rng.getrandbits(8) for _ in range(64))
        m = RefMachine(16, memories=[make_memory(1), mem])
        m.set_reg(1, 8)
        m.set_v128(4, rng.getrandbits(128))
        fn = numerics.MEMORY_OPS.get(row.name)
        lane = "lane" in row.names
        ops = {"dst": 10, "addr": 1, "src": 4, "mem": 1, "offset": 5, "lane": 1}
        execute(m, row.name, *[ops[nm] for nm in row.names])
        width = _width(row.name)
        raw = int.from_bytes(mem.data[13:13 + width], "little")
        if lane:
            want = fn(m.v128(4), raw, 1)
        else:
            want = fn(raw) if fn else raw
        got = m.v128(10) if row.operands[0].kind.name == "vd" else m.reg(10)
        assert got == want, row.name


def _width(name):
    t, op = name.split(".")
    for pat, n in (("x", 8), ("64", 8), ("32", 4), ("16", 2), ("8", 1)):
        if pat in op:
            return n
    return {"i32": 4, "i64": 8, "f32": 4, "f64": 8, "v128": 16}[t]


def test_stores_match_memory_numerics_and_m0_forms():
    rng = random.Random(11)
    for row in _mem_ops("store"):
        for m0 in (False, True):
            mem = make_memory(1)
            m = RefMachine(16, memories=[mem])
            m.set_reg(1, 100)
            v = rng.getrandbits(128)
            m.set_v128(4, v)
            ops = {"addr": 1, "src": 4, "mem": 0, "offset": 3, "lane": 0}
            name = row.name + ("_m0" if m0 else "")
            execute(m, name, *[ops[nm] for nm in OPS[name].names])
            width = _width(row.name)
            fn = numerics.MEMORY_OPS.get(row.name)
            src = m.v128(4) if row.operands[1].kind.name == "vs" else m.reg(4)
            if "lane" in row.names:
                want = fn(src, 0)
            else:
                want = fn(src) if fn else src & ((1 << (8 * width)) - 1)
            assert mem.data[103:103 + width] == want.to_bytes(width, "little"), name
            assert not any(mem.data[:103]) and not any(mem.data[103 + width:])


def test_memory_bounds_and_effective_address():
    mem = make_memory(1)
    m = RefMachine(8, memories=[mem])
    m.set_reg(1, 65536 - 4)
    execute(m, "i32.load_m0", 2, 1, 0)  # last 4 bytes: in bounds
    with pytest.raises(Trap, match="out of bounds memory access"):
        execute(m, "i32.load_m0", 2, 1, 1)
    m.set_reg(1, 0xFFFFFFFF)  # the address + offset sum does not wrap at 32 bits
    with pytest.raises(Trap, match="out of bounds memory access"):
        execute(m, "i32.store8", 1, 2, 0, 1)
    with pytest.raises(Trap):
        execute(m, "i32.load", 2, 1, 0, 0xFFFFFFFF)


def test_bulk_memory_ops():
    from deadeye.interp.memory import DataInstance
    mem = make_memory(1, 3)
    seg = DataInstance(b"hello")
    m = RefMachine(8, memories=[mem], datas=[seg])
    for r, v in enumerate([10, 1, 3]):
        m.set_reg(r, v)
    execute(m, "memory.init", 0, 1, 2, 0, 0)  # d=10, s=1, n=3
    assert mem.data[10:13] == b"ell"
    m.set_reg(3, 11)
    execute(m, "memory.copy", 3, 0, 2, 0, 0)  # d=11, s=10, n=3 (overlap)
    assert mem.data[10:14] == b"eell"
    m.set_reg(4, 0x1FF)
    execute(m, "memory.fill", 0, 4, 2, 0)
    assert mem.data[10:14] == b"\xff\xff\xffl"
    execute(m, "data.drop", 0)
    with pytest.raises(Trap):
        execute(m, "memory.init", 0, 1, 2, 0, 0)
    execute(m, "memory.size", 5, 0)
    assert m.reg(5) == 1
    m.set_reg(6, 2)
    execute(m, "memory.grow", 7, 6, 0)
    assert m.reg(7) == 1 and mem.pages == 3
    execute(m, "memory.grow", 7, 6, 0)
    assert m.reg(7) == 0xFFFFFFFF


# --- globals, tables, references -----------------------------------------------------------
def test_globals_tables_refs():
    f = HostFunction(FuncType((I32,), (I32,)), lambda s, a: [a[0] + 1], "inc")
    tab = make_table(2, ValType.FUNCREF, 4)
    g32, g128 = make_global(I32, 5), make_global(V128, 1 << 100)
    m = RefMachine(16, globals=[g32, g128], tables=[tab], funcs=[f])
    execute(m, "global.get", 1, 0)
    assert m.reg(1) == 5
    m.set_reg(2, 0xFFFF_FFFF_0000_0009)
    execute(m, "global.set", 2, 0)
    assert g32.value == 9  # an i32 global keeps 32 bits
    execute(m, "global.get128", 4, 1)
    assert m.v128(4) == 1 << 100
    execute(m, "global.set128", 4, 1)
    execute(m, "ref.func", 3, 0)
    assert m.reg(3) is f
    m.set_reg(6, 1)
    execute(m, "table.set", 6, 3, 0)
    assert tab.elements[1] is f
    execute(m, "table.get", 7, 6, 0)
    assert m.reg(7) is f
    execute(m, "ref.is_null", 8, 7)
    assert m.reg(8) == 0
    execute(m, "ref.null", 9)
    execute(m, "ref.is_null", 8, 9)
    assert m.reg(8) == 1
    execute(m, "table.grow", 10, 9, 6, 0)
    assert m.reg(10) == 2 and len(tab) == 3
    m.set_reg(11, 5)
    execute(m, "table.grow", 10, 9, 11, 0)
    assert m.reg(10) == 0xFFFFFFFF
    execute(m, "table.size", 10, 0)
    assert m.reg(10) == 3
    m.set_reg(12, 9)
    with pytest.raises(Trap, match="out of bounds table access"):
        execute(m, "table.get", 7, 12, 0)


# --- control -------------------------------------------------------------------------------
def test_loop_program_sums_like_python():
    # r0 = n; r1 = acc = 0; r2 = i = 0; loop: acc += i; i += 1; if i <u n goto loop; return acc
    code = b"".join([
        encode("const32", 1, 0),
        encode("const32", 2, 0),
    ])
    loop = len(code)
    body = encode("i32.add", 1, 1, 2) + encode("i32.add_imm", 2, 2, 1)
    code += body
    code += encode("br_i32_lt_u", 2, 0, loop - len(code))
    code += encode("return", (1,))
    for n in (1, 5, 100):
        m = RefMachine(8)
        m.set_reg(0, n)
        run(m, code)
        assert m.returned and m.reg(0) == sum(range(n))


def test_br_table_and_br_if():
    code = encode("br_table", 0, (100, 200, 300))
    for i, target in ((0, 100), (1, 200), (2, 300), (7, 300), (0xFFFFFFFF, 300)):
        m = RefMachine(4)
        m.set_reg(0, i)
        assert step(m, code, 0) == target
    for op, cond, taken in (("br_if", 1, True), ("br_if", 0x1_0000_0000, False),
                            ("br_if_not", 0, True), ("br_if_not", 2, False)):
        m = RefMachine(4)
        m.set_reg(0, cond)
        insn = encode(op, 0, -50)
        code = bytes(60) + insn  # the op sits at offset 60
        assert step(m, code, 60) == (10 if taken else 60 + len(insn))


def test_return_is_a_parallel_move():
    m = RefMachine(4)
    m.set_reg(0, 10)
    m.set_reg(1, 20)
    execute(m, "return", (1, 0))
    assert m.returned and m.regs[:2] == [20, 10]


def test_call_passes_arguments_and_results_through_the_callee_window():
    ty = FuncType((I32, V128, I64), (V128, I32))
    f = HostFunction(ty, lambda s, a: [a[1] ^ 1, a[0] + a[2]], "f")
    m = RefMachine(16, funcs=[f])
    m.set_reg(5, 3)
    m.set_v128(6, (7 << 64) | 8)
    m.set_reg(8, 4)
    execute(m, "call", 0, 5)
    assert m.calls == [(f, [3, (7 << 64) | 8, 4])]
    assert m.v128(5) == (7 << 64) | 9 and m.reg(7) == 7


def test_call_indirect_checks():
    ty = FuncType((I32,), (I32,))
    f = HostFunction(ty, lambda s, a: [a[0] * 2], "dbl")
    tab = make_table(3)
    tab.elements[:2] = [f, None]
    m = RefMachine(8, tables=[tab], types=[ty, FuncType((), ())])
    m.set_reg(3, 21)
    for index, type_index, error in ((0, 0, None), (1, 0, "uninitialized element"),
                                     (3, 0, "undefined element"),
                                     (0, 1, "indirect call type mismatch")):
        m.set_reg(1, index)
        if error:
            with pytest.raises(Trap, match=error):
                execute(m, "call_indirect", type_index, 0, 1, 3)
        else:
            execute(m, "call_indirect", type_index, 0, 1, 3)
            assert m.reg(3) == 42


def test_return_call_reuses_the_frame():
    ty = FuncType((I32, I32), (I32,))
    f = HostFunction(ty, lambda s, a: [(a[0] - a[1]) & 0xFFFFFFFF], "sub")
    m = RefMachine(8, funcs=[f], tables=[make_table(1, init=f)], types=[ty])
    m.set_reg(4, 10)
    m.set_reg(5, 3)
    execute(m, "return_call", 0, (5, 4))  # arguments swapped on the way to slots 0, 1
    assert m.returned and m.reg(0) == (3 - 10) & 0xFFFFFFFF
    m = RefMachine(8, funcs=[f], tables=[make_table(1, init=f)], types=[ty])
    m.set_reg(0, 0)  # the index register is slot 0, which the argument move overwrites
    m.set_reg(4, 10)
    m.set_reg(5, 3)
    execute(m, "return_call_indirect", 0, 0, 0, (4, 5))
    assert m.returned and m.reg(0) == 7


def test_traps_and_fuel():
    m = RefMachine(4, fuel=10)
    with pytest.raises(Trap, match="^unreachable$"):
        execute(m, "unreachable")
    for i, msg in enumerate(TRAP_MESSAGES):
        with pytest.raises(Trap) as e:
            execute(m, "trap", i)
        assert e.value.message == msg and trap_code(msg) == i
    with pytest.raises(ValidationError):
        trap_code("no such trap")
    execute(m, "fuel", 7)
    assert m.fuel == 3
    with pytest.raises(Trap, match="all fuel consumed"):
        execute(m, "fuel", 4)
    with pytest.raises(WasmError):
        execute(RefMachine(4), "mov", 9, 0)  # outside the frame


def test_every_ir_op_has_a_bytecode_form():
    assert set(opcodes.OPS) <= set(IR_FORMS)
    for name, forms in IR_FORMS.items():
        assert all(f in OPS for f in forms), name


def test_flags_follow_the_semantics():
    from deadeye.interp.isa import Flag
    for row in OP_LIST:
        if any(o.kind.role == "branch" or o.kind.name == "brtable" for o in row.operands):
            assert row.flags & Flag.BRANCH, row.name
        if row.numerics in numerics.TRAPPING:
            assert row.flags & Flag.TRAP, row.name
        if "mem" in row.names or row.name.endswith("_m0"):
            assert row.flags & Flag.MEMORY, row.name
    assert OPS["return"].flags & Flag.TERMINATOR and OPS["call"].flags & Flag.CALL


_SCALAR_OPS = sorted(n for n, i in numerics.INFO.items()
                     if V128 not in i.params + i.results and i.imm is None)


@st.composite
def _program(draw):
    """A straight-line sequence of scalar numeric ops over registers r0..r7, with a model of
    the expected register file computed directly with ir.numerics."""
    regs = [draw(value_strategy(I64)) for _ in range(8)]
    ops = []
    for _ in range(draw(st.integers(1, 10))):
        name = draw(st.sampled_from(_SCALAR_OPS))
        info = numerics.INFO[name]
        srcs = [draw(st.integers(0, 7)) for _ in info.params]
        dst = draw(st.integers(0, 7))
        ops.append((name, dst, srcs))
    return regs, ops


@settings(max_examples=150, deadline=None)
@given(_program())
def test_straight_line_sequences_match_a_numerics_model(program):
    regs, ops = program
    m = RefMachine(8)
    for r, v in enumerate(regs):
        m.set_reg(r, v)
    model = list(regs)
    code = b"".join(encode(name, dst, *srcs) for name, dst, srcs in ops)
    trap = None
    for name, dst, srcs in ops:
        info = numerics.INFO[name]
        args = [model[s] & ((1 << BITS[t]) - 1) for s, t in zip(srcs, info.params)]
        try:
            model[dst] = info.fn(*args)
        except Trap as t:
            trap = t.message
            break
    if trap is None:
        assert run(m, code) == len(code)
        assert m.regs == model
    else:
        with pytest.raises(Trap) as e:
            run(m, code)
        assert e.value.message == trap
