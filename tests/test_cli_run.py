"""`deadeye run`: --invoke with typed arguments and printed results, `_start`, fuel, and
the one-line errors (traps print their backtrace too). Results are checked against
wasmtime-py running the same module."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
import wasmtime

from deadeye.cli import main
from deadeye.run import format_result
from deadeye.ir.types import ValType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIB = os.path.join(ROOT, "examples", "fib.wasm")


def run(capsys, *argv):
    rc = main(["run", "--engine", "ir", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def wasm_file(tmp_path, wat, name="m.wasm"):
    path = tmp_path / name
    path.write_bytes(wasmtime.wat2wasm(wat))
    return str(path)


def wasmtime_call(path, name, *args):
    store = wasmtime.Store(wasmtime.Engine())
    inst = wasmtime.Instance(store, wasmtime.Module.from_file(store.engine, path), [])
    return inst.exports(store)[name](store, *args)


def test_invoke_fib_matches_wasmtime(capsys):
    rc, out, err = run(capsys, "--invoke", "fib", FIB, "20")
    assert (rc, err) == (0, "")
    assert out == f"{wasmtime_call(FIB, 'fib', 20)}\n"
    rc, out, _ = run(capsys, "--invoke", "fib_iter", FIB, "--", "90")
    assert out == f"{wasmtime_call(FIB, 'fib_iter', 90)}\n"


MULTI = """
(module
  (func (export "ints") (param i32 i64) (result i32 i64 i32)
    (i32.sub (i32.const 0) (local.get 0))
    (i64.mul (local.get 1) (i64.const 3))
    (i32.const -1))
  (func (export "floats") (param f32 f64) (result f32 f64 f32 f64 f64)
    (local.get 0)
    (f64.div (local.get 1) (f64.const 3))
    (f32.div (f32.const 0) (f32.const 0))
    (f64.div (f64.const -1) (f64.const 0))
    (f64.const 1e300))
  (func (export "vec") (param i32) (result v128)
    (i32x4.splat (local.get 0))))
"""


def test_results_one_per_line(tmp_path, capsys):
    path = wasm_file(tmp_path, MULTI)
    rc, out, _ = run(capsys, "--invoke", "ints", path, "--", "-7", "0x10")
    assert rc == 0
    want = wasmtime_call(path, "ints", -7, 16)
    assert out.splitlines() == [str(v) for v in want] == ["7", "48", "-1"]
    # the unsigned spelling of a negative i32 is accepted too
    rc, out, _ = run(capsys, "--invoke", "ints", path, "4294967289", "1")
    assert out.splitlines()[0] == "7"


def test_float_results_print_their_decimal_value(tmp_path, capsys):
    path = wasm_file(tmp_path, MULTI)
    rc, out, _ = run(capsys, "--invoke", "floats", path, "0.1", "1")
    assert rc == 0
    lines = out.splitlines()
    f32, f64 = wasmtime_call(path, "floats", 0.1, 1.0)[:2]
    assert lines[0] == "0.1"  # the shortest text that reads back to the same f32
    assert struct.pack("<f", float(lines[0])) == struct.pack("<f", f32)
    assert float(lines[1]) == f64
    assert lines[2:] == ["NaN", "-inf", "1e+300"]


def test_v128_result_is_hex(tmp_path, capsys):
    path = wasm_file(tmp_path, MULTI)
    rc, out, _ = run(capsys, "--invoke", "vec", path, "-1")
    assert (rc, out) == (0, "0x" + "f" * 32 + "\n")


@pytest.mark.parametrize("t, bits, text", [
    (ValType.F32, 0x3F800000, "1"), (ValType.F32, 0x80000000, "-0"),
    (ValType.F64, 0x3FF8000000000000, "1.5"), (ValType.I64, (1 << 64) - 2, "-2"),
    (ValType.FUNCREF, None, "null"),
])
def test_format_result(t, bits, text):
    assert format_result(t, bits) == text


def test_start_runs_without_invoke(tmp_path, capsys):
    ok = wasm_file(tmp_path, '(module (func (export "_start")))', "ok.wasm")
    assert run(capsys, ok) == (0, "", "")
    bad = wasm_file(tmp_path, '(module (func (export "_start") unreachable))', "bad.wasm")
    rc, out, err = run(capsys, bad)
    assert rc != 0 and err.startswith("error: Trap: unreachable\n")


def test_unknown_import_is_one_clear_error(tmp_path, capsys):
    path = wasm_file(tmp_path, """(module
      (import "env" "missing" (func (param i32)))
      (memory (export "memory") 1) (func (export "_start")))""")
    rc, out, err = run(capsys, path)
    assert rc == 1 and out == ""
    assert len(err.splitlines()) == 1 and "env::missing" in err, err


def test_trap_prints_message_and_backtrace(tmp_path, capsys):
    wat = """(module
      (func $outer (export "go") (param i32) (result i32) (call $inner (local.get 0)))
      (func $inner (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0))))"""
    path = wasm_file(tmp_path, wat)
    rc, out, err = run(capsys, "--invoke", "go", path, "0")
    assert rc != 0 and out == ""
    lines = err.splitlines()
    assert lines[0] == "error: Trap: integer divide by zero"
    assert lines[1] == "wasm backtrace:"
    assert lines[2].startswith("  0: inner (func 1) @ 0x")
    assert lines[3].startswith("  1: outer (func 0) @ 0x")


def test_fuel_limit(capsys):
    rc, out, err = run(capsys, "--fuel", "1000000", "--invoke", "fib", FIB, "10")
    assert (rc, out) == (0, "55\n")
    rc, out, err = run(capsys, "--fuel", "50", "--invoke", "fib", FIB, "20")
    assert rc != 0 and err.startswith("error: Trap: all fuel consumed")


@pytest.mark.parametrize("argv, needle", [
    (["--invoke", "fib", FIB], "takes 1 argument"),
    (["--invoke", "fib", FIB, "1", "2"], "takes 1 argument"),
    (["--invoke", "fib", FIB, "one"], "invalid i32 argument"),
    (["--invoke", "fib", FIB, "4294967296"], "out of range"),
    (["--invoke", "nope", FIB, "1"], "no function named 'nope'"),
    (["--invoke", "fib", "/nonexistent/x.wasm"], "cannot read"),
    (["--engine", "warp", "--invoke", "fib", FIB, "1"], "not available"),
])
def test_bad_input_is_one_line(capsys, argv, needle):
    rc = main(["run", *argv])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert len(err.splitlines()) == 1 and needle in err, err


def test_garbage_module(tmp_path, capsys):
    path = tmp_path / "junk.wasm"
    path.write_bytes(b"\0asm\x01\0\0\0\x01\xff")
    rc, out, err = run(capsys, str(path))
    assert rc == 1 and len(err.splitlines()) == 1 and "DecodeError" in err


def test_command_line_process():
    # the real entry point: exit status and stdout of a separate process
    p = subprocess.run([sys.executable, "-m", "deadeye", "run", "--engine", "ir", "--invoke",
                        "fib", FIB, "15"], capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (0, "610\n", "")
