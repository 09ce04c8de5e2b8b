"""Speed of the "interp" engine against pywasm on the same modules, in one run.

    pip install --target /tmp/pywasm pywasm      # not a project dependency
    PYTHONPATH=/tmp/pywasm python tests/interp_vs_pywasm.py [N]

Executed wasm instructions are counted with fuel (one unit per wasm instruction), in a
separate run: the timed runs have fuel off. Prints instructions per second for both and
the ratio."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import deadeye

ROOT = Path(__file__).resolve().parent.parent
CASES = [  # (module, export, args)
    ("examples/fib.wasm", "fib", [22]),
    ("examples/fib.wasm", "fib_iter", [200_000]),
]


def _instance(path: str, fuel: bool, opt_level: int):
    engine = deadeye.Engine(deadeye.Config(engine="interp", consume_fuel=fuel,
                                           opt_level=opt_level))
    store = deadeye.Store(engine)
    module = deadeye.Module.from_file(engine, str(ROOT / path))
    inst = deadeye.Instance(store, module, [])
    return store, inst


def wasm_instructions(path: str, export: str, args: list, opt_level: int) -> int:
    store, inst = _instance(path, True, opt_level)
    store.set_fuel(10**15)
    inst.exports(store)[export](store, *args)
    return 10**15 - store.get_fuel()


def time_deadeye(path: str, export: str, args: list, opt_level: int) -> tuple[float, object]:
    store, inst = _instance(path, False, opt_level)
    f = inst.exports(store)[export]
    f(store, *[1] * len(args))  # compile on a small call first
    t = time.perf_counter()
    r = f(store, *args)
    return time.perf_counter() - t, r


def time_pywasm(path: str, export: str, args: list) -> tuple[float, object]:
    import pywasm

    rt = pywasm.Runtime()
    m = rt.instance_from_file(str(ROOT / path))
    t = time.perf_counter()
    r = rt.invocate(m, export, list(args))
    return time.perf_counter() - t, r


def main(argv: list[str]) -> None:
    opt_level = int(argv[0]) if argv else 2
    for path, export, args in CASES:
        n = wasm_instructions(path, export, args, opt_level)
        dt, r = time_deadeye(path, export, args, opt_level)
        pt, pr = time_pywasm(path, export, args)
        print(f"{path} {export}{tuple(args)}: {n} wasm instrs; deadeye interp -O{opt_level} "
              f"{n / dt / 1e6:.2f} M/s ({dt:.3f}s, {r}); pywasm {n / pt / 1e6:.3f} M/s "
              f"({pt:.3f}s, {pr}); ratio {pt / dt:.1f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
