"""Store.interrupt(): an infinite loop running in one thread is stopped from another with
Trap("interrupted"), and the store is usable afterwards."""


import pytest

import deadeye
from deadeye.ir.errors import Trap
from interrupt_testlib import run_interrupted

LOOP = """(module
  (func $spin (export "spin") (loop $l (br $l)))
  (func (export "spin_calls") (loop $l (call $spin_once) (br $l)))
  (func $spin_once)
  (func (export "rec") (return_call 3))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
"""


def _instance(engine="ir", level=0):
    eng = deadeye.Engine(deadeye.Config(engine=engine, opt_level=level))
    store = deadeye.Store(eng)
    inst = deadeye.Instance(store, deadeye.Module(eng, deadeye.wat2wasm(LOOP)), [])
    return eng, store, inst.exports(store)


@pytest.mark.parametrize("export", ["spin", "spin_calls", "rec"])
@pytest.mark.parametrize("level", [0, 2])
def test_interrupt_stops_infinite_loop(export, level):
    _, store, ex = _instance(level=level)
    trap = run_interrupted(store, ex[export], store.interrupt)
    assert trap.message == "interrupted"
    assert trap.frames and trap.frames[0][0]  # a backtrace into the wasm code
    # The interrupt is consumed: the store runs code again.
    assert ex["add"](store, 2, 3) == 5


def test_engine_interrupt_reaches_its_stores():
    eng, store, ex = _instance()
    trap = run_interrupted(store, ex["spin"], eng.interrupt)
    assert trap.message == "interrupted"


def test_pending_interrupt_stops_next_call():
    _, store, ex = _instance()
    store.interrupt()
    with pytest.raises(Trap, match="interrupted"):
        ex["spin"](store)
    assert ex["add"](store, 1, 1) == 2


def test_runtime_hooks_for_native_executors():
    _, store, _ = _instance()
    rt = store._rt
    cell = rt.interrupt_cell()
    assert cell.value == 0 and not rt.interrupted
    store.interrupt()
    assert cell.value == 1 and rt.interrupted
    trap = rt.take_interrupt()
    assert trap.message == "interrupted" and cell.value == 0 and not rt.interrupted
