"""Differential fuzzing in CI: generated modules on every registered deadeye engine and on
wasmtime must agree (results, traps, memory, globals).

Sizes: 8 seeded shards of 50 modules (each module runs every engine, the opt level
rotating with the module so every engine × opt level pair is covered), plus a hypothesis
test of 120 modules whose failures shrink. The reproducers under tests/fuzz/ run too."""

from __future__ import annotations

import glob
import os

import pytest

pytest.importorskip("wasmtime")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from deadeye.api import register_executor  # noqa: E402
from deadeye.fuzz import gen  # noqa: E402
from deadeye.fuzz.differential import (  # noqa: E402
    Outcome, check_module, compare, engine_configs, load_reproducer,
    module_for_seed, plan_calls, rotating_configs, run_deadeye, run_wasmtime, trap_category,
)
from deadeye.pipeline import ir_executor  # noqa: E402

SHARDS, PER_SHARD = 8, 50
CI_GEN = gen.GenConfig(max_funcs=5, max_budget=40)
HERE = os.path.dirname(os.path.abspath(__file__))
REPRODUCERS = sorted(glob.glob(os.path.join(HERE, "fuzz", "diff-*.json")))


def _seeded(seed: int):
    c = gen.RandomChooser(seed)
    gm = gen.generate(c, gen.GenConfig(nan_canonical=seed % 4 == 3, max_funcs=CI_GEN.max_funcs,
                                       max_budget=CI_GEN.max_budget))
    return gm, plan_calls(gm, c)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_generated_modules_agree_with_wasmtime(shard):
    failures = []
    for seed in range(shard * PER_SHARD, (shard + 1) * PER_SHARD):
        gm, calls = _seeded(seed)
        m = check_module(gm, calls, rotating_configs(seed))
        if m is not None:
            failures.append(f"seed {seed}: {m}")
    assert not failures, "\n".join(failures)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(gm=gen.module_strategy(CI_GEN, min_bytes=200, max_bytes=3000), call_choices=st.binary(max_size=64))
def test_hypothesis_modules_agree_with_wasmtime(gm, call_choices):
    calls = plan_calls(gm, gen.ByteChooser(call_choices))
    m = check_module(gm, calls, rotating_configs(len(gm.wasm)))
    assert m is None, str(m)


@pytest.mark.parametrize("path", REPRODUCERS, ids=[os.path.basename(p) for p in REPRODUCERS])
def test_reproducers(path):
    gm, calls = load_reproducer(path)
    m = check_module(gm, calls, engine_configs())
    assert m is None, str(m)


# -------------------------------------------------------------------------- the harness itself


def test_every_generated_module_validates_on_both_sides():
    import wasmtime

    import deadeye

    engine = deadeye.Engine(deadeye.Config(engine="ir"))
    for seed in range(40):
        gm, _ = module_for_seed(10_000 + seed)
        deadeye.Module.validate(engine, gm.wasm)
        wasmtime.Module.validate(wasmtime.Engine(), gm.wasm)
        assert gm.exports, "every module exports at least one function"


def test_generation_is_deterministic_and_varied():
    a = gen.generate(gen.RandomChooser(5)).wasm
    assert a == gen.generate(gen.RandomChooser(5)).wasm
    assert len({gen.generate(gen.RandomChooser(s)).wasm for s in range(20)}) == 20


def test_exhausted_byte_chooser_gives_the_smallest_module():
    small = gen.generate(gen.ByteChooser(b""))
    assert len(small.exports) == 1
    assert len(small.wasm) < 200


def test_generated_code_covers_the_requested_features():
    """Over a few hundred modules every family of instructions the generator promises shows
    up (counted by decoding the modules with deadeye's decoder)."""
    from deadeye.frontend.decoder import decode_body
    from deadeye.frontend.module import parse_module

    seen: set[str] = set()
    for seed in range(150):
        m = parse_module(gen.generate(gen.RandomChooser(seed)).wasm, validate="eager")
        for i in range(len(m.func_types)):
            seen.update(str(ins.op) for ins in decode_body(m, i)[1])
    wanted = {"block", "loop", "if", "br", "br_if", "br_table", "call", "call_indirect",
              "select", "select_t", "local.tee", "global.set", "memory.grow", "memory.size",
              "memory.fill", "memory.copy", "i32.div_s", "i64.rem_u", "f32.div", "f64.sqrt",
              "i32.trunc_f32_s", "i64.trunc_sat_f64_u", "i64.store8", "f64.load", "v128.load",
              "v128.store", "i8x16.shuffle", "f32x4.add", "i16x8.extract_lane_s", "return",
              "unreachable"}
    assert wanted <= seen, sorted(wanted - seen)


def test_trap_categories_match_across_wordings():
    pairs = [("integer divide by zero", "wasm trap: integer divide by zero"),
             ("integer overflow", "wasm trap: integer overflow"),
             ("invalid conversion to integer", "wasm trap: invalid conversion to integer"),
             ("out of bounds memory access", "wasm trap: out of bounds memory access"),
             ("undefined element", "wasm trap: undefined element: out of bounds table access"),
             ("uninitialized element", "wasm trap: uninitialized element"),
             ("indirect call type mismatch", "wasm trap: indirect call type mismatch"),
             ("unreachable", "wasm trap: wasm `unreachable` instruction executed")]
    cats = set()
    for ours, theirs in pairs:
        assert trap_category(ours) == trap_category(theirs)
        cats.add(trap_category(ours))
    assert len(cats) == len(pairs)
    assert trap_category("all fuel consumed") == trap_category("all fuel consumed by WebAssembly")


def test_compare_reports_each_kind_of_difference():
    base = Outcome([["ok", [1]], ["trap", "div-by-zero"]], "h", 1, [5])
    assert compare(base, Outcome([["ok", [1]], ["trap", "div-by-zero"]], "h", 1, [5])) is None
    assert "call 0" in compare(base, Outcome([["ok", [2]], ["trap", "div-by-zero"]], "h", 1, [5]))
    assert "call 1" in compare(base, Outcome([["ok", [1]], ["trap", "memory-oob"]], "h", 1, [5]))
    assert "memory" in compare(base, Outcome(base.calls, "other", 1, [5]))
    assert "pages" in compare(base, Outcome(base.calls, "h", 2, [5]))
    assert "globals" in compare(base, Outcome(base.calls, "h", 1, [6]))
    # fuel is engine-specific: the comparison stops there
    assert compare(Outcome([["trap", "fuel"]]), Outcome([["ok", [3]], ["ok", [4]]], "x", 1, [0])) is None


class _CorruptingExecutor:
    """Flips the low bit of every integer result: a wrong engine the harness must catch."""

    def __init__(self, config):
        self.inner = ir_executor(config)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def call(self, store, func, args):
        return [r ^ 1 if isinstance(r, int) else r for r in self.inner.call(store, func, args)]


def test_a_wrong_engine_is_caught_and_joins_without_code_changes():
    register_executor("fuzz-corrupt", _CorruptingExecutor)
    try:
        # plug-ins are opt-in (named, as `deadeye fuzz --engine NAME` does): the default
        # product stays deadeye's own engines
        assert "fuzz-corrupt" not in {e for e, _ in engine_configs()}
        assert ("fuzz-corrupt", 2) in rotating_configs(2, ["fuzz-corrupt"])
        caught = 0
        for seed in range(30):
            gm, calls = module_for_seed(20_000 + seed)
            theirs = run_wasmtime(gm, calls)
            if any(c[0] == "ok" and c[1] for c in theirs.calls):
                m = check_module(gm, calls, [("fuzz-corrupt", 0)])
                assert m is not None and "fuzz-corrupt" in m.config
                caught += 1
            assert compare(run_deadeye(gm, calls, "ir", 0), theirs) is None
        assert caught >= 10
    finally:
        register_executor("fuzz-corrupt", None)


def test_fuzz_command_runs_a_short_campaign(tmp_path, capsys):
    import argparse

    from deadeye.fuzz import command

    def main(argv):  # the `deadeye fuzz` sub-command's own parser and handler
        p = argparse.ArgumentParser()
        command.add_arguments(p)
        return command.main(p.parse_args(argv[1:]))

    out = tmp_path / "out"
    rc = main(["fuzz", "--seconds", "1", "--seed", "77", "--out", str(out)])
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "modules" in summary and "seeds 77.." in summary
    saved = sorted(out.glob("*.json")) if out.exists() else []
    assert rc == (1 if saved else 0)
    rc = main(["fuzz", "--seconds", "1", "--seed", "5", "--mode", "hostile", "--out", str(out), "--json"])
    import json

    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["mutants"] > 0 and rc == (1 if stats["bugs"] else 0)


def test_recorded_choices_replay_a_campaign_seed():
    from deadeye.fuzz.differential import choices_for_seed, module_from_choices

    for seed in (3, 4, 7):
        gm, calls = module_for_seed(seed)
        gm2, calls2 = module_from_choices(choices_for_seed(seed), gm.nan_canonical)
        assert gm2.wasm == gm.wasm and calls2 == calls


def test_shrinking_keeps_the_failure_and_makes_the_module_smaller():
    from deadeye.fuzz.differential import (
        choices_for_seed, failure_signature, module_from_choices, shrink,
    )

    register_executor("fuzz-corrupt", _CorruptingExecutor)
    try:
        cfg = [("fuzz-corrupt", 0)]
        seed = next(s for s in range(30_000, 30_100) if s % 4 != 3
                    and failure_signature(*module_for_seed(s), cfg) is not None)
        data = choices_for_seed(seed)
        small = shrink(data, False, cfg, seconds=8)
        gm_small, calls_small = module_from_choices(small, False)
        assert failure_signature(gm_small, calls_small, cfg) == failure_signature(*module_for_seed(seed), cfg)
        assert len(gm_small.wasm) < len(module_for_seed(seed)[0].wasm)
    finally:
        register_executor("fuzz-corrupt", None)
