"""The vendored WebAssembly spec suite through `deadeye.wast`: one test per script and
registered engine, which must have no failures and no skips, and a check
that the runner sees every command tests/spec/counts.json counts."""

from __future__ import annotations

import json
import os

import pytest

from deadeye import api, wast, wast_backend

SPEC = os.path.join(os.path.dirname(__file__), "spec")
with open(os.path.join(SPEC, "counts.json"), encoding="utf-8") as _f:
    COUNTS = json.load(_f)
SCRIPTS = sorted(os.path.relpath(p, SPEC).replace(os.sep, "/") for p in wast.find_scripts([SPEC]))

_WAT_CACHE: dict = {}  # in memory, for this test session only


def _expected_kinds(c: dict) -> dict[str, int]:
    """counts.json splits some kinds by encoding; the runner counts them as one KIND."""
    out = {k: c.get(k, 0) for k in wast.KINDS}
    out["module"] = sum(c[k] for k in ("module_text", "module_binary", "module_quote", "module_definition", "module_instance"))
    out["assert_malformed"] = c["assert_malformed_binary"] + c["assert_malformed_quote"]
    return out


def test_every_vendored_script_is_counted():
    assert SCRIPTS == sorted(k for k in COUNTS if k.endswith(".wast"))


# Every deadeye executor runs the whole suite (the IR evaluator, the reference, always is;
# the runner's other engines, e.g. the wasmtime oracle, are not ours to test here).
ENGINES = api.builtin_engines()
# Engine configurations that run the whole suite: every engine at the default -O2, the
# interpreter at -O0 too, and the native engine in each dispatch mode.
SPEC_CONFIGS = {
    "ir": dict(name="ir"),
    "interp": dict(name="interp"),
    "interp-O0": dict(name="interp", opt_level=0),
    "native": dict(name="native", dispatch="direct"),
    "native-indirect": dict(name="native", dispatch="indirect"),
    "native-loop": dict(name="native", dispatch="loop"),
}


def test_every_engine_runs_the_suite():
    assert sorted(ENGINES) == sorted({c["name"] for c in SPEC_CONFIGS.values()})


@pytest.mark.parametrize("config", SPEC_CONFIGS)
@pytest.mark.parametrize("script", SCRIPTS)
def test_spec_script(script, config):
    factory = wast_backend.backend_factory(**SPEC_CONFIGS[config])
    r = wast.run_file(os.path.join(SPEC, script), factory, display=script, wat_cache=_WAT_CACHE)
    assert r.error is None, r.error
    # every command of the script was seen, under the right kind
    seen = {k: sum(c.values()) for k, c in r.counts.items()}
    assert seen == _expected_kinds(COUNTS[script])
    assert r.skips == [], r.skips[:5]
    failures = [f"{script}:{f['line']}: {f['kind']}: {f['reason']}" for f in r.failures]
    assert failures == [], "\n".join(failures[:20]) + (f"\n... {len(failures)} in all" if len(failures) > 20 else "")


def test_totals_match_counts_json():
    totals = dict.fromkeys(wast.KINDS, 0)
    for script in SCRIPTS:
        counts = wast.count_commands(os.path.join(SPEC, script))
        assert counts == _expected_kinds(COUNTS[script]), script
        for k, n in counts.items():
            totals[k] += n
    assert totals == _expected_kinds(COUNTS["totals"])
    assert sum(totals.values()) == COUNTS["totals"]["commands"]
