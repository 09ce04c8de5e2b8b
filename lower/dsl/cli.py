"""`deadeye rules check|show|coverage|test`: the rule language's command line (registered
by `deadeye/cli.py`).

A folder holding no rule file itself but subfolders of them (such as the shipped
`rules/`, with `opts/` and `lower/`) is one rule *program per subfolder*: the mid-end and
the lowering rules have separate vocabularies. `coverage` and `test` work on the rule
sets the application registers (`coverage.RULE_SETS`: "opts", "lower")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deadeye.lower.dsl.errors import RuleError
from deadeye.lower.dsl.runtime import check_sources, compile_sources, read_sources, term_source

DEFAULT_CORPUS = ("tests/spec", "tests/sightglass")


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
    c = sub.add_parser("coverage", help="compile a corpus and list the rules that never fired")
    c.add_argument("corpus", nargs="*", metavar="PATH",
                   help=".wasm files, .wast scripts or folders of them (default: "
                        + " and ".join(DEFAULT_CORPUS) + ")")
    c.add_argument("--rules", dest="rule_sets", default="all", metavar="SET",
                   help="rule set(s): opts, lower or all (default: all)")
    c.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use at most N modules of the corpus")
    c.add_argument("--all", dest="show_all", action="store_true",
                   help="also list how often each rule fired")
    c.add_argument("--fail-unfired", action="store_true",
                   help="exit 1 when some rule never fired")
    t = sub.add_parser("test", help="property-test every rule: random instances of its "
                                    "left-hand side must evaluate like its right-hand side")
    t.add_argument("files", nargs="*", metavar="FILE",
                   help="test only the rules of these .isle files (default: all)")
    t.add_argument("--rules", dest="rule_sets", default="opts", metavar="SET",
                   help="rule set whose rules to test (default: opts)")
    t.add_argument("--examples", type=int, default=100, metavar="N",
                   help="hypothesis examples per rule (default: 100)")
    t.add_argument("-v", "--verbose", action="store_true", help="a line per rule")


def rule_programs(paths) -> list[tuple[str, list]]:
    """(label, sources) per rule program under `paths`: a folder without rule files of its
    own but with subfolders holding them is one program per subfolder; everything else
    given together is one program."""
    together: list = []
    out: list[tuple[str, list]] = []
    for p in map(Path, paths):
        subs = sorted(d for d in p.iterdir() if d.is_dir() and any(d.rglob("*.isle"))) \
            if p.is_dir() else []
        if p.is_dir() and not any(p.glob("*.isle")) and len(subs) > 1:
            out += [(str(d), read_sources([d])) for d in subs]
        else:
            together.append(p)
    if together:
        out.insert(0, ("", read_sources(together)))
    return out


def run(args: argparse.Namespace) -> int:
    if args.rules_command == "coverage":
        return _coverage(args)
    if args.rules_command == "test":
        return _test(args)
    paths = args.paths or [shipped_rules_dir()]
    if args.rules_command == "check":
        programs = [(label, src) for label, src in rule_programs(paths) if src]
        if not programs:
            print(f"no rule files in {', '.join(map(str, paths))}")
            return 0
        status = 0
        for label, sources in programs:
            status = max(status, _check(label if len(programs) > 1 else "", sources))
            if status == 0 and _is_shipped_lowering(label or paths[0]):
                status = max(status, _lowering_coverage())
        return status
    # show: the term's matcher from whichever rule program defines it
    programs = [src for _, src in rule_programs(paths) if src]
    if not programs:
        print(f"error: no rule files in {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    for sources in programs:
        try:
            gen = compile_sources(sources)
        except RuleError as e:
            for d in e.diagnostics:
                print(d)
            print(f"{len(e.diagnostics)} error(s)", file=sys.stderr)
            return 1
        if args.term in gen.term_sources:
            print(term_source(gen.source, args.term), end="")
            return 0
    print(f"error: no rules define term {args.term}", file=sys.stderr)
    return 1


def _is_shipped_lowering(path) -> bool:
    try:
        return Path(path).resolve() == (shipped_rules_dir() / "lower").resolve()
    except OSError:
        return False


def _lowering_coverage() -> int:
    """The shipped lowering rules must cover every (IR opcode, type) pair."""
    try:
        from deadeye.lower.coverage import report
    except ImportError:
        return 0  # the lowering is not installed: nothing to cover
    ok, text = report()
    print(text)
    return 0 if ok else 1


def _check(label: str, sources: list) -> int:
    prefix = f"{label}: " if label else ""
    try:
        checked = check_sources(sources)
    except RuleError as e:
        for d in e.diagnostics:
            print(d)
        print(f"{prefix}{len(e.diagnostics)} error(s)", file=sys.stderr)
        return 1
    suffix = f" in {label}" if label else ""
    print(f"ok: {len(sources)} file(s), {len(checked.types)} type(s), "
          f"{len(checked.terms)} term(s), {len(checked.rules)} rule(s){suffix}")
    return 0


def _selected(spec: str) -> list:
    from deadeye.lower.dsl.coverage import RULE_SETS

    names = sorted(RULE_SETS) if spec == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in RULE_SETS]
    if unknown or not names:
        known = ", ".join(sorted(RULE_SETS)) or "none registered"
        raise ValueError(f"unknown rule set {', '.join(unknown) or spec!r} (known: {known})")
    return [RULE_SETS[n] for n in names]


def _coverage(args: argparse.Namespace) -> int:
    from deadeye.lower.dsl.coverage import CoverageReport, merge_counts

    try:
        specs = _selected(args.rule_sets)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    corpus = args.corpus or [p for p in DEFAULT_CORPUS if Path(p).exists()]
    if not corpus:
        print("error: no corpus given and none of " + ", ".join(DEFAULT_CORPUS) + " exists",
              file=sys.stderr)
        return 2
    status = 0
    for spec in specs:
        why = spec.available()
        if why is not None:
            print(f"{spec.name}: not available: {why}")
            continue
        errors: list[str] = []
        try:
            items, rulesets = spec.run_corpus(corpus, args.limit, errors.append)
        except (OSError, RuleError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        report = CoverageReport(spec.name, merge_counts(rulesets), items, errors)
        print(report.render(args.show_all))
        if args.fail_unfired and report.never_fired:
            status = 1
    return status


def _test(args: argparse.Namespace) -> int:
    from deadeye.lower.dsl.ruletest import test_rules

    try:
        specs = _selected(args.rule_sets)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    status = 0
    for spec in specs:
        if spec.test_domain is None:
            print(f"{spec.name}: no property-test domain for these rules")
            continue
        try:
            prog, rs, domain = spec.test_domain()
        except RuleError as e:
            for d in e.diagnostics:
                print(d)
            return 1

        def progress(r, verbose=args.verbose):
            if verbose or not r.ok:
                print(r.line())
                sys.stdout.flush()

        report = test_rules(prog, rs, domain, files=args.files or None,
                            max_examples=args.examples, progress=progress)
        if args.files and not report.rules:
            print(f"error: no rules of {domain.term} in {', '.join(args.files)}", file=sys.stderr)
            return 1
        print(f"{spec.name}: {report.summary()}")
        if report.failed:
            status = 1
    return status
