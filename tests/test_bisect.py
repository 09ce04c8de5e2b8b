"""The divergence bisector: a deliberate miscompile injected at one opt level is located
at the wasm block that contains it."""

import pytest

import deadeye
from deadeye.bisect import Side, bisect, parse_side
from deadeye.cli import main as cli_main
from deadeye.frontend.decoder import decode_body
from deadeye.frontend.module import parse_module
from deadeye.ir import numerics
from deadeye.ir.opcodes import OPS as IR_OPS
from deadeye.opt import manager

WAT = """(module
  (memory (export "mem") 1)
  (global $g (mut i32) (i32.const 0))
  (func $fill (param $n i32) (local $i i32)
    (loop $l
      (i32.store (i32.shl (local.get $i) (i32.const 2)) (i32.add (local.get $i) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  (func $scale (export "scale") (param $n i32) (result i32) (local $k i32)
    (call $fill (local.get $n))
    (local.set $k (i32.load (i32.const 4)))
    (if (i32.gt_u (local.get $n) (i32.const 3))
      (then
        (global.set $g (i32.mul (local.get $n) (local.get $k)))
        (i32.store (i32.const 2000) (global.get $g))))
    (i32.load (i32.const 2000))))
"""


@pytest.fixture(scope="module")
def wasm():
    return deadeye.wat2wasm(WAT)


@pytest.fixture
def miscompile_mul_at_o2(monkeypatch):
    """A bogus pass at level 2 that turns every i32.mul into i32.add."""

    def bogus(func, ctx):
        changed = False
        for ins in func.instructions():
            if ins.op.name == "i32.mul":
                ins.op = IR_OPS["i32.add"]
                changed = True
        return changed

    monkeypatch.setitem(manager.PASSES, "bogus_mul", bogus)
    monkeypatch.setitem(manager.PIPELINES, 2, manager.PIPELINES[2] + ("bogus_mul",))


def _offset_of(wasm, func_name_index, op):
    module = parse_module(wasm)
    _, instrs = decode_body(module, func_name_index)
    return next(i.offset for i in instrs if i.op == op)


def test_no_divergence_without_miscompile(wasm):
    for b in (Side("ir", 2), Side("ir", 0)):
        res = bisect(wasm, "scale", [10], Side("ir", 0), b)
        assert not res.diverged, res.format()
        assert "no divergence" in res.format()


SIDES_O2 = [Side("ir", 2), Side("interp", 2)]


@pytest.mark.parametrize("other", SIDES_O2, ids=lambda s: s.label)
def test_miscompile_located_at_its_block(wasm, miscompile_mul_at_o2, other):
    res = bisect(wasm, "scale", [10], Side("ir", 0), other)
    assert res.diverged
    mul_off = _offset_of(wasm, 1, "i32.mul")
    name, index, offset = res.location
    assert index == 1 and name == "scale"
    # The reported block is the one holding the multiplication.
    ops = {op: off for off, op, _ in res.instructions}
    assert "i32.mul" in ops and ops["i32.mul"] == mul_off
    assert offset <= mul_off
    text = res.format()
    assert "global 0" in text  # the global the product went to differs first
    # The IR evaluator side's replay of that block shows the operands and the product.
    ref = res.operands["ir:O0"]
    k = 1 + 1  # $fill stores i + 1 at 4 * i; $scale loads address 4
    want = numerics.OPS["i32.mul"](10, k)
    mul_line = next(line for line in ref if "i32.mul" in line)
    assert mul_line.endswith(f"={want:#x}") and "=0xa" in mul_line
    if other.engine == "ir":  # the miscompiled side replays its wrong op
        bad_line = next(line for line in res.operands["ir:O2"] if "i32.add" in line)
        assert bad_line.endswith(f"={numerics.OPS['i32.add'](10, k):#x}")
    # With the budget just below the reported one, both sides agree.
    a_lo, b_lo = res.lo
    assert a_lo.key(False) == b_lo.key(False)
    assert a_lo.out_of_fuel and b_lo.out_of_fuel


def test_divergence_visible_only_in_result(miscompile_mul_at_o2):
    wasm = deadeye.wat2wasm("""(module
      (func (export "f") (param i32 i32) (result i32) (local i32)
        (local.set 2 (i32.add (local.get 0) (i32.const 1)))
        (if (i32.eqz (local.get 1)) (then (local.set 2 (i32.const 7))))
        (i32.mul (local.get 2) (local.get 0))))""")
    res = bisect(wasm, "f", [5, 1], Side("ir", 0), Side("ir", 2))
    assert res.diverged
    assert res.hi[0].outcome == ("ok", (30,)) and res.hi[1].outcome == ("ok", (11,))
    assert "i32.mul" in [op for _, op, _ in res.instructions]


def test_engines_agree_interp_vs_ir(wasm):
    res = bisect(wasm, "scale", [9], Side("ir", 0), Side("interp", 0))
    assert not res.diverged, res.format()


def test_parse_side():
    assert parse_side("ir") == Side("ir", 0)
    assert parse_side("interp:2") == Side("interp", 2)
    assert parse_side("ir:O1") == Side("ir", 1)
    for bad in ("ir:3", ":1", "ir:x"):
        with pytest.raises(ValueError):
            parse_side(bad)


def test_cli(tmp_path, wasm, miscompile_mul_at_o2, capsys):
    path = tmp_path / "m.wasm"
    path.write_bytes(wasm)
    assert cli_main(["bisect", str(path), "--invoke", "scale", "6", "--a", "ir:0",
                     "--b", "ir:2"]) == 1
    out = capsys.readouterr().out
    assert "scale (func 1) block @" in out and "i32.mul" in out
    assert cli_main(["bisect", str(path), "--a", "ir:0", "--b", "ir:0", "--invoke", "scale",
                     "-6"]) == 0
    assert "no divergence" in capsys.readouterr().out
    assert cli_main(["bisect", str(path), "--invoke", "nope", "6"]) == 1
    assert cli_main(["bisect", str(path), "--invoke", "scale", "6", "--a", "ir:9"]) == 1
    assert cli_main(["bisect", str(path), "--invoke", "scale", "x"]) == 1
    assert cli_main(["bisect", str(path), "--invoke", "scale"]) == 1
    assert "error" in capsys.readouterr().err
