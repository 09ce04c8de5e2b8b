"""Each lowering rule, checked like `deadeye rules test`: IR built to match the rule's
pattern is lowered, the bytecode runs on the ISA reference semantics (`refexec`), and its
results must equal the IR's meaning (`ir.numerics` for operators, the memory it left),
traps included. Every rule of the `lower` term must fire somewhere in these checks; and
the (IR op, type) coverage has no holes."""

import random

import pytest

from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.table import OPS as ISA_OPS
from deadeye.interp.isa.refexec import RefMachine, make_memory, run as ref_run
from deadeye.interp.isa.semantics import read_values, write_values
from deadeye.ir import numerics
from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.errors import Trap
from deadeye.ir.function import IRModule
from deadeye.ir.types import FuncType, ValType
from deadeye.lower import coverage, isel
from deadeye.lower.compile import compile_function

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
BITS = {I32: 32, I64: 64, F32: 32, F64: 64, V128: 128}
ENV = IRModule(types=[FuncType((), ())], func_types=[0], memories=2)  # one defined function


def _special(t):
    b = BITS[t]
    out = [0, 1, (1 << b) - 1, 1 << (b - 1), (1 << (b - 1)) - 1]
    if t == F32:
        out += [0x7FC00000, 0x3F800000, 0xBF800000, 0x7F800000]
    if t == F64:
        out += [0x7FF8000000000000, 0x3FF0000000000000, 0xC000000000000000]
    return out


def rand(rng, t):
    return rng.choice(_special(t)) if rng.random() < 0.3 else rng.getrandbits(BITS[t])


def lower_and_run(func, args, memories=()):
    """Lower `func` alone, run it on the reference machine: ("ok", results) or ("trap", msg)."""
    code = CompiledCode(1)
    compile_function(func, ENV, code, 0)
    m = RefMachine(code.frame_size[0] + 4, memories=memories, pool=code.pool)
    write_values(m, 0, func.sig.params, args)
    try:
        ref_run(m, code.code, code.entry[0], code.end[0])
    except Trap as t:
        return ("trap", str(t).split("\n")[0])
    assert m.returned
    return ("ok", read_values(m, 0, func.sig.results))


def expect(fn, *args):
    try:
        return ("ok", [fn(*args)])
    except Trap as t:
        return ("trap", str(t).split("\n")[0])


def _imm_value(info, rng):
    if info.imm == "lane":
        return rng.randrange(info.imm_limit)
    if info.imm == "shuffle":
        return tuple(rng.randrange(32) for _ in range(16))
    return None


PURE = sorted(n for n in numerics.INFO if n in ISA_OPS)


@pytest.mark.parametrize("shard", range(4))
def test_pure_rule_every_operator(shard):
    """(lower (pure name)) -> the 3-address op of the same name, for every operator."""
    rng = random.Random(shard)
    for name in PURE[shard::4]:
        info = numerics.INFO[name]
        imm = _imm_value(info, rng)
        b = FunctionBuilder("f", FuncType(tuple(info.params), tuple(info.results)), ENV)
        r = b.ins(name, *b.params, imm=() if imm is None else (imm,))
        b.ret(r)
        func = b.finish()
        for _ in range(4):
            args = [rand(rng, t) for t in info.params]
            want = expect(numerics.OPS[name], *args, *(() if imm is None else (imm,)))
            assert lower_and_run(func, args) == want, (name, args, imm)


IMM_OPS = sorted(n for n in numerics.INFO if f"{n}_imm" in ISA_OPS)


@pytest.mark.parametrize("left", [False, True])
def test_immediate_rules(left):
    """`op x (const k)` -> `op_imm` (wide i64 constants via the pool); `op (const k) x`
    when op commutes or mirrors."""
    rng = random.Random(int(left))
    for name in IMM_OPS:
        info = numerics.INFO[name]
        t = info.params[0]
        for _ in range(3):
            k = rand(rng, t)
            b = FunctionBuilder("f", FuncType((t,), tuple(info.results)), ENV)
            c = b.const(t, k)
            x = b.params[0]
            b.ret(b.ins(name, *((c, x) if left else (x, c))))
            func = b.finish()
            for _ in range(3):
                a = rand(rng, t)
                want = expect(numerics.OPS[name], *((k, a) if left else (a, k)))
                assert lower_and_run(func, [a]) == want, (name, k, a, left)


CMPS = sorted(n for n in numerics.INFO if isel._is_scalar_cmp(n))


def test_fused_select_and_branch_rules():
    rng = random.Random(7)
    for name in CMPS:
        t = numerics.INFO[name].params[0]
        # select fused with the compare
        b = FunctionBuilder("f", FuncType((t, t, I64, I64), (I64,)), ENV)
        x, y, p, q = b.params
        b.ret(b.ins("select", p, q, b.ins(name, x, y)))
        fsel = b.finish()
        # br_if fused with the compare, registers and (ints) an immediate on either side
        funcs = []
        for form in ("reg", "imm_right", "imm_left"):
            if form != "reg" and t not in (I32, I64):
                continue
            k = rand(rng, t)
            b = FunctionBuilder("g", FuncType((t, t), (I32,)), ENV)
            x, y = b.params
            if form == "imm_right":
                y = b.const(t, k)
            elif form == "imm_left":
                x, y = b.const(t, k), x
            yes, no = b.create_block(fuel=1), b.create_block(fuel=1)
            b.br_if(b.ins(name, x, y), yes, [], no, [])
            b.switch_to(yes)
            b.ret(b.const(I32, 11))
            b.switch_to(no)
            b.ret(b.const(I32, 22))
            funcs.append((form, k, b.finish()))
        for _ in range(6):
            a, c = rand(rng, t), rand(rng, t)
            cond = numerics.OPS[name](a, c)
            assert lower_and_run(fsel, [a, c, 5, 6]) == ("ok", [5 if cond else 6]), (name, a, c)
            for form, k, g in funcs:
                if form == "reg":
                    want = numerics.OPS[name](a, c)
                elif form == "imm_right":
                    want = numerics.OPS[name](a, k)
                else:
                    want = numerics.OPS[name](k, a)
                assert lower_and_run(g, [a, c]) == ("ok", [11 if want else 22]), (name, form, k, a)


def test_eqz_branch_and_plain_select_rules():
    for t in (I32, I64):
        b = FunctionBuilder("f", FuncType((t,), (I32,)), ENV)
        yes, no = b.create_block(fuel=1), b.create_block(fuel=1)
        b.br_if(b.ins(f"{t}.eqz", b.params[0]), yes, [], no, [])
        b.switch_to(yes)
        b.ret(b.const(I32, 1))
        b.switch_to(no)
        b.ret(b.const(I32, 2))
        func = b.finish()
        for v in (0, 1, 1 << (BITS[t] - 1)):
            assert lower_and_run(func, [v]) == ("ok", [1 if v == 0 else 2])
    for t in (I32, F64, V128):
        b = FunctionBuilder("s", FuncType((t, t, I32), (t,)), ENV)
        b.ret(b.ins("select", *b.params))
        func = b.finish()
        for c in (0, 1, 1 << 31):
            assert lower_and_run(func, [3, 4, c]) == ("ok", [3 if c else 4])


def test_constant_rules():
    for t, k in ((I32, 0xFFFFFFFF), (F32, 0x7FC00001), (I64, 5), (I64, 0x8000000000000001),
                 (I64, (1 << 64) - 3), (F64, 0), (F64, 0x7FF0000000000001), (V128, (1 << 128) - 2)):
        b = FunctionBuilder("c", FuncType((), (t,)), ENV)
        b.ret(b.const(t, k))
        assert lower_and_run(b.finish(), []) == ("ok", [k])


LOADS = [("i32.load", I32), ("i64.load8_s", I64), ("i32.load16_u", I32), ("f64.load", F64),
         ("v128.load", V128), ("v128.load32_splat", V128), ("i64.load32_u", I64)]
STORES = [("i32.store", I32), ("i64.store16", I64), ("f32.store", F32), ("v128.store", V128)]


@pytest.mark.parametrize("mem", [0, 1])
def test_memory_rules(mem):
    """Loads/stores on memory 0 (`_m0` forms), on another memory, and with `x + k` folded
    into the offset only when x + k cannot wrap (x masked) — compared with the IR's meaning:
    the same access at ((x + k) mod 2^32) + offset."""
    rng = random.Random(mem)
    for op, t in LOADS + STORES:
        for fold in ("none", "masked", "unmasked"):
            is_store = op in dict(STORES)
            params = (I32, t) if is_store else (I32,)
            b = FunctionBuilder("m", FuncType(params, () if is_store else (t,)), ENV)
            addr = b.params[0]
            k = rng.choice([0, 8, 300, 0xFFFFFFF0])
            if fold != "none":
                if fold == "masked":
                    addr = b.ins("i32.and", addr, b.const(I32, 0xFF))
                addr = b.ins("i32.add", addr, b.const(I32, k))
            off = rng.choice([0, 4, 65000])
            if is_store:
                b.ins(op, addr, b.params[1], mem=mem, offset=off)
                b.ret()
            else:
                b.ret(b.ins(op, addr, mem=mem, offset=off))
            func = b.finish()
            for _ in range(4):
                x = rng.choice([0, 17, 0x12345, 0xFFFFFFFF, 65530, 200])
                val = rand(rng, t)
                mems = [make_memory(2), make_memory(2)]
                base = [make_memory(2), make_memory(2)]
                fill = bytes(rng.getrandbits(8) for _ in range(2 * 65536))
                for mm in mems + base:
                    mm.write(0, fill)
                a = x
                if fold == "masked":
                    a &= 0xFF
                if fold != "none":
                    a = (a + k) & 0xFFFFFFFF
                ea = a + off
                n = _access(op)
                want_trap = ea + n > 2 * 65536
                got = lower_and_run(func, [x, val] if is_store else [x], mems)
                if want_trap:
                    assert got == ("trap", "out of bounds memory access"), (op, fold, x, k, off)
                    continue
                if is_store:
                    assert got == ("ok", [])
                    raw = val & ((1 << (8 * n)) - 1)
                    base[mem].write(ea, raw.to_bytes(n, "little"))
                    assert bytes(mems[mem].read(0, 2 * 65536)) == bytes(base[mem].read(0, 2 * 65536))
                else:
                    raw = int.from_bytes(fill[ea:ea + n], "little")
                    fn = numerics.MEMORY_OPS.get(op)
                    assert got == ("ok", [fn(raw) if fn else raw]), (op, fold, x, k, off)


def _access(op):
    import re

    t, _, rest = op.partition(".")
    m = re.match(r"(?:load|store)(\d+)?(x\d+)?", rest)
    if m.group(2):
        return 8
    if m.group(1):
        return int(m.group(1)) // 8
    return {"i32": 4, "i64": 8, "f32": 4, "f64": 8, "v128": 16}[t]


def test_every_lowering_rule_fires():
    """Across the whole rule checks above plus small programs for calls, tables, globals
    and the remaining terminators, every rule of `lower` fired at least once."""
    import deadeye

    rs = isel.lowering_rules()
    rs.reset_counters()
    for test in (test_constant_rules, test_eqz_branch_and_plain_select_rules,
                 test_fused_select_and_branch_rules):
        test()
    test_immediate_rules(False)
    test_immediate_rules(True)
    test_memory_rules(0)
    test_memory_rules(1)
    from test_lower_semantics import PROGRAMS

    import wasmtime

    from lower_testlib import lower_module

    for wat, _ in PROGRAMS.values():  # (their semantics: test_lower_semantics.py)
        lower_module(wasmtime.wat2wasm(wat))
    wat = """(module (import "m" "h" (func $h (param i32) (result i32)))
      (table 1 funcref) (memory 1) (data "x") (elem func $g) (global $v (mut v128) (v128.const i64x2 1 2))
      (global $s (mut f32) (f32.const 1))
      (func $g (export "g") (param i32) (result i32)
        (global.set $v (global.get $v)) (global.set $s (global.get $s))
        (table.set (i32.const 0) (ref.func $g)) (data.drop 0) (elem.drop 0)
        (drop (ref.is_null (ref.null extern)))
        (drop (memory.grow (i32.const 0)))
        (if (i32.eqz (local.get 0)) (then (unreachable)))
        (call $h (local.get 0))))"""
    engine = deadeye.Engine(deadeye.Config(engine="interp"))
    store = deadeye.Store(engine)
    i32 = deadeye.ValType.i32()
    host = deadeye.Func(store, deadeye.FuncType([i32], [i32]), lambda x: x)
    inst = deadeye.Instance(store, deadeye.Module(engine, wat), [host])
    assert inst.exports(store)["g"](store, 3) == 3
    # An explicit trap (the optimizer's, e.g. for a division by constant zero) and a
    # br_if on a plain register.
    b = FunctionBuilder("t", FuncType((I32,), (I32,)), ENV)
    yes, no = b.create_block(fuel=1), b.create_block(fuel=1)
    b.br_if(b.params[0], yes, [], no, [])
    b.switch_to(yes)
    b.trap(numerics.DIV_BY_ZERO)
    b.switch_to(no)
    b.ret(b.const(I32, 9))
    func = b.finish()
    assert lower_and_run(func, [0]) == ("ok", [9])
    assert lower_and_run(func, [1 << 31]) == ("trap", numerics.DIV_BY_ZERO)
    fired = {r.where for r, n in rs.rule_counts() if n}
    never = [f"{r.where}: {r.text}" for r in rs.rules if r.where not in fired]
    assert not never, "\n".join(never)


def test_coverage_has_no_holes():
    assert coverage.uncovered() == []
    assert sum(1 for _ in coverage.samples()) > 400


def test_coverage_reports_a_missing_rule(tmp_path):
    """Without the select rules, every select pair is reported uncovered."""
    from deadeye.lower.dsl import load_rules

    for f in isel.rules_dir().glob("*.isle"):
        text = f.read_text()
        if f.name == "values.isle":
            text = "\n".join(line for line in text.splitlines()
                             if "(select " not in line and "emit_select" not in line
                             and "one_slot" not in line and "select_op" not in line)
        (tmp_path / f.name).write_text(text)
    rs = load_rules([tmp_path], isel._env(), use_cache=False)
    missing = coverage.uncovered(rs)
    assert ("select", "i32") in missing and ("select", "v128") in missing
    assert all(op == "select" for op, _ in missing)


def test_rules_test_domain_checks_every_buildable_rule():
    """`deadeye rules test --rules lower`: the hook property-tests every rule but the
    state ops' one; none fails."""
    from deadeye.lower.dsl.ruletest import test_rules
    from deadeye.lower.ruletest_domain import rules_test_domain

    prog, rs, domain = rules_test_domain()
    report = test_rules(prog, rs, domain, max_examples=6)
    assert not report.failed, "\n".join(r.line() for r in report.failed)
    untested = {r.text.split("@ (")[1].split()[0].rstrip(")") for r in report.untested}
    assert untested <= {"state"}  # table/memory state ops: whole programs test them
    assert len(report.rules) - len(report.untested) >= 38
