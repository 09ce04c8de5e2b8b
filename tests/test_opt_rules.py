"""The mid-end rules (rules/opts), their driver (opt/rewrite.py) and `deadeye rules
check|test|coverage`."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.cli import main
from deadeye.frontend.lift import lift_module
from deadeye.frontend.module import parse_module
from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.text import parse_function, print_function
from deadeye.ir.verify import verify
from deadeye.lower.dsl.ruletest import test_rules as run_rule_tests
from deadeye.opt import manager, optimize
from deadeye.opt import rewrite
from deadeye.opt.manager import Budget
from deadeye.opt.rule_check import load_checked
from deadeye.opt.rule_env import OP_VARIANTS, RuleEnv
from opt_testlib import ENV, INTERESTING, SIG, WIDTH, Generator, evaluate

ROOT = Path(__file__).resolve().parent.parent
OPTS = ROOT / "rules" / "opts"
I32, I64, F32, F64 = SIG.params


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEADEYE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DEADEYE_RULES_CHAOS", raising=False)
    monkeypatch.delenv("DEADEYE_RULES_TRACE", raising=False)
    yield
    rewrite.set_chaos(None)
    rewrite.set_trace(None)


def _lift(wat: str):
    env = lift_module(parse_module(bytes(wasmtime.wat2wasm(wat))))
    return env, env.functions[0]


def _ops(func) -> list[str]:
    return [ins.op.name for ins in func.instructions()]


# -- the rule files --------------------------------------------------------------------------

def test_prelude_op_enum_is_the_numerics_table():
    text = (OPTS / "prelude.isle").read_text()
    body = re.search(r"\(type Op \(enum([^)]*)\)\)", text).group(1)
    assert sorted(body.split()) == OP_VARIANTS


def test_rules_check_shipped_folder_exits_0(capsys):
    assert main(["rules", "check", str(ROOT / "rules")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ok: \d+ file\(s\).* in \S*rules/opts$", out, re.M)


def test_every_rule_passes_its_property_test():
    prog, rs, domain = load_checked([OPTS])
    report = run_rule_tests(prog, rs, domain, max_examples=10)
    assert len(report.rules) == len([r for r in prog.rules if r.lhs.term == "simplify"])
    assert not report.failed, "\n".join(r.line() for r in report.failed)
    assert not report.untested, "\n".join(r.line() for r in report.untested)


@pytest.mark.parametrize("bad, why", [
    # Traps: x / x is 1 except that 0 / 0 traps.
    ("(rule 3 (simplify (binary ty Op.DivS x x)) (const ty 1))", "trap"),
    # Not IEEE-exact: x * 1.0 quiets a signalling NaN (and is wrong for the integer types).
    ("(rule 3 (simplify (binary Ty.F32 Op.Mul x (const _ 0x3f800000))) x)", "gives"),
    # Off by one in a shift count.
    ("(rule 3 (simplify (binary ty Op.DivU x (const _ 4))) (binary ty Op.ShrU x (const ty 1)))",
     "gives"),
])
def test_rule_tests_find_unsound_rules(tmp_path, bad, why):
    d = tmp_path / "opts"
    d.mkdir()
    (d / "prelude.isle").write_text((OPTS / "prelude.isle").read_text())
    (d / "bad.isle").write_text(bad + "\n")
    prog, rs, domain = load_checked([d])
    report = run_rule_tests(prog, rs, domain, max_examples=60)
    assert len(report.failed) == 1 and why in report.failed[0].failure, report.summary()


def test_rules_test_cli_on_one_file(capsys):
    code = main(["rules", "test", "--examples", "10", "-v", str(OPTS / "float.isle")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("ok   ") == 3 and "opts: 3 rule(s) ok, 0 failed" in out


def test_sdiv_magic_is_exact_on_edges_and_samples():
    import random

    from deadeye.ir import numerics

    rng = random.Random(7)
    for d in [3, 5, 6, 7, 10, 11, 12, 25, 100, 641, 1000, 12345, 2**31 - 1, 0x55555555]:
        m, p = RuleEnv.sdiv_magic(d)
        for x in [0, 1, d - 1, d, d + 1, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32 - d,
                  *(rng.getrandbits(32) for _ in range(300))]:
            sx = x - (1 << 32) if x >> 31 else x
            q = ((sx * m) >> p) + (1 if sx < 0 else 0)
            assert q & 0xFFFFFFFF == numerics.i32_div_s(x, d), (d, x)
    assert RuleEnv.sdiv_magic(8) is None and RuleEnv.sdiv_magic(1) is None


# -- the driver ------------------------------------------------------------------------------

WAT = """(module (func (export "f") (param i32 i64) (result i32)
  local.get 0 i32.const 0 i32.add i32.const 8 i32.mul          ;; x*8 -> shl
  i32.const 3 i32.add i32.const 4 i32.add                       ;; reassociated
  local.get 0 i32.const 16 i32.div_u i32.add                    ;; shr_u
  local.get 0 local.get 0 i32.sub i32.add                       ;; x - x
  local.get 1 i32.wrap_i64 i64.extend_i32_u i64.const 0 i64.ne i32.add
  local.get 0 i32.const 7 i32.div_s i32.add                     ;; magic
  local.get 0 i32.const -8 i32.div_s i32.add                    ;; stays (negative divisor)
  local.get 0 i32.const 0 i32.div_s drop                        ;; traps: stays
  ))"""


def test_driver_rewrites_and_keeps_semantics():
    env, func = _lift(WAT)
    before = print_function(func)
    trace = io.StringIO()
    rewrite.set_trace(trace)
    n = rewrite.rewrite_function(func)
    verify(func, env)
    ops = _ops(func)
    assert n >= 6
    assert "i32.mul" not in ops and "i32.div_u" not in ops and "i32.sub" not in ops
    assert ops.count("i32.div_s") == 2  # by -8 (not rewritten) and by 0 (traps)
    assert "i64.extend_i32_u" not in ops and "i64.and" in ops
    assert re.search(r"algebra\.isle:\d+: %\S+: v\d+ = i32\.mul -> v\d+", trace.getvalue())
    assert "strength.isle:" in trace.getvalue()
    orig = parse_function(before, env)
    for x in [0, 1, 7, 2**31, 2**32 - 1, 123456789, 2**31 - 1, 2**32 - 7]:
        for y in [0, 2**64 - 1, 2**32 + 5]:
            assert evaluate(func, [x, y])[0] == evaluate(orig, [x, y])[0], (x, y)


def test_branch_condition_eqz_swaps_targets():
    env, func = _lift("""(module (func (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 10)) (else (i32.const 20)))))""")
    orig = parse_function(print_function(func), env)
    assert "i32.eqz" in _ops(func)
    rewrite.rewrite_function(func)
    verify(func, env)
    assert "i32.eqz" not in _ops(func)
    for x in [0, 1, 5]:
        assert evaluate(func, [x])[0] == evaluate(orig, [x])[0]


def test_constants_get_one_definition_in_the_entry_block():
    env, func = _lift("""(module (func (param i32) (result i32)
        (if (result i32) (local.get 0) (then (i32.add (local.get 0) (i32.const 1234)))
            (else (i32.sub (local.get 0) (i32.const 1234))))))""")
    rewrite.rewrite_function(func)
    verify(func, env)
    consts = [ins for ins in func.instructions() if ins.op.name.endswith(".const")]
    assert all(ins.block is func.entry for ins in consts)
    assert len({(i.op.name, i.imm) for i in consts}) == len(consts)


def test_budget_bounds_a_rule_set_that_never_converges(tmp_path):
    d = tmp_path / "opts"
    d.mkdir()
    (d / "prelude.isle").write_text((OPTS / "prelude.isle").read_text())
    # Commuting back and forth: sound, but it never reaches a fixpoint.
    (d / "loop.isle").write_text("(rule (simplify (binary Ty.I32 Op.Add x y)) (binary Ty.I32 Op.Add y x))\n")
    rules = rewrite.load([d], use_cache=False)
    env, func = _lift("(module (func (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))")
    size = sum(len(b.instrs) for b in func.blocks)
    n = rewrite.rewrite_function(func, rules=rules)
    verify(func, env)
    assert n == rewrite.REWRITES_BASE + rewrite.REWRITES_PER_INSTR * size
    assert evaluate(func, [5, 7])[0] == ("return", (12,))
    # The pass manager's budget stops it sooner.
    env, func = _lift("(module (func (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))")
    assert rewrite.rewrite_function(func, rules=rules, budget=Budget(10)) < 10


def test_chaos_mode_fires_other_rules_and_stays_sound(monkeypatch):
    fired = set()
    for seed in range(6):
        monkeypatch.setenv("DEADEYE_RULES_CHAOS", str(seed))
        env, func = _lift(WAT)
        orig = parse_function(print_function(func), env)
        trace = io.StringIO()
        rewrite.set_trace(trace)
        rewrite.rewrite_function(func)
        verify(func, env)
        fired |= set(re.findall(r"(\w+\.isle:\d+)", trace.getvalue()))
        for x in [0, 1, 2**31, 2**32 - 1, 99]:
            assert evaluate(func, [x, 3])[0] == evaluate(orig, [x, 3])[0]
    assert len(fired) > 6


# -- soundness on random IR ------------------------------------------------------------------

# Random expression trees over the ops the rules look at, with the constants they look for.
TREE_OPS = {
    I32: ["i32.add", "i32.sub", "i32.mul", "i32.and", "i32.or", "i32.xor", "i32.shl",
          "i32.shr_s", "i32.shr_u", "i32.rotl", "i32.div_s", "i32.div_u", "i32.rem_s",
          "i32.rem_u", "i32.eq", "i32.ne", "i32.lt_s", "i32.ge_u", "i32.eqz", "i32.wrap_i64",
          "i64.eqz", "i64.lt_u", "i32.extend8_s", "i32.reinterpret_f32", "select"],
    I64: ["i64.add", "i64.sub", "i64.mul", "i64.and", "i64.or", "i64.shl", "i64.shr_u",
          "i64.div_s", "i64.div_u", "i64.rem_u", "i64.extend_i32_u", "i64.extend_i32_s",
          "i64.extend32_s", "select"],
    F32: ["f32.neg", "f32.abs", "f32.mul", "f32.add", "f32.reinterpret_i32", "select"],
    F64: ["f64.neg", "f64.abs", "f64.sub", "select"],
}
RULE_CONSTS = {I32: [0, 1, 2, 3, 4, 7, 8, 16, 24, 31, 0xFFFFFFFF, 0x80000000],
               I64: [0, 1, 2, 4, 7, 32, 63, 0xFFFFFFFF, 2**64 - 1, 2**63]}


def _tree(data, fb, t, depth):
    from deadeye.ir import numerics

    leaf = depth == 0 or data.draw(st.integers(0, 3)) == 0
    if leaf:
        if data.draw(st.booleans()):
            return fb.params[SIG.params.index(t)]
        pool = RULE_CONSTS.get(t, INTERESTING[t])
        return fb.const(t, data.draw(st.one_of(st.sampled_from(pool),
                                               st.integers(0, (1 << WIDTH[t]) - 1))))
    name = data.draw(st.sampled_from(TREE_OPS[t]))
    if name == "select":
        return fb.ins("select", _tree(data, fb, t, depth - 1), _tree(data, fb, t, depth - 1),
                      _tree(data, fb, I32, depth - 1))
    params = numerics.INFO[name].params
    shared = _tree(data, fb, params[0], depth - 1)
    args = [shared if i and data.draw(st.integers(0, 3)) == 0 and p == params[0]
            else (shared if not i else _tree(data, fb, p, depth - 1))
            for i, p in enumerate(params)]
    return fb.ins(name, *args)


def _random_tree_function(data):
    fb = FunctionBuilder("t", SIG, env=ENV)
    fb.ret(*[_tree(data, fb, t, 4) for t in SIG.results])
    return fb.finish()


def _inputs(data):
    return [data.draw(st.one_of(st.sampled_from(INTERESTING[t]),
                                st.integers(0, (1 << WIDTH[t]) - 1))) for t in SIG.params]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.sampled_from([None, 1, 2, 3]))
def test_rewriting_random_expressions_keeps_results(data, chaos):
    rewrite.set_chaos(chaos)
    func = _random_tree_function(data)
    text = print_function(func)
    rewrite.rewrite_function(func)
    verify(func, ENV)
    orig = parse_function(text, ENV)
    for _ in range(4):
        args = _inputs(data)
        assert evaluate(func, args)[0] == evaluate(orig, args)[0], \
            f"{args}\n--- before\n{text}--- after\n{print_function(func)}"


def test_rules_run_at_O2():
    assert "rules" in manager.PIPELINES[2]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_O0_and_O2_agree_on_random_functions(data):
    func = Generator(data, st).build()
    text = print_function(func)
    optimize(func, 2, env=ENV, verify=True)
    orig = parse_function(text, ENV)
    for _ in range(3):
        args = _inputs(data)
        memory = data.draw(st.binary(min_size=256, max_size=256))
        a, b = evaluate(orig, args, memory), evaluate(func, args, memory)
        assert a[:3] == b[:3], f"--- -O0\n{text}--- -O2\n{print_function(func)}"


# -- the pipeline, the spec suite, coverage, impact ---------------------------------------------

SPEC = ROOT / "tests" / "spec" / "core"
ARITHMETIC = ["i32", "i64", "f32", "f64", "conversions", "int_exprs", "float_exprs",
              "f32_bitwise", "f64_bitwise", "float_misc", "select", "int_literals"]


def _run_spec(names):
    from deadeye import wast, wast_backend

    old = dict(wast_backend.CONFIG_DEFAULTS)
    wast_backend.CONFIG_DEFAULTS["opt_level"] = 2
    try:
        return wast.run_paths([str(SPEC / f"{n}.wast") for n in names], "ir")
    finally:
        wast_backend.CONFIG_DEFAULTS.clear()
        wast_backend.CONFIG_DEFAULTS.update(old)


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_spec_arithmetic_at_O2_in_chaos_mode(seed):
    rewrite.set_chaos(seed)
    before = sum(rewrite.rule_counters().values())
    result = _run_spec(ARITHMETIC)
    assert result.total("failed") == 0, result.summary()
    assert result.total("passed") > 3000
    assert sum(rewrite.rule_counters().values()) > before


def test_wast_cli_takes_O(capsys):
    code = main(["wast", "--engine", "ir", "-O2", str(SPEC / "int_exprs.wast")])
    out = capsys.readouterr().out
    assert code == 0 and out.rstrip().endswith("passed, 0 failed")
    from deadeye import wast_backend

    assert wast_backend.CONFIG_DEFAULTS.pop("opt_level") == 2


def test_rules_coverage_lists_rules_that_never_fired(capsys):
    wasm = ROOT / "tests" / "sightglass" / "shootout-gimli.wasm"
    code = main(["rules", "coverage", "--rules", "opts", "--all", str(wasm),
                 str(SPEC / "int_exprs.wast")])
    out = capsys.readouterr().out
    assert code == 0
    m = re.match(r"opts: (\d+)/(\d+) rule\(s\) fired on (\d+) module\(s\)", out)
    assert m and 0 < int(m[1]) < int(m[2]) and int(m[3]) > 10
    assert "never fired: " in out and re.search(r"^\s+\d+\s+\S+\.isle:\d+$", out, re.M)
    assert main(["rules", "coverage", "--rules", "nope", str(wasm)]) == 2


def test_sightglass_O2_has_25_percent_fewer_ir_instructions():
    from deadeye.frontend.lift import ModuleLifter, lift_function

    total0 = total2 = 0
    for path in sorted((ROOT / "tests" / "sightglass").glob("*.wasm")):
        module = parse_module(path.read_bytes())
        lifter = ModuleLifter(module)
        for i in range(len(module.func_types)):
            total0 += sum(len(b.instrs) for b in lifter.function(i).blocks)
            func = lift_function(module, i, lifter.env)
            optimize(func, 2, env=lifter.env)
            total2 += sum(len(b.instrs) for b in func.blocks)
    reduction = 1 - total2 / total0
    print(f"sightglass IR instructions: -O0 {total0}, -O2 {total2} ({reduction:.1%} fewer)")
    assert reduction >= 0.25


# A rewritten instruction whose user was rewritten first (mul -> shl after add x, mul was
# commuted): the dead-code sweep must not visit it again (regression: spec switch.wast).
CHAIN = """function %arg(v0: i32) -> i32 {
block0(v0: i32) fuel=14:
    v1 = i32.const 10
    v2 = i32.const 100
    v3 = i32.const 1000
    v4 = i32.const 2
    v5 = i32.mul v4, v0
    v6 = i32.const 3
    v7 = i32.and v6, v0
    br_table v7, [block1(v5), block2(v5), block3(v5)], block4(v5)
block1(v8: i32) fuel=2:
    v13 = i32.add v2, v8
    jump block2(v13)
block2(v9: i32) fuel=2:
    v14 = i32.add v1, v9
    jump block3(v14)
block3(v10: i32) fuel=1:
    return v10
block4(v11: i32) fuel=2:
    v12 = i32.add v3, v11
    jump block1(v12)
}
"""


def test_rewrites_of_chains_in_any_order():
    func = parse_function(CHAIN)
    optimize(func, 2, verify=True)
    assert "i32.mul" not in _ops(func)
    orig = parse_function(CHAIN)
    for x in range(-2, 10):
        assert evaluate(func, [x & 0xFFFFFFFF])[0] == evaluate(orig, [x & 0xFFFFFFFF])[0]
