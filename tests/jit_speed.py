"""fib(30) from examples/fib.wasm on the native executor (each dispatch mode), the Python
bytecode interpreter and wasmtime's Pulley, in one run: `python tests/jit_speed.py [N]`.

The native engine is not registered in the public API yet, so this builds executors on
the compile pipeline directly (`deadeye.pipeline`: lift, optimize, lower)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import deadeye
from deadeye.interp.isa.program import CompiledCode
from deadeye.jit import compiler
from deadeye.jit.native import NativeExecutor
from deadeye.pipeline import interp_executor, pipeline_for

FIB = Path(__file__).resolve().parent.parent / "examples" / "fib.wasm"


def native_factory(mode: str, level: int):
    def provide(func) -> tuple[CompiledCode, int]:
        i = func.defined_index
        return pipeline_for(func.instance.module).bytecode(i, level), i

    return lambda config: NativeExecutor(provide, dispatch=mode)


def run_deadeye(factory, n: int, level: int) -> tuple[int, float]:
    deadeye.api._EXECUTORS["_speed"] = factory
    engine = deadeye.Engine(deadeye.Config(engine="_speed", opt_level=level))
    module = deadeye.Module.from_file(engine, str(FIB))
    store = deadeye.Store(engine)
    inst = deadeye.Linker(engine).instantiate(store, module)
    fib = inst.exports(store)["fib"]
    fib(store, 5)  # compile before timing
    t = time.perf_counter()
    r = fib(store, n)
    return r, time.perf_counter() - t


def run_pulley(n: int) -> tuple[int, float] | None:
    try:
        import wasmtime
        cfg = wasmtime.Config()
        cfg.target = "pulley64"
        engine = wasmtime.Engine(cfg)
        store = wasmtime.Store(engine)
        module = wasmtime.Module(engine, FIB.read_bytes())
        inst = wasmtime.Instance(store, module, [])
        fib = inst.exports(store)["fib"]
        fib(store, 5)
        t = time.perf_counter()
        r = fib(store, n)
        return r, time.perf_counter() - t
    except Exception as e:  # no wasmtime, or no Pulley in this build
        print(f"pulley unavailable: {e}")
        return None


def main(n: int = 30, level: int = 2) -> None:
    t0 = time.perf_counter()
    for mode in ("direct", "indirect", "loop"):
        compiler.load(mode)
    print(f"handler modules ready in {time.perf_counter() - t0:.2f}s; timings: "
          + ", ".join(f"{k}={v:.3f}s" for k, v in sorted(compiler.timings.items())))
    results = {}
    for mode in ("direct", "indirect", "loop"):
        results[f"native-{mode}"] = run_deadeye(native_factory(mode, level), n, level)
    results["interp"] = run_deadeye(lambda c: interp_executor(c), n, level)
    pulley = run_pulley(n)
    if pulley:
        results["pulley"] = pulley
    values = {r for r, _ in results.values()}
    assert len(values) == 1, results
    for name, (r, t) in results.items():
        extra = ""
        if name.startswith("native"):
            extra = f"  interp/native = {results['interp'][1] / t:.1f}x"
            if pulley:
                extra += f"  native/pulley = {t / pulley[1]:.2f}x"
        print(f"{name:16s} fib({n}) = {r}  {t * 1000:9.1f} ms{extra}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
