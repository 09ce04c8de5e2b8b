"""Traps through the public API on the "ir" engine: messages and wasm backtraces (checked
against wasmtime's), stack exhaustion without Python recursion, fuel, host functions that
raise, cross-instance calls, and examples/fib.wasm against wasmtime as the oracle."""

from __future__ import annotations

import os

import pytest
import wasmtime

import deadeye
from deadeye import Trap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIB = os.path.join(ROOT, "examples", "fib.wasm")


def _setup(wat, *, imports=(), **config):
    engine = deadeye.Engine(deadeye.Config(engine="ir", **config))
    store = deadeye.Store(engine)
    module = deadeye.Module(engine, deadeye.wat2wasm(wat))
    inst = deadeye.Instance(store, module, list(imports))
    return store, inst.exports(store)


def _wasmtime_frames(wat, name, *args):
    """wasmtime's backtrace of a trapping call: (func name, func index, module offset)."""
    store = wasmtime.Store(wasmtime.Engine())
    inst = wasmtime.Instance(store, wasmtime.Module(store.engine, wasmtime.wat2wasm(wat)), [])
    with pytest.raises(wasmtime.Trap) as e:
        inst.exports(store)[name](store, *args)
    return [(f.func_name, f.func_index, f.module_offset) for f in e.value.frames]


RECURSE = """
(module
  (func $forever (export "forever") (param i32) (result i32)
    (i32.add (call $forever (local.get 0)) (i32.const 1)))
  (func $stop (param i32) (result i32) unreachable))
"""
# The same bytes except that the call goes to $stop: wasmtime reports the call's offset.
STOPS = RECURSE.replace("(call $forever", "(call $stop")


def test_infinite_recursion_is_a_trap_not_recursion_error():
    store, ex = _setup(RECURSE)
    with pytest.raises(Trap) as e:
        ex["forever"](store, 1)
    t = e.value
    assert t.message == "call stack exhausted"
    assert len(t.frames) == deadeye.Config().max_call_depth
    call_site = _wasmtime_frames(STOPS, "forever", 1)[1]
    assert set(t.frames) == {call_site}
    assert call_site[:2] == ("forever", 0)
    assert f"forever (func 0) @ 0x{call_site[2]:x}" in str(t)


def test_recursion_depth_follows_config():
    store, ex = _setup(RECURSE, max_call_depth=100)
    with pytest.raises(Trap) as e:
        ex["forever"](store, 1)
    assert len(e.value.frames) == 100


NESTED = """
(module
  (memory 1)
  (func $outer (export "outer") (param i32) (result i32)
    (i32.add (i32.const 1) (call $middle (local.get 0))))
  (func $middle (param i32) (result i32)
    (nop)
    (call $inner (local.get 0)))
  (func $inner (param i32) (result i32)
    (i32.div_u (i32.const 10) (local.get 0))
    (i32.load (i32.const 65535))
    i32.add))
"""


@pytest.mark.parametrize("arg, message", [(0, "integer divide by zero"),
                                          (1, "out of bounds memory access")])
def test_nested_trap_shows_every_frame(arg, message):
    store, ex = _setup(NESTED)
    with pytest.raises(Trap) as e:
        ex["outer"](store, arg)
    assert e.value.message == message
    assert e.value.frames == _wasmtime_frames(NESTED, "outer", arg)
    assert [f[0] for f in e.value.frames] == ["inner", "middle", "outer"]
    text = str(e.value).splitlines()
    assert text[0] == message and text[1] == "wasm backtrace:"
    assert text[2].startswith("  0: inner (func 2) @ 0x")


def test_unreachable_offset_matches_wasmtime():
    wat = """(module (func $a (export "a") call $b) (func $b nop unreachable))"""
    store, ex = _setup(wat)
    with pytest.raises(Trap) as e:
        ex["a"](store)
    assert e.value.message == "unreachable"
    assert e.value.frames == _wasmtime_frames(wat, "a")


def test_fuel_exhaustion():
    wat = """
    (module (func (export "spin") (param i32) (result i32)
      (loop $l (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
               (br_if $l (local.get 0)))
      (local.get 0)))"""
    store, ex = _setup(wat, consume_fuel=True)
    store.set_fuel(10_000)
    assert ex["spin"](store, 100) == 0
    used = 10_000 - store.get_fuel()
    # one unit per executed wasm instruction: `loop`, 6 per iteration, then the loop's
    # `end`, `local.get` and the function's `end`
    assert used == 1 + 6 * 100 + 3
    store.set_fuel(1000)
    with pytest.raises(Trap) as e:
        ex["spin"](store, 1_000_000)
    assert e.value.message == "all fuel consumed"
    assert store.get_fuel() == 0
    assert [f[:2] for f in e.value.frames] == [("spin", 0)]


def test_host_function_raising_becomes_a_trap():
    wat = """
    (module (import "env" "boom" (func $boom (param i32)))
      (func $caller (export "run") (param i32) (call $boom (local.get 0))))"""

    def boom(x):
        raise ValueError(f"bad {x}")

    engine = deadeye.Engine(deadeye.Config(engine="ir"))
    store = deadeye.Store(engine)
    module = deadeye.Module(engine, deadeye.wat2wasm(wat))
    f = deadeye.Func(store, deadeye.FuncType([deadeye.ValType.i32()], []), boom)
    inst = deadeye.Instance(store, module, [f])
    with pytest.raises(Trap) as e:
        inst.exports(store)["run"](store, 7)
    assert "ValueError" in e.value.message and "bad 7" in e.value.message
    assert isinstance(e.value.__cause__, ValueError)
    assert [fr[0] for fr in e.value.frames] == ["caller"]


def test_host_calls_back_into_wasm_across_instances():
    lib_wat = """
    (module (func (export "twice") (param i32) (result i32)
       (i32.mul (local.get 0) (i32.const 2))))"""
    main_wat = """
    (module $main
      (import "lib" "twice" (func $twice (param i32) (result i32)))
      (import "env" "host" (func $host (param i32) (result i32)))
      (type $t (func (param i32) (result i32)))
      (table 2 funcref) (elem (i32.const 0) $twice $host)
      (func (export "run") (param i32) (result i32)
        (call_indirect (type $t)
          (call_indirect (type $t) (local.get 0) (i32.const 0))
          (i32.const 1))))"""
    engine = deadeye.Engine(deadeye.Config(engine="ir"))
    store = deadeye.Store(engine)
    lib = deadeye.Instance(store, deadeye.Module(engine, deadeye.wat2wasm(lib_wat)), [])
    twice = lib.exports(store)["twice"]
    seen = []

    def host_fn(x):
        rt = store._rt  # the call stack as the host sees it: main's `run` only
        seen.append((len(rt.frames), [i.module.names.module for _, i in rt.instance_stack]))
        return twice(store, x) + 1

    host = deadeye.Func(store, deadeye.FuncType([deadeye.ValType.i32()], [deadeye.ValType.i32()]),
                        host_fn)
    main = deadeye.Instance(store, deadeye.Module(engine, deadeye.wat2wasm(main_wat)),
                            [twice, host])
    # twice (another instance, structurally equal type) then host -> twice again
    assert main.exports(store)["run"](store, 5) == 21
    assert seen == [(1, ["main"])]
    assert store._rt.frames == [] and store._rt.instance_stack == []


def test_fib_example_against_wasmtime():
    engine = deadeye.Engine(deadeye.Config(engine="ir"))
    store = deadeye.Store(engine)
    module = deadeye.Module.from_file(engine, FIB)
    ex = deadeye.Linker(engine).instantiate(store, module).exports(store)
    assert ex["fib"](store, 20) == 6765

    wstore = wasmtime.Store(wasmtime.Engine())
    winst = wasmtime.Instance(wstore, wasmtime.Module.from_file(wstore.engine, FIB), [])
    wex = winst.exports(wstore)
    for n in (0, 1, 2, 10, 20):
        assert ex["fib"](store, n) == wex["fib"](wstore, n)
    for n in (0, 1, 50, 90, 93, 100):
        assert ex["fib_iter"](store, n) == wex["fib_iter"](wstore, n)
