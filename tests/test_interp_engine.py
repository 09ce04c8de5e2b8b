"""The "interp" engine end to end (wasm -> IR -> opt -> bytecode -> interpreter) through the
public API, against the "ir" engine (the IR evaluator) on the same modules and inputs:
results, traps (message and backtrace function names), fuel, host calls, v128 through
memory, tail calls in constant space."""

import pytest

import deadeye
from deadeye.ir.errors import Trap

pytest.importorskip("deadeye.lower.compile",
                    reason="the interp engine runs what deadeye.lower produces")

WAT = r"""
(module
  (type $ii (func (param i32) (result i32)))
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (memory (export "mem") 1)
  (global $g (mut i64) (i64.const 7))
  (table 4 funcref)
  (elem (i32.const 0) $fib $sq $twice)
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func $sq (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
  (func (export "dispatch") (param i32 i32) (result i32)
    (call_indirect (type $ii) (local.get 1) (local.get 0)))
  (func (export "sum") (param $n i64) (result i64) (local $acc i64)
    (block $done (loop $l
      (br_if $done (i64.eqz (local.get $n)))
      (local.set $acc (i64.add (local.get $acc) (local.get $n)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br $l)))
    (local.get $acc))
  (func (export "switch") (param i32) (result i32)
    (block $c (block $b (block $a
      (br_table $a $b $c (local.get 0)))
      (return (i32.const 10)))
      (return (i32.const 20)))
    (i32.const 30))
  (func (export "pair") (param i32 i64) (result i64 i32)
    (i64.extend_i32_u (local.get 0)) (i32.wrap_i64 (local.get 1)))
  (func (export "host") (param i32) (result i32)
    (i32.add (call $twice (local.get 0)) (global.get $g) (i32.wrap_i64)))
  (func (export "bump") (result i64)
    (global.set $g (i64.add (global.get $g) (i64.const 1))) (global.get $g))
  (func (export "simd") (param i32)
    (v128.store (i32.const 32)
      (i32x4.add (v128.load (local.get 0)) (v128.load offset=16 (local.get 0)))))
  (func (export "load") (param i32) (result i64) (i64.load offset=3 (local.get 0)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func $deep (export "deep") (param i32) (result i32)
    (if (result i32) (local.get 0)
      (then (i32.add (call $deep (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))
      (else (unreachable))))
  (func $count (export "count") (param i64 i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0)) (then (local.get 1))
      (else (return_call $count (i64.sub (local.get 0) (i64.const 1))
                                (i64.add (local.get 1) (local.get 0))))))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
)
"""


def _instance(engine_name, **config):
    engine = deadeye.Engine(deadeye.Config(engine=engine_name, **config))
    store = deadeye.Store(engine)
    module = deadeye.Module(engine, deadeye.wat2wasm(WAT))
    twice = deadeye.Func(store, deadeye.FuncType([deadeye.ValType.i32()], [deadeye.ValType.i32()]),
                         lambda x: x * 2)
    inst = deadeye.Instance(store, module, [twice])
    return store, inst.exports(store)


CALLS = [
    ("fib", (15,)), ("dispatch", (0, 10)), ("dispatch", (1, 9)), ("dispatch", (2, 21)),
    ("sum", (1000,)), ("switch", (0,)), ("switch", (1,)), ("switch", (2,)), ("switch", (99,)),
    ("pair", (-1, (1 << 40) + 5)), ("host", (20,)), ("bump", ()), ("load", (0,)),
    ("div", (7, -2)), ("grow", (1,)), ("count", (1000, 0)),
]


@pytest.mark.parametrize("opt_level", [0, 2])
def test_results_match_ir_engine(opt_level):
    s1, e1 = _instance("interp", opt_level=opt_level)
    s2, e2 = _instance("ir")
    for name, args in CALLS:
        assert e1[name](s1, *args) == e2[name](s2, *args), name


@pytest.mark.parametrize("name, args, message", [
    ("dispatch", (3, 1), "uninitialized element"),
    ("dispatch", (9, 1), "undefined element"),
    ("div", (1, 0), "integer divide by zero"),
    ("div", (-2**31, -1), "integer overflow"),
    ("load", (65530,), "out of bounds memory access"),
    ("deep", (5,), "unreachable"),
    ("fill", (65000, 1, 1000), "out of bounds memory access"),
])
def test_traps_match_ir_engine(name, args, message):
    names = []
    for engine in ("interp", "ir"):
        s, e = _instance(engine)
        with pytest.raises(Trap) as t:
            e[name](s, *args)
        assert message in str(t.value)
        names.append([f[0] for f in t.value.frames])
    assert names[0] == names[1]


def test_simd_through_memory():
    outs = []
    for engine in ("interp", "ir"):
        s, e = _instance(engine)
        buf = e["mem"].buffer(s)
        buf[0:32] = bytes(range(200, 232))
        e["simd"](s, 0)
        outs.append(bytes(e["mem"].buffer(s)[32:48]))
    assert outs[0] == outs[1]


def test_fuel_matches_ir_engine():
    used = []
    for engine in ("interp", "ir"):
        s, e = _instance(engine, consume_fuel=True)
        s.set_fuel(100_000)
        e["fib"](s, 10)
        used.append(100_000 - s.get_fuel())
        s.set_fuel(50)
        with pytest.raises(Trap, match="all fuel consumed"):
            e["sum"](s, 1000)
    assert used[0] == used[1]


def test_deep_tail_calls_and_stack_exhaustion():
    s, e = _instance("interp", max_call_depth=100)
    assert e["count"](s, 100_000, 0) == 100_000 * 100_001 // 2
    with pytest.raises(Trap, match="call stack exhausted"):
        e["deep"](s, 1000)


def test_nan_canonicalization_matches_ir_engine():
    wat = """(module (func (export "f") (param i32 i32) (result i32)
      (i32.reinterpret_f32 (f32.add (f32.reinterpret_i32 (local.get 0))
                                    (f32.reinterpret_i32 (local.get 1))))))"""
    outs = []
    for engine in ("interp", "ir"):
        for canon in (False, True):
            eng = deadeye.Engine(deadeye.Config(engine=engine, nan_canonicalization=canon))
            store = deadeye.Store(eng)
            inst = deadeye.Instance(store, deadeye.Module(eng, deadeye.wat2wasm(wat)), [])
            outs.append(inst.exports(store)["f"](store, 0x7FA00001, 0x3F800000) & 0xFFFFFFFF)
    assert outs[0] == outs[2] and outs[1] == outs[3] == 0x7FC00000
