"""Running a guest call in a thread and interrupting it (the interrupt tests of every
engine share this)."""

from __future__ import annotations

import threading
import time

from deadeye.ir.errors import Trap


def run_interrupted(store, func, interrupt, settle: float = 0.2):
    """Run `func(store)` in a thread, call `interrupt()` once it spins; return its trap."""
    out = {}

    def target():
        try:
            func(store)
            out["result"] = "returned"
        except Trap as t:
            out["trap"] = t

    th = threading.Thread(target=target, daemon=True)
    th.start()
    time.sleep(settle)
    assert th.is_alive()  # really spinning
    interrupt()
    th.join(10)
    assert not th.is_alive(), "interrupt did not stop the loop"
    return out["trap"]
