"""Hostile input in CI: a bounded number of mutants of real modules (Sightglass programs,
examples, spec-suite modules) go through decode, validation, compilation, instantiation
and execution; only success or a WasmError is allowed. The saved hostile reproducers
under tests/fuzz/ must stay fixed."""

from __future__ import annotations

import functools
import glob
import json
import os
import random

import pytest

pytest.importorskip("wasmtime")

import deadeye  # noqa: E402
from deadeye.fuzz import hostile  # noqa: E402

SHARDS, PER_SHARD = 6, 50
HERE = os.path.dirname(os.path.abspath(__file__))
REPRODUCERS = sorted(glob.glob(os.path.join(HERE, "fuzz", "hostile-*.wasm")))


@functools.lru_cache(maxsize=1)
def _seeds() -> tuple[bytes, ...]:
    # Small Sightglass programs and examples, plus a spread of spec modules.
    files = [s for s in hostile.file_seed_modules() if len(s) <= 40_000]
    return tuple(files + hostile.spec_seed_modules(30))


@pytest.mark.parametrize("shard", range(SHARDS))
def test_mutants_raise_only_wasm_errors(shard, tmp_path):
    stats = hostile.campaign(count=PER_SHARD, seed=shard, out_dir=str(tmp_path),
                             seeds=list(_seeds()), log=lambda m: None)
    assert stats["mutants"] == PER_SHARD
    bugs = sorted(tmp_path.glob("*.json"))
    assert stats["bugs"] == 0, "\n\n".join(json.loads(p.read_text())["detail"] for p in bugs[:3])
    # the mutants reach past the decoder: some validate, instantiate and run
    assert sum(v for k, v in stats["outcomes"].items() if k != "decode") > 0


def test_reproducers():
    """Every saved hostile input (none found so far) must stay fixed on every engine and
    configuration variant."""
    for path in REPRODUCERS:
        with open(path, "rb") as f:
            data = f.read()
        for engine in deadeye.builtin_engines():
            for variant in range(6):
                outcome, detail = hostile.run_guarded(data, engine, variant)
                assert outcome != "bug", f"{path}: {detail}"


def test_seeds_are_valid_modules():
    engine = deadeye.Engine(deadeye.Config(engine="ir"))
    seeds = _seeds()
    assert len(seeds) >= 40
    for s in seeds:
        deadeye.Module.validate(engine, s)


def test_mutations_change_the_input_deterministically():
    seed = hostile.file_seed_modules()[0]
    a = [hostile.mutate(seed, random.Random(i)) for i in range(50)]
    b = [hostile.mutate(seed, random.Random(i)) for i in range(50)]
    assert a == b
    assert sum(m != seed for m in a) >= 45


def test_leb_and_section_mutations_are_applied():
    seed = hostile.file_seed_modules()[0]
    secs = hostile._sections(seed)
    assert secs and secs[-1][2] == len(seed)
    lengths = {len(hostile._mutate_once(seed, random.Random(i), [seed])) for i in range(200)}
    assert any(n > len(seed) + 16 for n in lengths)  # a section was duplicated
    assert any(n < len(seed) - 16 for n in lengths)  # truncated or dropped


def test_a_non_wasm_exception_is_reported_as_a_bug(monkeypatch):
    def broken(*a, **k):
        raise KeyError("decoder fell over")

    monkeypatch.setattr(deadeye.Module, "__init__", broken)
    outcome, detail = hostile.run_guarded(b"\0asm\x01\0\0\0", "ir")
    assert outcome == "bug" and "decoder fell over" in detail


def test_expected_errors_are_not_bugs():
    assert hostile.run_guarded(b"\0asm\x02\0\0\0", "ir") == ("decode", None)
    bad = deadeye.wat2wasm('(module (func (result i32) (i64.const 1)))')
    assert hostile.run_guarded(bad, "ir") == ("validate", None)
    imp = deadeye.wat2wasm('(module (import "m" "f" (func (param i32) (result i64 f32)))'
                           ' (memory (import "m" "mem") 1) (global (import "m" "g") i32)'
                           ' (table (import "m" "t") 1 funcref)'
                           ' (func (export "run") (result i64) (call 0 (global.get 0)) drop))')
    assert hostile.run_guarded(imp, "ir") == ("ok", None)
    loop = deadeye.wat2wasm('(module (func (export "spin") (loop (br 0))))')
    assert hostile.run_guarded(loop, "ir") == ("trap", None)  # out of fuel


def test_subprocess_worker_agrees_with_in_process_runs():
    seeds = list(_seeds())
    rng = random.Random(3)
    inputs = [(hostile.mutate(rng.choice(seeds), rng), k) for k in range(8)]
    inputs.append((b"\0asm\x01\0\0\0", 8))
    got = hostile.run_in_subprocess(inputs, "ir")
    assert got == [hostile.run_guarded(d, "ir", v) for d, v in inputs]


def test_a_stuck_input_is_reported_as_a_hang(monkeypatch):
    import time

    monkeypatch.setattr(hostile, "HANG_SECONDS", 1)
    monkeypatch.setattr(hostile, "run_input", lambda *a: time.sleep(10))
    t = time.monotonic()
    outcome, detail = hostile.run_guarded(b"", "ir")
    assert outcome == "bug" and detail.startswith("hang") and time.monotonic() - t < 5
