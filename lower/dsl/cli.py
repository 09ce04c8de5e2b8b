"""`deadeye rules check|show`: the rule language's command line (registered by
`deadeye/cli.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deadeye.lower.dsl.errors import RuleError
from deadeye.lower.dsl.runtime import check_sources, compile_sources, read_sources, term_source


def shipped_rules_dir() -> Path:
    import deadeye.rules

    return Path(deadeye.rules.__file__).parent


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    c = sub.add_parser("check", help="parse, type-check and overlap-check rule files")
    c.add_argument("paths", nargs="*", metavar="PATH",
                   help=".isle files or folders of them (default: the shipped rules)")
    s = sub.add_parser("show", help="print the generated matcher of a term")
    s.add_argument("term", metavar="TERM")
    s.add_argument("paths", nargs="*", metavar="PATH",
                   help=".isle files or folders of them (default: the shipped rules)")


def run(args: argparse.Namespace) -> int:
    paths = args.paths or [shipped_rules_dir()]
    sources = read_sources(paths)
    if not sources:
        if args.rules_command == "check":
            print(f"no rule files in {', '.join(map(str, paths))}")
            return 0
        print(f"error: no rule files in {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    try:
        if args.rules_command == "check":
            checked = check_sources(sources)
            print(f"ok: {len(sources)} file(s), {len(checked.types)} type(s), "
                  f"{len(checked.terms)} term(s), {len(checked.rules)} rule(s)")
            return 0
        gen = compile_sources(sources)
    except RuleError as e:
        for d in e.diagnostics:
            print(d)
        print(f"{len(e.diagnostics)} error(s)", file=sys.stderr)
        return 1
    if args.term not in gen.term_sources:
        print(f"error: no rules define term {args.term}", file=sys.stderr)
        return 1
    print(term_source(gen.source, args.term), end="")
    return 0
