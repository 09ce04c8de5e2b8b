"""Guest misbehaviour on the native engine traps cleanly, in every dispatch mode: loads and
stores at every memory edge (every width, static offsets past the end), runaway recursion
(direct, mutual, through call_indirect), huge and repeated `memory.grow`, `call_indirect`
with a wrong type, a null or out-of-range element. Each mode runs in a subprocess, so a
crash in native code fails the test instead of killing pytest; wasmtime says which calls
trap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

wasmtime = pytest.importorskip("wasmtime")

WAT = """(module
  (memory 1 3)
  (type $i2i (func (param i32) (result i32)))
  (type $v2v (func))
  (table 4 funcref)
  (elem (i32.const 0) $id $spin)
  (func $id (type $i2i) (local.get 0))
  (func $spin (type $v2v) (call $spin))
  (func (export "load8") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "load16") (param i32) (result i32) (i32.load16_u (local.get 0)))
  (func (export "load32") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "load64") (param i32) (result i64) (i64.load (local.get 0)))
  (func (export "load128") (param i32) (result i64)
    (i64x2.extract_lane 1 (v128.load (local.get 0))))
  (func (export "load32_off") (param i32) (result i32) (i32.load offset=65532 (local.get 0)))
  (func (export "load64_maxoff") (param i32) (result i64) (i64.load offset=4294967295 (local.get 0)))
  (func (export "store64") (param i32) (i64.store (local.get 0) (i64.const -1)))
  (func (export "store128") (param i32) (v128.store (local.get 0) (v128.const i64x2 1 2)))
  (func (export "fill") (param i32 i32) (memory.fill (local.get 0) (i32.const 7) (local.get 1)))
  (func (export "copy") (param i32 i32) (memory.copy (local.get 0) (i32.const 0) (local.get 1)))
  (func $rec (export "rec") (param i32) (result i32)
    (i32.add (i32.const 1) (call $rec (local.get 0))))
  (func $even (param i32) (result i32) (call $odd (local.get 0)))
  (func $odd (param i32) (result i32) (call $even (local.get 0)))
  (func (export "mutual") (param i32) (result i32) (call $even (local.get 0)))
  (func (export "spin_indirect") (call_indirect (type $v2v) (i32.const 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "call_as_i2i") (param i32) (result i32)
    (call_indirect (type $i2i) (i32.const 5) (local.get 0)))
  (func (export "wrong_type") (call_indirect (type $v2v) (i32.const 0)))
  (func (export "null_elem") (call_indirect (type $v2v) (i32.const 2)))
  (func (export "past_table") (call_indirect (type $v2v) (i32.const 4)))
)"""

PAGE = 65536
EDGES = [0, PAGE - 16, PAGE - 8, PAGE - 4, PAGE - 2, PAGE - 1, PAGE, PAGE + 1, 2**31, 2**32 - 1]
CALLS = (
    [(f"load{w}", [a]) for w in (8, 16, 32, 64, 128) for a in EDGES]
    + [("load32_off", [a]) for a in (0, 1, 4, 5)]
    + [("load64_maxoff", [a]) for a in (0, 1)]
    + [(op, [a]) for op in ("store64", "store128") for a in EDGES]
    + [(op, [a, n]) for op in ("fill", "copy") for a, n in
       ((0, PAGE), (1, PAGE), (PAGE, 0), (PAGE, 1), (PAGE + 1, 0), (2**32 - 1, 2))]
    + [("rec", [0]), ("mutual", [0]), ("spin_indirect", [])]
    + [("grow", [2**32 - 1]), ("grow", [2**16]), ("grow", [3]), ("grow", [1]), ("size", []),
       ("grow", [1]), ("grow", [0]), ("size", [])]
    + [("call_as_i2i", [1]), ("wrong_type", []), ("null_elem", []), ("past_table", [])]
)

# Runs in the subprocess: every call in order on one instance; prints one JSON line.
CHILD = """
import json, sys, deadeye
mode, wasm, calls = sys.argv[1], bytes.fromhex(sys.argv[2]), json.loads(sys.argv[3])
engine = deadeye.Engine(deadeye.Config(engine="native", dispatch=mode, max_call_depth=5000))
store = deadeye.Store(engine)
inst = deadeye.Instance(store, deadeye.Module(engine, wasm), [])
out = []
for name, args in calls:
    try:
        r = inst.exports(store)[name](store, *args)
        out.append(["ok", r])
    except deadeye.Trap as e:
        out.append(["trap", str(e).splitlines()[0]])
print(json.dumps(out))
"""


def _wasmtime_outcomes(wasm: bytes) -> list:
    store = wasmtime.Store()
    inst = wasmtime.Instance(store, wasmtime.Module(store.engine, wasm), [])
    out = []
    for name, args in CALLS:
        try:
            out.append(["ok", inst.exports(store)[name](store, *args)])
        except wasmtime.Trap:
            out.append(["trap", None])
    return out


@pytest.mark.parametrize("mode", ["direct", "indirect", "loop"])
def test_native_traps_cleanly_where_wasmtime_traps(mode):
    wasm = wasmtime.wat2wasm(WAT)
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, wasm.hex(), json.dumps(CALLS)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the native engine crashed: {proc.returncode}\n{proc.stderr[-3000:]}"
    got = json.loads(proc.stdout)
    want = _wasmtime_outcomes(wasm)
    for (name, args), g, w in zip(CALLS, got, want):
        assert g[0] == w[0], f"{name}{tuple(args)}: deadeye {g}, wasmtime {w}"
        if g[0] == "ok":
            assert g[1] == w[1], f"{name}{tuple(args)}: deadeye {g}, wasmtime {w}"
    messages = {name: g[1] for (name, _), g in zip(CALLS, got) if g[0] == "trap"}
    assert messages["rec"] == messages["mutual"] == messages["spin_indirect"] == \
        "call stack exhausted"
    assert messages["wrong_type"] == "indirect call type mismatch"
    assert messages["null_elem"] == "uninitialized element"
    assert messages["past_table"] == "undefined element"
    assert messages["load64"] == "out of bounds memory access"
