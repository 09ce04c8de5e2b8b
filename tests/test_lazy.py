"""Lazy compilation: a function goes through lift -> opt -> lower on its first call only,
and an uncompiled function costs at most 64 bytes of Python heap (compact arrays, no
per-function objects) when a module is created and instantiated."""

from __future__ import annotations

import gc
import os
import tracemalloc
import weakref

import pytest

import deadeye
from deadeye import api
from pipeline_testlib import count_pipeline

FIB = os.path.join(os.path.dirname(__file__), "..", "examples", "fib.wasm")

BYTES_PER_FUNCTION = 64
N = 20_000


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _uleb(len(payload)) + payload


def _name(s: str) -> bytes:
    return _uleb(len(s)) + s.encode()


def many_functions(n: int) -> bytes:
    """A module of `n` functions `() -> i32` (function i returns i mod 64), exporting the
    first as "first" and the last as "last", built directly as a binary."""
    types = _section(1, b"\x01\x60\x00\x01\x7f")
    funcs = _section(3, _uleb(n) + b"\x00" * n)
    exports = _section(7, b"\x02" + _name("first") + b"\x00\x00"
                       + _name("last") + b"\x00" + _uleb(n - 1))
    bodies = b"".join(b"\x04\x00\x41" + bytes([i & 0x3F]) + b"\x0b" for i in range(n))
    code = _section(10, _uleb(n) + bodies)
    return b"\0asm\x01\0\0\0" + types + funcs + exports + code


def _heap(engine: deadeye.Engine, data: bytes, call: bool) -> int:
    """Python heap held after Module + Instance creation (and, with `call`, one call of
    the last function)."""
    gc.collect()
    tracemalloc.start()
    try:
        module = deadeye.Module(engine, data)
        store = deadeye.Store(engine)
        instance = deadeye.Instance(store, module, [])
        if call:
            assert instance.exports(store)["last"](store) in (9, (N - 1) & 0x3F)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del module, store, instance
    return held


@pytest.fixture(scope="module")
def modules() -> tuple[bytes, bytes]:
    return many_functions(N), many_functions(10)


def _per_function(engine_name: str, modules, *, lazy: bool, call: bool) -> float:
    engine = deadeye.Engine(deadeye.Config(engine=engine_name, lazy=lazy))
    big, small = modules
    _heap(engine, small, call)  # warm up imports and caches outside the measurement
    return (_heap(engine, big, call) - _heap(engine, small, call)) / (N - 10)


ENGINES = [e for e in ("interp", "native", "ir") if e in api.available_engines()]


@pytest.mark.parametrize("engine_name,lazy", [(e, True) for e in ENGINES] + [("interp", False)])
def test_instantiation_memory_per_function(engine_name, lazy, modules):
    """Both engines' instantiation paths, and eager validation (a byte a function)."""
    per = _per_function(engine_name, modules, lazy=lazy, call=False)
    assert 0 < per <= BYTES_PER_FUNCTION, f"{per:.1f} bytes per uncompiled function"


@pytest.mark.parametrize("engine_name", [e for e in ("interp", "ir") if e in ENGINES])
def test_first_call_compiles_one_function_and_stays_compact(engine_name, modules):
    per = _per_function(engine_name, modules, lazy=True, call=True)
    assert 0 < per <= BYTES_PER_FUNCTION, f"{per:.1f} bytes per uncompiled function"


@pytest.mark.parametrize("engine_name", [e for e in ("interp", "native") if e in ENGINES])
@pytest.mark.parametrize("lazy", [True, False])
def test_pipeline_runs_on_first_call_only(engine_name, lazy, monkeypatch):
    lifted, lowered = count_pipeline(monkeypatch)
    engine = deadeye.Engine(deadeye.Config(engine=engine_name, lazy=lazy))
    store = deadeye.Store(engine)
    module = deadeye.Module(engine, many_functions(300))
    exports = deadeye.Instance(store, module, []).exports(store)
    assert lifted == lowered == []  # nothing compiled at load or instantiation
    assert exports["last"](store) == 299 & 0x3F
    assert lifted == lowered == [299]
    for _ in range(3):
        exports["last"](store)
        exports["first"](store)
    assert lifted == lowered == [299, 0]
    # a second instance of the same module reuses the code
    other = deadeye.Instance(deadeye.Store(engine), module, []).exports(store)
    assert other["last"](store) == 299 & 0x3F and lowered == [299, 0]


def test_lazy_function_space_keeps_identity_and_sequence_behaviour():
    engine = deadeye.Engine(deadeye.Config(lazy=True))
    store = deadeye.Store(engine)
    inst = deadeye.Instance(store, deadeye.Module(engine, many_functions(50)), [])
    funcs = inst._rt.funcs
    assert len(funcs) == 50
    assert funcs[7] is funcs[7] and funcs[-1] is funcs[49]
    assert funcs[49] is inst.exports(store)["last"]._rt
    assert [f.defined_index for f in funcs] == list(range(50))
    assert funcs.index(funcs[9]) == 9
    assert funcs[5] in funcs
    with pytest.raises(IndexError):
        funcs[50]
    with pytest.raises(IndexError):
        funcs[-51]


@pytest.mark.parametrize("keep_engine", [False, True])
@pytest.mark.parametrize("engine_name", ["ir", "interp", "native"])
def test_a_module_and_its_compiled_code_are_freed_with_the_last_reference(engine_name, keep_engine):
    # an embedder that loads modules in a loop (with one engine, or an engine each) must
    # not grow: no cache of the engine or the process may keep a dropped module (or its
    # compiled code) alive
    engine = deadeye.Engine(deadeye.Config(engine=engine_name))
    store = deadeye.Store(engine)
    module = deadeye.Module.from_file(engine, FIB)
    inst = deadeye.Instance(store, module, [])
    assert inst.exports(store)["fib"](store, 10) == 55
    decoded = weakref.ref(module._module)
    del store, module, inst
    if not keep_engine:
        del engine
    gc.collect()
    assert decoded() is None


REFS_WAT = """(module (type $t (func (result i32))) (table 2 funcref) (elem (i32.const 0) $a $b)
  (func $a (result i32) (i32.const 7)) (func $b (result i32) (i32.const 8))
  (global $g (mut funcref) (ref.null func))
  (global $h funcref (ref.func $a))
  (func (export "go") (param i32) (result i32)
    (global.set $g (table.get (local.get 0)))
    (call_indirect (type $t) (local.get 0))))"""


@pytest.mark.parametrize("engine_name", ["ir", "interp", "native"])
def test_instances_with_tables_and_references_are_freed_by_a_kept_engine(engine_name):
    # per-instance state (native globals and table caches, reference handles) must not
    # outlive the instance
    engine = deadeye.Engine(deadeye.Config(engine=engine_name))
    store = deadeye.Store(engine)
    module = deadeye.Module(engine, REFS_WAT)
    inst = deadeye.Instance(store, module, [])
    assert [inst.exports(store)["go"](store, i) for i in (0, 1, 1)] == [7, 8, 8]
    decoded = weakref.ref(module._module)
    del store, module, inst
    gc.collect()
    assert decoded() is None

