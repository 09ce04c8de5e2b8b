"""`deadeye validate FILE.wasm`: `ok` on stdout for a valid module; otherwise one line
on stderr naming the error (with its offset for a bad module) and exit status 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from deadeye.cli import main

VALID = bytes(wasmtime.wat2wasm('(module (memory 1) (func (export "f") (result i32) (i32.const 42)))'))


def run(capsys, path: Path) -> tuple[int, str, str]:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_module(tmp_path, capsys):
    p = tmp_path / "ok.wasm"
    p.write_bytes(VALID)
    assert run(capsys, p) == (0, "ok\n", "")


@pytest.mark.parametrize(
    "content, words",
    [
        (b"this is not wasm", ["DecodeError", "magic header not detected", "offset 0x0"]),
        (VALID[:-3], ["DecodeError", "unexpected end", "offset 0x"]),
        # well-formed but ill-typed: i64 result for an i32 function
        (bytes(wasmtime.wat2wasm("(module (func (result i32) (i64.const 1)))")),
         ["ValidationError", "type mismatch", "func 0", "offset 0x"]),
    ],
    ids=["garbage", "truncated", "invalid"],
)
def test_bad_module(tmp_path, capsys, content, words):
    p = tmp_path / "bad.wasm"
    p.write_bytes(content)
    code, out, err = run(capsys, p)
    assert code == 1 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1
    for w in words:
        assert w in err


def test_missing_file(tmp_path, capsys):
    p = tmp_path / "nope.wasm"
    code, out, err = run(capsys, p)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "nope.wasm" in err and "Traceback" not in err


def test_entry_point_subprocess(tmp_path):
    """The real command line (python -m deadeye), for a valid and a truncated module."""
    good = tmp_path / "good.wasm"
    good.write_bytes(VALID)
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(VALID[:20])
    r = subprocess.run([sys.executable, "-m", "deadeye", "validate", str(good)], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")
    r = subprocess.run([sys.executable, "-m", "deadeye", "validate", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "offset 0x" in r.stderr
