"""Lowered bytecode computes what the IR computes: small programs (loops, calls,
br_table, multi-value, v128, traps, tail calls, tables, globals, the fused and immediate
forms) run on the lowered bytecode with the ISA reference executor ("lower-ref", see
lower_testlib.py) and with the bytecode interpreter ("interp"), against the IR evaluator
("ir") and wasmtime."""

import pytest
import wasmtime
from hypothesis import given, settings, strategies as st

from deadeye.ir.errors import Trap

from lower_testlib import instantiate, use_ref_engine

use_ref_engine()
ENGINES = ("lower-ref", "interp")
M32, M64 = (1 << 32) - 1, (1 << 64) - 1

PROGRAMS = {
    "loops": ("""(module
      (func (export "sum") (param i32) (result i64) (local i64 i32)
        (block $out (loop $l
          (br_if $out (i32.ge_u (local.get 2) (local.get 0)))
          (local.set 1 (i64.add (local.get 1) (i64.extend_i32_u (i32.mul (local.get 2) (local.get 2)))))
          (local.set 2 (i32.add (local.get 2) (i32.const 1)))
          (br $l)))
        (local.get 1))
      (func (export "swap_loop") (param i32 i32 i32) (result i32)
        ;; loop-carried values exchanged every iteration: a parallel-move cycle
        (block $out (loop $l
          (br_if $out (i32.eqz (local.get 2)))
          (local.set 0 (local.get 1) (local.set 1 (local.get 0)) (local.get 0))
          (local.get 0) (local.get 1) (local.set 0) (local.set 1)
          (local.set 2 (i32.sub (local.get 2) (i32.const 1)))
          (br $l)))
        (i32.sub (i32.mul (local.get 0) (i32.const 1000)) (local.get 1))))""",
              [("sum", [0]), ("sum", [10]), ("sum", [100]), ("swap_loop", [3, 7, 0]),
               ("swap_loop", [3, 7, 1]), ("swap_loop", [3, 7, 4]), ("swap_loop", [M32, 2, 5])]),
    "calls": ("""(module
      (func $fib (export "fib") (param i32) (result i32)
        (if (result i32) (i32.lt_u (local.get 0) (i32.const 2)) (then (local.get 0))
          (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                         (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
      (func $three (param i32 i64 i32) (result i64)
        (i64.add (i64.extend_i32_u (i32.sub (local.get 0) (local.get 2))) (local.get 1)))
      (func (export "live_across") (param i32 i32) (result i64) (local i32)
        (local.set 2 (i32.mul (local.get 0) (local.get 1)))
        (i64.add (call $three (local.get 1) (i64.const 5) (local.get 0))
                 (i64.extend_i32_u (i32.add (local.get 2) (call $fib (i32.const 7))))))
      (func $pair (param i32 i32) (result i32 i32) (local.get 1) (local.get 0))
      (func (export "multi") (param i32 i32) (result i32 i32 i32)
        (call $pair (local.get 0) (local.get 1)) (call $pair (local.get 0) (local.get 0))
        (drop)))""",
              [("fib", [0]), ("fib", [1]), ("fib", [12]), ("live_across", [3, 4]),
               ("live_across", [M32, 9]), ("multi", [1, 2])]),
    "br_table": ("""(module
      (func (export "sw") (param i32 i32) (result i32) (local i32)
        (local.set 2 (i32.const 100))
        (block $d (block $c (block $b (block $a
          (br_table $a $b $c $d (local.get 0)))
          (local.set 2 (i32.add (local.get 2) (local.get 1))) (br $d))
          (local.set 2 (i32.mul (local.get 2) (local.get 1))) (br $d))
          (local.set 2 (i32.const 7)))
        (local.get 2))
      (func (export "args") (param i32) (result i32)
        (block $x (result i32) (block $y (result i32)
          (br_table $x $y $x (i32.const 11) (local.get 0)))
          (i32.add (i32.const 1)))))""",
                 [("sw", [0, 5]), ("sw", [1, 5]), ("sw", [2, 5]), ("sw", [3, 5]), ("sw", [M32, 5]),
                  ("args", [0]), ("args", [1]), ("args", [2]), ("args", [9])]),
    "fused": ("""(module (memory 1)
      (func (export "sel") (param i32 i32 i64 i64) (result i64)
        (select (local.get 2) (local.get 3) (i32.lt_s (local.get 0) (local.get 1))))
      (func (export "selimm") (param i32 i64 i64) (result i64)
        (select (local.get 1) (local.get 2) (i32.gt_u (i32.const 10) (local.get 0))))
      (func (export "fsel") (param f64 f64 i32 i32) (result i32)
        (select (local.get 2) (local.get 3) (f64.lt (local.get 0) (local.get 1))))
      (func (export "brimm") (param i64) (result i32)
        (block $b (br_if $b (i64.le_s (local.get 0) (i64.const -5))) (return (i32.const 1)))
        (i32.const 2))
      (func (export "brf") (param f32 f32) (result i32)
        (block $b (br_if $b (f32.ge (local.get 0) (local.get 1))) (return (i32.const 1)))
        (i32.const 2))
      (func (export "imm") (param i32 i64) (result i64)
        (i64.add (i64.extend_i32_u (i32.shl (i32.sub (local.get 0) (i32.const 7)) (i32.const 35)))
                 (i64.xor (i64.mul (i64.const 0x123456789) (local.get 1)) (i64.const -1))))
      (func (export "mem") (param i32 i32) (result i32)
        (i32.store offset=3 (i32.add (i32.and (local.get 0) (i32.const 0xff)) (i32.const 8)) (local.get 1))
        (i32.load8_u offset=1 (i32.add (i32.const 10) (i32.and (local.get 0) (i32.const 0xff)))))
      (func (export "wrap") (param i32) (result i32)
        ;; x + k may wrap: must not fold into the offset field
        (i32.load (i32.add (local.get 0) (i32.const 16)))))""",
              [("sel", [1, 2, 10, 20]), ("sel", [2, 1, 10, 20]), ("sel", [M32, 0, 10, 20]),
               ("selimm", [3, 5, 6]), ("selimm", [30, 5, 6]), ("fsel", [0x3FF0000000000000, 0x7FF8000000000000, 1, 2]),
               ("fsel", [0, 0x3FF0000000000000, 1, 2]), ("brimm", [M64]), ("brimm", [M64 - 9]),
               ("brimm", [3]), ("brf", [0x3F800000, 0x3F800000]), ("brf", [0x7FC00000, 0]),
               ("brf", [0, 0x3F800000]), ("imm", [5, 3]), ("imm", [0, M64]),
               ("mem", [0x1234, 0x01020304]), ("mem", [0xFF, 0xAABBCCDD]),
               ("wrap", [0xFFFFFFF0]), ("wrap", [0xFFFFFFFF]), ("wrap", [65520])]),
    "traps": ("""(module (memory 1) (table 2 funcref) (elem (i32.const 0) $f)
      (type $t (func (param i32) (result i32)))
      (func $f (param i32) (result i32) (i32.div_s (i32.const 100) (local.get 0)))
      (func (export "div") (param i32) (result i32) (call $f (local.get 0)))
      (func (export "ind") (param i32 i32) (result i32)
        (call_indirect (type $t) (local.get 1) (local.get 0)))
      (func (export "oob") (param i32) (result i64) (i64.load offset=65530 (local.get 0)))
      (func (export "unr") (param i32) (result i32)
        (if (local.get 0) (then unreachable)) (i32.const 5)))""",
              [("div", [5]), ("div", [0]), ("div", [M32]), ("ind", [0, 4]), ("ind", [1, 4]),
               ("ind", [7, 4]), ("oob", [0]), ("oob", [2]), ("oob", [6]), ("unr", [0]),
               ("unr", [1])]),
    "tail_and_tables": ("""(module (table $t 4 funcref) (global $g (mut i64) (i64.const 3))
      (type $r (func (param i64 i64) (result i64)))
      (elem (i32.const 0) $acc $acc2)
      (func $acc (param i64 i64) (result i64)
        (if (result i64) (i64.eqz (local.get 0)) (then (local.get 1))
          (else (return_call $acc (i64.sub (local.get 0) (i64.const 1))
                                  (i64.add (local.get 1) (local.get 0))))))
      (func $acc2 (param i64 i64) (result i64)
        (return_call_indirect (type $r) (local.get 1) (local.get 0) (i32.const 0)))
      (func (export "tail") (param i64) (result i64) (call $acc (local.get 0) (i64.const 0)))
      (func (export "tail2") (param i64) (result i64)
        (call_indirect (type $r) (i64.const 0) (local.get 0) (i32.const 1)))
      (func (export "glob") (param i64) (result i64 i32)
        (global.set $g (i64.add (global.get $g) (local.get 0)))
        (global.get $g)
        (table.size $t)
        (drop (table.grow $t (ref.null func) (i32.const 2)))
        (i32.add (table.size $t)) (ref.is_null (table.get $t (i32.const 3))) (i32.add)))""",
                        [("tail", [0]), ("tail", [10]), ("tail", [60]), ("tail2", [20]),
                         ("glob", [5])]),
}


def _ref_results(wat, name, args):
    try:
        store, inst = instantiate(wat, "ir")
        return ("ok", list(_as_list(inst.exports(store)[name](store, *args))))
    except Trap as t:
        return ("trap", str(t).split("\n")[0])


def _as_list(r):
    if r is None:
        return []
    return list(r) if isinstance(r, (list, tuple)) else [r]


def _run(engine, wat, name, args):
    try:
        store, inst = instantiate(wat, engine)
        return ("ok", _as_list(inst.exports(store)[name](store, *args)))
    except Trap as t:
        return ("trap", str(t).split("\n")[0])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_program_matches_ir_evaluator(prog, engine):
    wat, calls = PROGRAMS[prog]
    for name, args in calls:
        want = _ref_results(wat, name, args)
        got = _run(engine, wat, name, args)
        assert got == want, (prog, name, args)


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def test_against_wasmtime():
    """Integer results also agree with wasmtime (an independent implementation)."""
    wat, calls = PROGRAMS["calls"]
    wstore = wasmtime.Store()
    winst = wasmtime.Instance(wstore, wasmtime.Module(wstore.engine, wat), [])
    store, inst = instantiate(wat, "lower-ref")
    for name, args in calls:
        f = winst.exports(wstore)[name]
        w = f(wstore, *[_signed(a, 32) for a in args])
        w = list(w) if isinstance(w, (list, tuple)) else [w]
        bits = [64 if str(t) == "i64" else 32 for t in f.type(wstore).results]
        got = _as_list(inst.exports(store)[name](store, *args))
        assert got == [x & ((1 << b) - 1) for x, b in zip(w, bits)], (name, args)


V128_WAT = """(module (memory 1)
  (func $mix (param v128 v128 i32) (result v128)
    (i32x4.add (i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31 (local.get 0) (local.get 1))
               (i32x4.splat (local.get 2))))
  (func (export "go") (param i32)
    (local v128 v128)
    (local.set 1 (v128.load (i32.const 0)))
    (local.set 2 (v128.load (i32.const 16)))
    ;; v128 values live across a call and passed in a call window (two slots each)
    (v128.store (i32.const 32)
      (v128.bitselect (call $mix (local.get 2) (local.get 1) (local.get 0)) (local.get 1)
                      (select (local.get 2) (local.get 1) (i32.and (local.get 0) (i32.const 1)))))
    (v128.store (i32.const 48) (f64x2.mul (local.get 1) (local.get 2)))))"""


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(0, M32))
def test_v128_through_memory(data, k):
    outs = []
    for engine in ("ir",) + ENGINES:
        store, inst = instantiate(V128_WAT, engine)
        memory = inst._rt.memories[0]
        memory.write(0, data)
        inst.exports(store)["go"](store, k)
        outs.append(bytes(memory.read(0, 64)))
    assert outs[0] == outs[1] == outs[2]
