"""The Sightglass shootout programs (C compiled by wasi-sdk, tests/sightglass/) give exactly
their expected stdout and stderr through `deadeye run`: every program on the native engine,
the ones that finish in seconds on the Python engines. Each run is a subprocess, so a crash
in native code fails one test instead of killing pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SIGHTGLASS = Path(__file__).parent / "sightglass"
PROGRAMS = sorted(p.stem for p in SIGHTGLASS.glob("shootout-*.wasm"))

# Measured with `deadeye bench --engines interp,ir`: these finish within a few seconds on
# the Python engines (keccak, gimli, xchacha20 within ten; ratelimit within twenty; the
# rest take minutes).
PYTHON_ENGINE_PROGRAMS = ["shootout-nestedloop", "shootout-ackermann", "shootout-memmove",
                          "shootout-xblabla20"]


def run_program(name: str, *options: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "deadeye", "run", *options, "--dir", f"{SIGHTGLASS}::.",
         str(SIGHTGLASS / f"{name}.wasm")],
        capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert proc.stdout == (SIGHTGLASS / f"{name}.stdout.expected").read_bytes()
    expected_err = SIGHTGLASS / f"{name}.stderr.expected"
    if expected_err.exists():
        assert proc.stderr == expected_err.read_bytes()


def test_the_suite_is_vendored():
    assert len(PROGRAMS) == 19 and set(PYTHON_ENGINE_PROGRAMS) <= set(PROGRAMS)


@pytest.mark.slow
@pytest.mark.parametrize("name", PROGRAMS)
def test_native(name):
    run_program(name, "--engine", "native")


@pytest.mark.parametrize("name", PYTHON_ENGINE_PROGRAMS)
def test_interp(name):
    run_program(name, "--engine", "interp")


@pytest.mark.parametrize("name", PYTHON_ENGINE_PROGRAMS[:2])
def test_ir(name):
    run_program(name, "--engine", "ir")
