"""Store.interrupt() stops the "interp" engine's loops, call loops and tail-call loops (the
runtime's test_interrupt.py runs the same programs on the "ir" engine)."""


import pytest

import deadeye
from deadeye.ir.errors import Trap
from interrupt_testlib import run_interrupted

pytest.importorskip("deadeye.lower.compile",
                    reason="the interp engine runs what deadeye.lower produces")

LOOP = """(module
  (func $spin (export "spin") (loop $l (br $l)))
  (func (export "spin2") (param i32)
    (loop $l (if (local.get 0) (then (local.set 0 (i32.add (local.get 0) (i32.const 1))))
                              (else (local.set 0 (i32.sub (local.get 0) (i32.const 1)))))
      (br $l)))
  (func (export "spin_calls") (loop $l (call $spin_once) (br $l)))
  (func $spin_once)
  (func (export "rec") (return_call 4))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
"""


def _instance(level):
    eng = deadeye.Engine(deadeye.Config(engine="interp", opt_level=level))
    store = deadeye.Store(eng)
    inst = deadeye.Instance(store, deadeye.Module(eng, deadeye.wat2wasm(LOOP)), [])
    return store, inst.exports(store)


@pytest.mark.parametrize("export", ["spin", "spin2", "spin_calls", "rec"])
@pytest.mark.parametrize("level", [0, 2])
def test_interrupt_stops_interp_loops(export, level):
    store, ex = _instance(level)
    args = (1,) if export == "spin2" else ()
    trap = run_interrupted(store, lambda s: ex[export](s, *args), store.interrupt)
    assert trap.message == "interrupted"
    assert trap.frames and trap.frames[0][0]
    assert ex["add"](store, 2, 3) == 5


def test_pending_interrupt_stops_next_call():
    store, ex = _instance(0)
    store.interrupt()
    with pytest.raises(Trap, match="interrupted"):
        ex["spin"](store)
    assert ex["add"](store, 1, 1) == 2
