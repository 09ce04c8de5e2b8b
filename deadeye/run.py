"""`deadeye run`: run a module's `_start`, or call one export with `--invoke NAME`.

    deadeye run [--engine E] [--fuel N] --invoke NAME FILE.wasm [--] ARGS...

ARGS are parsed by the export's parameter types (integers in decimal or 0x-hex, signed or
unsigned; floats as decimal/`inf`/`nan`; v128 as an integer), and each result is printed on
its own line: integers in signed decimal, floats as their shortest decimal value that reads
back to the same bits (`NaN`, `inf`, `-inf` for the specials), v128 as 0x + 32 hex digits.

Without `--invoke`, a module exporting `_start` that imports nothing runs `_start`. WASI
commands are the WASI layer's business: `run_wasi` is the one place that handles them.

FILE may also be the output of `deadeye compile -o` (recognized by its magic): its code is
run without compiling again, at the opt level and NaN mode it was compiled with (`-O` or
`--nan-canonicalization` that disagree are an error, as is `--fuel` on code not compiled
with `--fuel`).

`--stats` (interp engine): counts every executed bytecode op and consecutive op pair (the
interpreter's instrumented mode, off otherwise) and prints the totals, the hottest ops
and the hottest pairs to stderr when the run ends."""

from __future__ import annotations

import argparse
import math
from typing import Any

from deadeye.ir import numerics
from deadeye.ir.errors import ExitTrap, LinkError, WasmError
from deadeye.ir.types import ValType

WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")
_INT_BITS = {ValType.I32: 32, ValType.I64: 64, ValType.V128: 128}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--invoke", metavar="NAME", help="call this export instead of _start")
    p.add_argument("--engine", default=None, help="execution engine (ir, interp, native)")
    p.add_argument("--dispatch", choices=("direct", "indirect", "loop"), default=None,
                   help="dispatch mode of the native engine (default: direct)")
    p.add_argument("--fuel", type=int, default=None, metavar="N",
                   help="trap after N units of fuel (one per wasm instruction)")
    p.add_argument("--nan-canonicalization", action="store_true",
                   help="make every NaN result the canonical NaN")
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2), default=None,
                   help="optimization level")
    p.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                   help="preopen a host directory for a WASI command (as GUEST, default HOST)")
    p.add_argument("--env", action="append", default=[], metavar="K=V",
                   help="set an environment variable of a WASI command")
    p.add_argument("--stats", action="store_true",
                   help="print executed bytecode op counts and the hottest op pairs to stderr "
                        "(interp engine)")
    p.add_argument("file", metavar="FILE.wasm")
    # Everything after FILE belongs to the guest (a leading `--` is dropped).
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")


def parse_arg(t: ValType, text: str) -> Any:
    """One command-line argument as the bits of a `t` value (ValueError when it is not)."""
    bits = _INT_BITS.get(t)
    if bits is not None:
        try:
            v = int(text, 0)
        except ValueError:
            raise ValueError(f"invalid {t} argument {text!r}") from None
        if not -(1 << (bits - 1)) <= v < (1 << bits):
            raise ValueError(f"{t} argument {text} is out of range")
        return v & ((1 << bits) - 1)
    if t in (ValType.F32, ValType.F64):
        try:
            x = float(text)
        except ValueError:
            raise ValueError(f"invalid {t} argument {text!r}") from None
        return numerics.float_to_f32(x) if t == ValType.F32 else numerics.float_to_f64(x)
    if text == "null":
        return None
    raise ValueError(f"a {t} argument can only be `null`, not {text!r}")


def format_result(t: ValType, v: Any) -> str:
    """One result as `deadeye run` prints it."""
    if t == ValType.V128:
        return f"0x{v:032x}"
    bits = _INT_BITS.get(t)
    if bits is not None:
        return str(v - (1 << bits) if v >> (bits - 1) else v)
    if t == ValType.F32:
        return _float_text(numerics.f32_to_float(v), lambda s: numerics.float_to_f32(float(s)) == v)
    if t == ValType.F64:
        return _float_text(numerics.f64_to_float(v), lambda s: float(s) == numerics.f64_to_float(v))
    if v is None:
        return "null"
    return f"<{t}>"


def _float_text(x: float, exact) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    # the shortest digits that read back to the same value of the result's type
    for digits in range(1, 18):
        s = repr(float(f"{x:.{digits}g}"))
        if exact(s):
            return s[:-2] if s.endswith(".0") else s
    text = repr(x)
    return text[:-2] if text.endswith(".0") else text


def run_wasi(args: argparse.Namespace, engine: Any, module: Any) -> int:
    """Run a WASI command (`_start` with WASI imports)."""
    from deadeye.wasi import run_cli

    return run_cli(args, engine, module)


def main(args: argparse.Namespace) -> int:
    from deadeye import api, cache

    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:  # (worded as Module.from_file words it)
        raise WasmError(f"cannot read {args.file!r}: {e.strerror}") from e
    artifact = cache.load(data) if cache.is_artifact(data) else None
    config = api.Config(engine=_engine_name(args.engine))
    if args.fuel is not None:
        if args.fuel < 0:
            raise WasmError("--fuel must be a non-negative number")
        config.consume_fuel = True
    config.nan_canonicalization = bool(args.nan_canonicalization)
    if args.dispatch is not None:
        config.dispatch = args.dispatch
    if args.opt_level is not None:
        config.opt_level = args.opt_level
    if artifact is not None:  # run as compiled (Module.deserialize reports disagreements)
        if args.opt_level is None:
            config.opt_level = artifact.mode.opt_level
        config.nan_canonicalization |= artifact.mode.nan_canonicalization
    try:
        engine = api.Engine(config)
    except ValueError as e:
        raise WasmError(str(e)) from None
    if getattr(args, "stats", False):
        _instrument(engine)
    try:
        if artifact is not None:
            module = api.Module.deserialize(engine, data)
        else:
            module = api.Module.from_file(engine, args.file)
        return _run_module(args, engine, module)
    finally:
        if getattr(args, "stats", False):
            _print_stats(engine)


def _instrument(engine: Any) -> None:
    """Give `engine` the interpreter's counting mode (before any store exists)."""
    if engine.config.engine == "interp":
        from deadeye.pipeline import interp_executor

        engine.executor = interp_executor(engine.config, stats=True)


def _print_stats(engine: Any) -> None:
    import sys

    fmt = getattr(engine.executor, "format_stats", None)
    if fmt is None or not getattr(engine.executor, "stats", False):
        print(f"--stats: the {engine.config.engine} engine does not count bytecode ops "
              f"(use --engine interp)", file=sys.stderr)
        return
    sys.stdout.flush()
    print(fmt(), file=sys.stderr)


def _run_module(args: argparse.Namespace, engine: Any, module: Any) -> int:
    from deadeye import api

    guest = list(args.args)
    if guest and guest[0] == "--":
        guest = guest[1:]
    imports = module._module.imports
    if args.invoke is None and any(imp.module in WASI_MODULES for imp in imports):
        return run_wasi(args, engine, module)
    if imports:
        first = imports[0]
        raise LinkError(f"unknown import: `{first.module}::{first.name}` cannot be provided "
                        f"by `deadeye run`")
    store = api.Store(engine)
    if args.fuel is not None:
        store.set_fuel(args.fuel)
    name = "_start" if args.invoke is None else args.invoke
    try:
        instance = api.Instance(store, module, [])
        func = instance.exports(store).get(name)
        if not isinstance(func, api.Func):
            if args.invoke is None:
                raise WasmError(f"{args.file} exports no `_start` function; use --invoke NAME")
            raise WasmError(f"{args.file} exports no function named {name!r}")
        ty = func.type(store)
        if len(guest) != len(ty.params):
            raise WasmError(f"`{name}` takes {len(ty.params)} argument(s) "
                            f"({', '.join(map(str, ty.params)) or 'none'}), got {len(guest)}")
        try:
            bits = [parse_arg(t, a) for t, a in zip(ty.params, guest)]
        except ValueError as e:
            raise WasmError(str(e)) from None
        results = func.call_bits(store, bits)
    except ExitTrap as e:
        return e.code
    for t, v in zip(ty.results, results):
        print(format_result(t, v))
    return 0


def _engine_name(requested: str | None) -> str:
    if requested is not None:
        return requested
    from deadeye import api

    # the configured default when it is built, else the first engine that is
    available = api.available_engines()
    for name in (api.Config().engine, "interp", "native", "ir"):
        if name in available:
            return name
    return api.Config().engine

