"""Threads: stores of one engine (and different engines) used from several threads at
once give correct results on every engine (wasm runs one store at a time per engine;
compilation one function at a time per process), and never crash."""

from __future__ import annotations

import os
import threading

import pytest

import deadeye

FIB = os.path.join(os.path.dirname(__file__), "..", "examples", "fib.wasm")
EXPECTED = {14: 377, 15: 610, 16: 987, 17: 1597}


def _hammer(engine: deadeye.Engine, module: deadeye.Module, n: int, errors: list) -> None:
    store = deadeye.Store(engine)
    fib = deadeye.Instance(store, module, []).exports(store)["fib"]
    for _ in range(25):
        try:
            got = fib(store, n)
        except Exception as e:  # noqa: BLE001 (any exception is the failure reported)
            errors.append(repr(e))
            return
        if got != EXPECTED[n]:
            errors.append(f"fib({n}) = {got}")
            return


def _run_threads(targets) -> list:
    errors: list = []
    threads = [threading.Thread(target=_hammer, args=(*t, errors)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("engine_name", ["ir", "interp", "native"])
def test_one_engine_shared_by_threads(engine_name):
    # the module is compiled lazily, so the threads also race to compile it
    engine = deadeye.Engine(deadeye.Config(engine=engine_name))
    module = deadeye.Module.from_file(engine, FIB)
    assert _run_threads([(engine, module, n) for n in EXPECTED]) == []


def test_engines_of_every_kind_on_threads_at_once():
    targets = []
    for i, name in enumerate(["ir", "interp", "native", "interp"]):
        engine = deadeye.Engine(deadeye.Config(engine=name, opt_level=i % 3))
        targets.append((engine, deadeye.Module.from_file(engine, FIB), 14 + i))
    assert _run_threads(targets) == []
