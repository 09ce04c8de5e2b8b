"""Fuel through the whole stack: lifted Wasm run by the IR evaluator (the "ir" engine,
whose pipeline optimizes each function at the Config's opt_level before it first runs)
with fuel on consumes exactly the same fuel, and gives the same results and traps, at
-O0, -O1 and -O2."""

from __future__ import annotations

import pytest
import wasmtime

import deadeye
from deadeye import api
from deadeye.opt import OptStats
from opt_testlib import install_verifying_optimizer

WAT = """
(module
  (memory 1)
  (global $g (mut i32) (i32.const 0))
  (func $fac (export "fac") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
  (func (export "loop") (param i32) (result i32) (local i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get 0)))
        (local.set 1 (i32.add (local.get 1) (i32.mul (local.get 0) (i32.const 3))))
        (block $a (block $b (block $c
          (br_table $a $b $c (i32.and (local.get 0) (i32.const 3))))
          (local.set 1 (i32.add (local.get 1) (i32.const 7))))
          (local.set 1 (i32.xor (local.get 1) (i32.const 5))))
        (i32.store (i32.const 8) (local.get 1))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br $l)))
    (i32.load (i32.const 8)))
  (func (export "nest") (param i32 i32) (result i32) (local i32 i32)
    (local.set 2 (local.get 0))
    (loop $outer
      (local.set 3 (local.get 1))
      (loop $inner
        (global.set $g (i32.add (global.get $g)
          (i32.add (i32.mul (local.get 0) (local.get 1)) (i32.load (i32.const 0)))))
        (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
        (br_if $inner (local.tee 3 (i32.sub (local.get 3) (i32.const 1)))))
      (br_if $outer (local.tee 2 (i32.sub (local.get 2) (i32.const 1)))))
    (global.get $g))
  (func (export "fold") (param i32) (result i32)
    (drop (i32.mul (local.get 0) (i32.const 9)))
    (if (result i32) (i32.gt_u (i32.const 10) (i32.const 3))
      (then (i32.add (local.get 0) (i32.mul (i32.const 6) (i32.const 7))))
      (else (i32.const 0))))
  (func (export "div") (param i32 i32) (result i32)
    (drop (i32.div_s (i32.const 7) (local.get 1)))
    (if (result i32) (local.get 0)
      (then (i32.div_u (i32.const 100) (local.get 1)))
      (else (select (i32.const 1) (i32.const 2) (i32.eqz (local.get 1)))))))
"""

CALLS = [("fac", (10,)), ("fac", (0,)), ("loop", (50,)), ("loop", (3,)), ("nest", (3, 4)),
         ("div", (1, 5)), ("div", (0, 3)), ("div", (1, 0)), ("nest", (2, 2)), ("fold", (5,))]

pytestmark = pytest.mark.skipif("ir" not in api.available_engines(),
                                reason="the IR evaluator engine is not registered")


def _run(level, monkeypatch, stats=None):
    install_verifying_optimizer(monkeypatch, OptStats() if stats is None else stats)
    engine = deadeye.Engine(deadeye.Config(engine="ir", consume_fuel=True, opt_level=level))
    module = deadeye.Module(engine, wasmtime.wat2wasm(WAT))
    store = deadeye.Store(engine)
    store.set_fuel(10**9)
    exports = deadeye.Instance(store, module, []).exports(store)
    out = []
    for name, args in CALLS:
        before = store.get_fuel()
        try:
            result = exports[name](store, *args)
        except deadeye.Trap as e:
            result = ("trap", e.message)
        out.append((name, args, result, before - store.get_fuel()))
    return out


def test_fuel_results_and_traps_are_the_same_at_every_level(monkeypatch):
    stats0 = OptStats()
    base = _run(0, monkeypatch, stats0)
    assert not stats0.runs  # -O0 runs the lifted IR itself
    assert ("div", (1, 0), ("trap", "integer divide by zero")) == base[7][:3]
    assert all(fuel > 0 for *_, fuel in base)
    for level in (1, 2):
        stats = OptStats()
        assert _run(level, monkeypatch, stats) == base
        changed = {r.name for r in stats.runs if r.changed}
        assert {"fold", "dce", "simplify_cfg"} <= changed  # the passes did rewrite the code
        if level == 2:
            assert {"licm", "loads", "gvn"} <= changed
