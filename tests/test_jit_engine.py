"""The "native" engine through the public API: examples/fib.wasm in every dispatch mode and
opt level agrees with the bytecode interpreter; traps and fuel behave like other engines."""

from pathlib import Path

import pytest

import deadeye

FIB = str(Path(__file__).resolve().parent.parent / "examples" / "fib.wasm")


def _exports(**cfg):
    engine = deadeye.Engine(deadeye.Config(**cfg))
    module = deadeye.Module.from_file(engine, FIB)
    store = deadeye.Store(engine)
    inst = deadeye.Linker(engine).instantiate(store, module)
    return store, inst.exports(store)


@pytest.mark.parametrize("dispatch", ["direct", "indirect", "loop"])
@pytest.mark.parametrize("opt_level", [0, 2])
def test_fib_matches_interpreter(dispatch, opt_level):
    store, ex = _exports(engine="native", dispatch=dispatch, opt_level=opt_level)
    istore, iex = _exports(engine="interp", opt_level=opt_level)
    for n in (0, 1, 2, 10, 20):
        assert ex["fib"](store, n) == iex["fib"](istore, n)
    for n in (0, 1, 50, 93, 1000):
        assert ex["fib_iter"](store, n) == iex["fib_iter"](istore, n)


def test_fuel_runs_out_natively():
    engine = deadeye.Engine(deadeye.Config(engine="native", consume_fuel=True))
    module = deadeye.Module.from_file(engine, FIB)
    store = deadeye.Store(engine)
    store.set_fuel(10_000)
    fib = deadeye.Linker(engine).instantiate(store, module).exports(store)["fib"]
    assert fib(store, 5) == 5
    with pytest.raises(deadeye.Trap, match="all fuel consumed"):
        fib(store, 30)
    assert store.get_fuel() == 0
