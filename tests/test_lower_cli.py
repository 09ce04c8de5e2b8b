"""`deadeye disas` and `deadeye compile`."""

import os

import pytest

from deadeye.cli import main

HERE = os.path.dirname(__file__)
FIB = os.path.join(HERE, "sightglass", "shootout-fib2.wasm")
WAT = """(module (func $add (export "add") (param i32 i32) (result i32)
  (i32.add (local.get 0) (i32.const 7))))"""


@pytest.fixture
def watfile(tmp_path):
    p = tmp_path / "m.wat"
    p.write_text(WAT)
    return str(p)


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_disas_bytecode_by_name(capsys, watfile):
    code, out, err = run(capsys, "disas", watfile, "--func", "add")
    assert (code, err) == (0, "")
    assert ";; function 0 add: [i32 i32] -> [i32]" in out
    assert "i32.add_imm            r0, r0, 7" in out
    assert "return                 [r0]" in out and "frame size" in out


def test_disas_stages(capsys, watfile, tmp_path):
    code, out, _ = run(capsys, "disas", watfile, "--stage", "wasm")
    assert code == 0 and "local.get 0" in out and "i32.const 7" in out and "0x0000" in out
    dot = tmp_path / "cfg.dot"
    code, out, _ = run(capsys, "disas", watfile, "--func", "0", "--stage", "ir", "--dot", dot)
    assert code == 0 and "function %add" in out and "i32.add" in out
    assert dot.read_text().startswith('digraph "add"')
    code, out, _ = run(capsys, "disas", watfile, "--stage", "opt", "-O", "2")
    assert code == 0 and ("function %add" in out or "unavailable" in out)


def test_disas_bad_function(capsys, watfile):
    code, _, err = run(capsys, "disas", watfile, "--func", "nope")
    assert code == 1 and "no function named 'nope'" in err
    code, _, err = run(capsys, "disas", watfile, "--func", "9")
    assert code == 1 and "not a defined function" in err


def test_compile_stats(capsys):
    code, out, err = run(capsys, "compile", FIB, "--stats")
    assert (code, err) == (0, "")
    assert out.startswith("compiled ")
    line = next(l for l in out.splitlines() if l.startswith("bytecode ops:"))
    per = float(line.split("(")[1].split()[0])
    assert 0 < per < 1  # fewer bytecode ops than wasm instructions
    assert "average frame size:" in out and "IR instructions:" in out


def test_compile_malformed_input(capsys, tmp_path):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\1\0\0\0\x01")
    code, _, err = run(capsys, "compile", bad)
    assert code == 1 and err.startswith("error: ")
