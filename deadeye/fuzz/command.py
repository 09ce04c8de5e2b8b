"""`deadeye fuzz --seconds N [--seed S] [--out DIR] [--mode differential|hostile]
[--engine NAME]... [--json]`: a
fuzzing campaign. Prints a summary line (and one line per failure found); exit status
1 when something failed, so scripts can stop on the first bad run."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, required=True, help="how long to run")
    p.add_argument("--seed", type=int, default=None, help="first seed (random if omitted)")
    p.add_argument("--out", default="fuzz-out", metavar="DIR",
                   help="where failing inputs are saved (.wasm + .json)")
    p.add_argument("--mode", choices=("differential", "hostile"), default="differential",
                   help="generated modules vs wasmtime, or mutated modules (default: differential)")
    p.add_argument("--engine", action="append", dest="engines", metavar="NAME",
                   help="only this deadeye engine (repeatable; default: every registered one)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        print("error: --seconds must be positive", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, flush=True)

    from deadeye.api import available_engines

    unknown = sorted(set(args.engines or ()) - set(available_engines()))
    if unknown:
        print(f"error: engine(s) {', '.join(unknown)} not available (available: "
              f"{', '.join(available_engines())})", file=sys.stderr)
        return 2
    if args.mode == "differential":
        try:
            import wasmtime  # noqa: F401 - the oracle
        except ImportError:
            print("error: differential fuzzing needs the wasmtime package", file=sys.stderr)
            return 2
        from deadeye.fuzz.differential import campaign

        stats = campaign(args.seconds, seed=args.seed, out_dir=args.out, log=log,
                         engines=args.engines)
        failures = stats["mismatches"] + stats["generator_errors"] + stats["crashes"]
        summary = (f"{stats['modules']} modules ({stats['calls']} calls) on "
                   f"{', '.join(stats['configs'])}: {stats['mismatches']} mismatches, "
                   f"{stats['crashes']} crashes, {stats['generator_errors']} generator errors "
                   f"(seeds {stats['first_seed']}..{stats['last_seed']})")
    else:
        from deadeye.fuzz.hostile import campaign

        stats = campaign(seconds=args.seconds, seed=args.seed, out_dir=args.out, log=log,
                         engines=args.engines)
        failures = stats["bugs"]
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats["outcomes"].items()))
        summary = (f"{stats['mutants']} mutants on {', '.join(stats['engines'])} (seed "
                   f"{stats['seed']}): {stats['bugs']} bugs; outcomes: {outcomes}")
    print(json.dumps(stats) if args.json else summary)
    if failures:
        print(f"failing inputs saved under {args.out}", file=sys.stderr)
    return 1 if failures else 0
