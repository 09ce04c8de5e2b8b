"""Optimized lifted code against the spec suite: a selection of scripts runs on the "ir"
engine (the IR evaluator), whose pipeline optimizes every lifted function at -O2 before it
first runs, here with the verifier on between passes; every assertion must still hold."""

from __future__ import annotations

import os

import pytest

from deadeye import api, wast
from deadeye.opt import OptStats
from opt_testlib import install_verifying_optimizer

SPEC = os.path.join(os.path.dirname(__file__), "spec")
# Control flow, calls, locals, memory, traps and arithmetic: what the passes rewrite.
SCRIPTS = ["core/fac.wast", "core/loop.wast", "core/block.wast", "core/br_if.wast",
           "core/br_table.wast", "core/if.wast", "core/select.wast", "core/local_tee.wast",
           "core/call.wast", "core/memory_redundancy.wast", "core/left-to-right.wast",
           "core/int_exprs.wast", "core/float_exprs.wast", "core/traps.wast",
           "core/labels.wast", "core/switch.wast", "core/unreached-valid.wast",
           "core/address.wast", "core/conversions.wast",
           "core/br.wast", "core/return.wast", "core/stack.wast"]

pytestmark = pytest.mark.skipif("ir" not in api.available_engines(),
                                reason="the IR evaluator engine is not registered")


@pytest.fixture
def optimizing_pipeline(monkeypatch):
    from deadeye import wast_backend

    stats = OptStats()
    install_verifying_optimizer(monkeypatch, stats)
    monkeypatch.setitem(wast_backend.CONFIG_DEFAULTS, "opt_level", 2)
    return stats


@pytest.mark.parametrize("script", SCRIPTS)
def test_spec_script_optimized(script, optimizing_pipeline):
    path = os.path.join(SPEC, script)
    r = wast.run_file(path, wast.ENGINES["ir"], display=script)
    assert r.error is None, r.error
    failures = [f"{script}:{f['line']}: {f['kind']}: {f['reason']}" for f in r.failures]
    assert failures == [], "\n".join(failures[:20])
    assert any(r.name == "gvn" for r in optimizing_pipeline.runs)  # -O2 did run
