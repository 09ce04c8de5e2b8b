"""Fuel is charged per input wasm instruction and carried through optimization and
lowering as a per-block cost, so every engine (ir, interp, native) at every opt level
consumes exactly the same fuel, and running out of fuel traps at the same point: the
same remaining fuel (0) and the same side effects in memory and globals.

The oracle is the "ir" engine at -O0 (the lifted IR, one block per wasm block, no
optimization): every other configuration must agree with it exactly."""

from __future__ import annotations

import pytest
import wasmtime

import deadeye
from deadeye import api

WAT = """
(module
  (memory (export "mem") 1)
  (global $g (export "g") (mut i32) (i32.const 0))
  (table 4 funcref)
  (elem (i32.const 0) $inc $dbl $inc $dbl)
  (type $t (func (param i32) (result i32)))
  (func $inc (type $t)
    (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (i32.add (local.get 0) (i32.const 1)))
  (func $dbl (type $t)
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.mul (local.get 0) (i32.const 2)))
  ;; a loop storing every iteration: a trap part-way leaves a visible prefix
  (func (export "loop") (param i32) (result i32) (local i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get 0)))
        (local.set 1 (i32.add (local.get 1) (i32.mul (local.get 0) (i32.const 3))))
        (i32.store (i32.add (i32.const 64)
                            (i32.shl (i32.and (local.get 0) (i32.const 15)) (i32.const 2)))
                   (local.get 1))
        (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
        (br $l)))
    (local.get 1))
  ;; direct and indirect calls
  (func (export "calls") (param i32) (result i32) (local i32)
    (loop $l
      (local.set 1 (call_indirect (type $t) (local.get 1) (i32.and (local.get 0) (i32.const 3))))
      (local.set 1 (call $inc (local.get 1)))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (local.get 1))
  ;; br_table with stores in each arm
  (func (export "table") (param i32) (result i32) (local i32)
    (loop $l
      (block $a (block $b (block $c
        (br_table $a $b $c (i32.rem_u (local.get 0) (i32.const 3))))
        (i32.store (i32.const 32) (i32.add (i32.load (i32.const 32)) (i32.const 7)))
        (local.set 1 (i32.add (local.get 1) (i32.const 7))))
        (i32.store (i32.const 36) (i32.xor (i32.load (i32.const 36)) (local.get 0)))
        (local.set 1 (i32.xor (local.get 1) (i32.const 5))))
      (global.set $g (i32.add (global.get $g) (local.get 1)))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (local.get 1))
  ;; a trap in the middle of a block, after a store in the same block
  (func (export "trap_mid") (param i32 i32) (result i32)
    (i32.store (i32.const 48) (i32.add (local.get 0) (i32.const 100)))
    (global.set $g (i32.const 9))
    (drop (i32.div_u (local.get 0) (local.get 1)))
    (i32.store (i32.const 52) (local.get 0))
    (i32.const 1))
  ;; tail calls: a countdown through return_call and return_call_indirect
  (func $down (export "down") (param i32) (result i32)
    (i32.store (i32.const 56) (local.get 0))
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.load (i32.const 16)))
      (else
        (if (result i32) (i32.and (local.get 0) (i32.const 1))
          (then (return_call $down (i32.sub (local.get 0) (i32.const 1))))
          (else (return_call_indirect (type $t) (i32.sub (local.get 0) (i32.const 1))
                                      (i32.const 4)))))))
  (table $t2 5 funcref)
  (elem (table $t2) (i32.const 4) func $down)
  ;; constant branches: the optimizer merges these blocks into one, yet a run that
  ;; runs out of fuel part-way must still have done the earlier stores
  (func (export "merged") (param i32) (result i32)
    (i32.store (i32.const 80) (local.get 0))
    (if (i32.const 1) (then (i32.store (i32.const 84) (i32.const 7))))
    (block $b (br_if $b (i32.const 0)) (i32.store (i32.const 88) (i32.const 9)))
    (if (i32.eqz (i32.const 0)) (then (global.set $g (i32.const 4))))
    (i32.store (i32.const 92) (i32.const 11))
    (i32.const 3))
  (func $fac (export "fac") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1))))))))
"""

CALLS = [("loop", (20,)), ("calls", (9,)), ("table", (11,)), ("trap_mid", (5, 0)),
         ("trap_mid", (5, 2)), ("down", (13,)), ("fac", (8,)), ("merged", (5,))]

ENGINES = [e for e in ("ir", "interp", "native") if e in api.available_engines()]
CONFIGS = [(e, level) for e in ENGINES for level in (0, 1, 2)]


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return wasmtime.wat2wasm(WAT)


def _observe(engine_name: str, level: int, wasm: bytes, name: str, args: tuple, fuel: int):
    """(outcome, remaining fuel, memory bytes touched, global) of one call on a fresh
    instance with `fuel` units."""
    engine = deadeye.Engine(deadeye.Config(engine=engine_name, opt_level=level,
                                           consume_fuel=True))
    store = deadeye.Store(engine)
    store.set_fuel(fuel)
    exports = deadeye.Instance(store, deadeye.Module(engine, wasm), []).exports(store)
    try:
        outcome = exports[name](store, *args)
    except deadeye.Trap as e:
        outcome = ("trap", e.message)
    mem = bytes(exports["mem"].read(store, 0, 128))
    return outcome, store.get_fuel(), mem, exports["g"].value(store)


def _budgets(total: int) -> list[int]:
    """Fuel budgets below what the call needs: the edges and a spread in between."""
    picks = {0, 1, 2, total - 1, total - 2} | set(range(3, total, max(1, total // 11)))
    return sorted(b for b in picks if 0 <= b < total)


@pytest.fixture(scope="module")
def oracle(wasm):
    """The -O0 IR evaluator's observations: per call, (full run, fuel used, budgets)."""
    out = {}
    for name, args in CALLS:
        big = 10**6
        full = _observe("ir", 0, wasm, name, args, big)
        used = big - full[1]
        out[(name, args)] = (full, used, {b: _observe("ir", 0, wasm, name, args, b)
                                          for b in _budgets(used)})
    return out


def test_oracle_is_meaningful(oracle):
    # Every call uses fuel, the trapping one traps, and running out traps "all fuel consumed".
    assert all(used > 0 for _, used, _ in oracle.values())
    full, _, _ = oracle[("trap_mid", (5, 0))]
    assert full[0] == ("trap", "integer divide by zero")
    assert oracle[("loop", (20,))][0][0] == sum(3 * i for i in range(1, 21))
    for _, _, budgets in oracle.values():
        for outcome, remaining, *_ in budgets.values():
            assert outcome == ("trap", "all fuel consumed") and remaining == 0


@pytest.mark.parametrize("engine_name,level", CONFIGS)
def test_fuel_identical(engine_name, level, wasm, oracle):
    for (name, args), (full, used, budgets) in oracle.items():
        got = _observe(engine_name, level, wasm, name, args, 10**6)
        assert got == full, (name, args)
        for b, want in budgets.items():
            assert _observe(engine_name, level, wasm, name, args, b) == want, (name, args, b)
