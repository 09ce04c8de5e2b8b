"""NaN canonicalization: the IR pass (`opt.nan_canon`), its use by every engine through the
pipeline, and `deadeye verify-nan` over the NaN-producing programs in tests/nan/."""

import io
import itertools
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import deadeye
from deadeye import wast_backend
from deadeye.cli import main as cli_main
from deadeye.frontend.lift import lift_function, module_env
from deadeye.frontend.module import parse_module
from deadeye.ir import numerics
from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.types import FuncType
from deadeye.ir.verify import problems
from deadeye.opt import optimize
from deadeye.opt.nan_canon import CANONICAL, SHAPES, canonicalize_nans
from deadeye.verify_nan import edge_values, verify_nan

NAN_DIR = Path(__file__).parent / "nan"
NAN_FILES = sorted(NAN_DIR.glob("*.wat"))
SPEC = Path(__file__).parent / "spec" / "core"
ENGINES = deadeye.builtin_engines()


# -- the pass on IR ---------------------------------------------------------------------

def _eval_straight(func, args):
    """Evaluate a straight-line IR function (one block) with ir.numerics."""
    regs = dict(zip(func.params, args))
    for ins in func.blocks[0].instrs:
        name = ins.op.name
        vals = [regs[a] for a in ins.args]
        if name == "return":
            return vals
        if name.endswith(".const"):
            out = ins.imm[0]
        elif name == "select":
            out = vals[0] if vals[2] else vals[1]
        else:
            out = numerics.OPS[name](*vals, *ins.imm)
        regs[ins.results[0]] = out
    raise AssertionError("no return")


def _one_op_function(name):
    sig = numerics.SIGNATURES[name]
    fb = FunctionBuilder(name, FuncType(sig.params, sig.results))
    fb.ret(fb.ins(name, *fb.params))
    return fb.finish()


def test_every_canonicalized_op_has_a_shape():
    assert set(CANONICAL) == set(numerics.NAN_CANONICALIZE)
    assert set(CANONICAL.values()) <= set(SHAPES)
    for keep in ("f32.abs", "f64.neg", "f32.copysign", "f32x4.pmin", "f64x2.pmax",
                 "f32.reinterpret_i32", "f64x2.abs"):
        assert keep not in CANONICAL


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_pass_result_is_canonicalized_numerics(name):
    """For every op the pass handles: the canonicalized function computes exactly
    NAN_CANONICALIZE[op](op(args)) on edge inputs (NaN payloads, infinities, zeros)."""
    func = _one_op_function(name)
    assert canonicalize_nans(func) == 1
    assert problems(func) == []
    params = numerics.SIGNATURES[name].params
    combos = list(itertools.product(*[edge_values(t)[:7] for t in params]))[:60]
    for args in combos:
        raw = numerics.OPS[name](*args)
        assert _eval_straight(func, args) == [numerics.NAN_CANONICALIZE[name](raw)], (name, args)


WAT_MIX = """(module (func (export "f") (param f32 f32 v128) (result f32 v128 f32)
  (local f32)
  (local.set 3 (f32.add (local.get 0) (local.get 1)))
  (block (br_if 0 (f32.lt (local.get 3) (f32.const 0)))
    (local.set 3 (f32.copysign (f32.abs (local.get 3)) (local.get 1))))
  (local.get 3)
  (f64x2.mul (local.get 2) (f32x4.pmin (local.get 2) (local.get 2)))
  (f32.neg (local.get 3))))"""


def _lifted(wat):
    module = parse_module(deadeye.wat2wasm(wat))
    env = module_env(module)
    return lift_function(module, 0, env), env


def test_pass_inserts_ir_ops_and_redirects_uses():
    func, env = _lifted(WAT_MIX)
    before = [i.op.name for i in func.instructions()]
    assert canonicalize_nans(func) == 2  # f32.add, f64x2.mul; not abs/copysign/pmin/neg
    assert problems(func, env) == []
    after = [i.op.name for i in func.instructions()]
    assert after.count("select") - before.count("select") == 1
    assert after.count("v128.bitselect") == 1 and after.count("f64x2.ne") == 1
    assert after.count("f32.ne") == 1
    uses = func.uses()
    for ins in func.instructions():
        if ins.op.name in CANONICAL:  # the raw result feeds only its own canonicalization
            users = {u.op.name for u in uses[ins.results[0]]}
            assert users == {SHAPES[CANONICAL[ins.op.name]][2], SHAPES[CANONICAL[ins.op.name]][3]}
    fuel = [b.fuel for b in func.blocks]
    image = func.as_tuple()
    assert canonicalize_nans(func) == 0  # idempotent
    assert func.as_tuple() == image and [b.fuel for b in func.blocks] == fuel


def test_pass_is_registered_with_the_manager():
    func, env = _lifted(WAT_MIX)
    optimize(func, env=env, passes="nan_canon", verify=True)
    assert sum(i.op.name == "v128.bitselect" for i in func.instructions()) == 1


# -- the engines, through the pipeline ---------------------------------------------------

def _instance(wat_path, engine, level, canon):
    eng = deadeye.Engine(deadeye.Config(engine=engine, opt_level=level,
                                        nan_canonicalization=canon))
    store = deadeye.Store(eng)
    module = deadeye.Module(eng, deadeye.wat2wasm(wat_path.read_text()))
    return store, deadeye.Instance(store, module, []).exports(store)


def _lanes(v, width):
    return [(v >> (width * i)) & ((1 << width) - 1) for i in range(128 // width)]


F32_SNAN, F64_QNAN_PAYLOAD = 0x7FA00001, 0xFFF8000000000123


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("level", [0, 2])
def test_engines_give_canonical_bits(engine, level):
    c32, c64 = numerics.CANONICAL_NAN_F32, numerics.CANONICAL_NAN_F64
    store, ex = _instance(NAN_DIR / "arith.wat", engine, level, True)
    assert ex["f32_add"].call_bits(store, [F32_SNAN, 0x3F800000]) == [c32]
    assert ex["f32_zero_div_zero"].call_bits(store, []) == [c32]
    assert ex["f64_inf_minus_inf"].call_bits(store, []) == [c64]
    assert ex["f32_payload_plus_one"].call_bits(store, []) == [c32]
    assert ex["f64_sum_to_nan"].call_bits(store, [F64_QNAN_PAYLOAD, 5]) == [c64]
    # Non-NaN results are untouched.
    one = 0x3FF0000000000000
    assert ex["f64_add"].call_bits(store, [one, one]) == [numerics.f64_add(one, one)]

    store, ex = _instance(NAN_DIR / "convert.wat", engine, level, True)
    assert ex["promote"].call_bits(store, [F32_SNAN]) == [c64]
    assert ex["demote"].call_bits(store, [F64_QNAN_PAYLOAD]) == [c32]
    assert ex["div_bits"].call_bits(store, [0, 0]) == [c32]
    ex["store_sqrt"].call_bits(store, [8, 0xBFF0000000000000])  # sqrt(-1) to memory
    assert ex["load64"].call_bits(store, [8]) == [c64]
    # neg only flips the sign bit: not canonicalized (as in wasmtime/Cranelift)
    assert ex["neg_bits"].call_bits(store, [F32_SNAN]) == [F32_SNAN | 0x80000000]

    store, ex = _instance(NAN_DIR / "simd.wat", engine, level, True)
    ex["f32x4_add"].call_bits(store, [F32_SNAN, 0x7F800000])
    mem = ex["mem"].read(store, 0, 16)
    lanes = _lanes(int.from_bytes(mem, "little"), 32)
    # lane 1 adds 2.0 to the payload NaN, the others inf to it: all NaN, all canonical
    assert lanes == [c32] * 4
    a = (0x3FF0000000000000 << 64) | 0x7FF4000000000001  # lanes: sNaN payload, 1.0
    b = (0x7FF0000000000000 << 64) | 0x4000000000000000  # lanes: 2.0, inf
    (res,) = ex["v128_mul"].call_bits(store, [a, b])
    assert _lanes(res, 64) == [c64, 0x7FF0000000000000]


@pytest.mark.parametrize("path", NAN_FILES, ids=lambda p: p.stem)
def test_verify_nan_suite_is_clean(path):
    wasm = deadeye.wat2wasm(path.read_text())
    report = verify_nan(wasm, samples=12)
    assert report.ok, report.format()
    assert report.calls > 0 and len(report.configs) == 2 * len(ENGINES)
    # Without the mode the same programs do produce non-canonical NaNs: the check bites.
    off = verify_nan(wasm, samples=12, opt_levels=(0,), nan_canonicalization=False)
    assert any(f.kind == "non-canonical" for f in off.findings)


REINTERPRET = """(module (func (export "r") (param i32) (result f32) (f32.reinterpret_i32 (local.get 0))))"""


def test_verify_nan_cli(tmp_path, capsys):
    good = tmp_path / "arith.wasm"
    good.write_bytes(deadeye.wat2wasm((NAN_DIR / "sqrt_minmax.wat").read_text()))
    assert cli_main(["verify-nan", str(good), "--samples", "6"]) == 0
    assert "ok" in capsys.readouterr().out
    # A reinterpreted NaN payload is not an arithmetic result: reported, exit 1.
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(deadeye.wat2wasm(REINTERPRET))
    assert cli_main(["verify-nan", str(bad), "--engines", "ir", "-O", "0"]) == 1
    out = capsys.readouterr().out
    assert "non-canonical: r(0x7fc00001) on ir:O0" in out
    assert cli_main(["verify-nan", str(bad), "--engines", "nope"]) == 1
    assert "not available" in capsys.readouterr().err


def test_divergence_between_engines_is_reported(monkeypatch):
    """A deliberately wrong op on one engine configuration shows up as a divergence."""
    import deadeye.pipeline as pipeline

    real = pipeline.optimized_function

    def wrong(module, index, level, canon=False, strict=False):
        func = real(module, index, level, canon, strict)
        if level == 2:
            for ins in func.instructions():
                if ins.op.name == "f64.sqrt":
                    ins.op = numerics_op("f64.neg")
        return func

    monkeypatch.setattr(pipeline, "optimized_function", wrong)
    wasm = deadeye.wat2wasm((NAN_DIR / "convert.wat").read_text())
    report = verify_nan(wasm, engines=["ir"], samples=24)
    kinds = {(f.kind, f.export) for f in report.findings}
    assert ("divergence", "store_sqrt") in kinds
    assert any("memory contents differ" in f.detail for f in report.findings)


def numerics_op(name):
    from deadeye.ir.opcodes import OPS

    return OPS[name]


# -- the spec suite's NaN expectations ------------------------------------------------------

@pytest.mark.parametrize("canon", [False, True])
def test_spec_nan_results(monkeypatch, canon):
    """nan:arithmetic / nan:canonical results of the spec suite pass on the "ir" engine
    with the mode off (payloads propagate per the rule) and on (the canonical NaN is
    both an arithmetic and a canonical NaN)."""
    monkeypatch.setitem(wast_backend.CONFIG_DEFAULTS, "nan_canonicalization", canon)
    out = io.StringIO()
    with redirect_stdout(out):
        cli_main(["wast", "--engine", "ir", str(SPEC / "f32.wast"),
                  str(SPEC / "simd_f64x2_arith.wast"), str(SPEC / "conversions.wast")])
    last = out.getvalue().strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), out.getvalue()
    assert int(last.split()[0]) > 4000  # the scripts really ran
