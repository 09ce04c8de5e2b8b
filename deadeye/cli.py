"""The `deadeye` command line. Each subcommand's work lives in its own module; this file
only parses arguments and turns every expected failure into one line on stderr and a
non-zero exit status (never a traceback)."""

from __future__ import annotations

import argparse
import sys

from deadeye.ir.errors import WasmError


def _cmd_validate(args: argparse.Namespace) -> int:
    from deadeye.frontend.module import parse_module

    data = _read_input(args.file)
    parse_module(data, validate="eager")
    print("ok")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from deadeye import run

    return run.main(args)


def _cmd_wast(args: argparse.Namespace) -> int:
    from deadeye import wast

    from deadeye import wast_backend

    for field in ("opt_level", "dispatch"):
        if getattr(args, field, None) is not None:
            wast_backend.CONFIG_DEFAULTS[field] = getattr(args, field)
    return wast.main(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from deadeye import bench

    return bench.main(args)


def _cmd_fuzz(args: argparse.Namespace) -> int:
    from deadeye.fuzz import command

    return command.main(args)


def _cmd_verify_nan(args: argparse.Namespace) -> int:
    from deadeye import verify_nan

    return verify_nan.main(args)


def _cmd_bisect(args: argparse.Namespace) -> int:
    from deadeye import bisect

    return bisect.main(args)


def _read_input(path: str) -> bytes:
    """Read a module; `.wat` text goes through wasmtime's wat2wasm (the `text` extra)."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".wat"):
        from deadeye.wat import wat_to_wasm

        data = wat_to_wasm(data.decode("utf-8", errors="replace"))
    return data


def _cmd_rules(args: argparse.Namespace) -> int:
    import deadeye.rule_sets  # noqa: F401  (registers the shipped rule sets)
    from deadeye.lower.dsl import cli as rules_cli

    return rules_cli.run(args)


def _cmd_disas(args: argparse.Namespace) -> int:
    from deadeye.lower import cli as lower_cli

    return lower_cli.run_disas(args)


def _cmd_compile(args: argparse.Namespace) -> int:
    from deadeye import cache

    return cache.run_compile(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deadeye", description="WebAssembly through an optimizing pipeline into register bytecode."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="decode and validate a module; print ok or the error")
    v.add_argument("file", metavar="FILE.wasm")
    v.set_defaults(func=_cmd_validate)

    from deadeye.run import add_arguments as _run_arguments

    r = sub.add_parser("run", help="run a module's _start, or an export with --invoke NAME")
    _run_arguments(r)
    r.set_defaults(func=_cmd_run)

    w = sub.add_parser("wast", help="run .wast spec scripts")
    w.add_argument("paths", nargs="+", metavar="PATH", help=".wast files or folders of them")
    w.add_argument("--json", metavar="FILE", help="write per-kind totals and per-file detail")
    w.add_argument("--engine", default=None, help="execution engine (ir, interp, native)")
    w.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2), default=None,
                   help="optimization level of the deadeye engines (default: Config's)")
    w.add_argument("--dispatch", choices=("direct", "indirect", "loop"), default=None,
                   help="dispatch mode of the native engine (default: direct)")
    w.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    w.set_defaults(func=_cmd_wast)

    from deadeye.bench import add_arguments as _bench_arguments

    b = sub.add_parser("bench", help="run the Sightglass benchmarks against wasmtime's anchors")
    _bench_arguments(b)
    b.set_defaults(func=_cmd_bench)

    from deadeye.fuzz.command import add_arguments as _fuzz_arguments

    fz = sub.add_parser("fuzz", help="fuzz: generated modules vs wasmtime, or hostile mutants")
    _fuzz_arguments(fz)
    fz.set_defaults(func=_cmd_fuzz)

    from deadeye.lower.dsl.cli import add_arguments as _rules_arguments

    r = sub.add_parser("rules", help="check rule files, show a term's generated matcher")
    _rules_arguments(r)
    r.set_defaults(func=_cmd_rules)

    from deadeye.lower.cli import add_compile_arguments, add_disas_arguments

    d = sub.add_parser("disas", help="print a stage (wasm, ir, opt, bytecode) of functions")
    add_disas_arguments(d)
    d.set_defaults(func=_cmd_disas)
    c = sub.add_parser("compile", help="lower every function to bytecode (--stats: figures)")
    add_compile_arguments(c)
    c.set_defaults(func=_cmd_compile)

    from deadeye.verify_nan import add_arguments as _verify_nan_arguments

    vn = sub.add_parser("verify-nan", help="check NaN determinism across engines (exit 1 on findings)")
    _verify_nan_arguments(vn)
    vn.set_defaults(func=_cmd_verify_nan)

    from deadeye.bisect import add_arguments as _bisect_arguments

    bs = sub.add_parser("bisect", help="find the first wasm block where two engines/opt levels diverge")
    _bisect_arguments(bs)
    bs.set_defaults(func=_cmd_bisect)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WasmError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
