"""Cranelift-style filetests: every `tests/filetests/**/*.clif` file is one test.

A file holds a `test optimize` line (optionally `O0`/`O1`/`O2`, default O2, or a
comma-separated pass list such as `test optimize dce,gvn`), IR in the text form (module
facts may precede the functions), and `; check:` / `; nextln:` / `; sameln:` / `; not:`
lines matched (see `deadeye.opt.filecheck`) against the printed optimized functions.
The IR verifier runs between passes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deadeye.ir.text import parse_module, print_function
from deadeye.opt import optimize
from deadeye.opt.filecheck import check, parse_directives

ROOT = Path(__file__).parent / "filetests"
FILES = sorted(ROOT.rglob("*.clif"))
_TEST_LINE = re.compile(r"^\s*test\s+(\w+)(?:\s+(\S+))?\s*$")


def run_filetest(text: str) -> str:
    """Run one filetest's commands; return the printed output (checks not applied)."""
    commands, body = [], []
    for line in text.splitlines():
        m = _TEST_LINE.match(line)
        if m:
            commands.append((m.group(1), m.group(2)))
            body.append("")  # keep line numbers for parse errors
        else:
            body.append(line)
    if not commands:
        raise AssertionError("no `test` line")
    module = parse_module("\n".join(body))
    if not module.functions:
        raise AssertionError("no function to test")
    for kind, arg in commands:
        if kind != "optimize":
            raise AssertionError(f"unknown test command {kind!r}")
        for func in module.functions:
            if arg is None or re.fullmatch(r"O[012]", arg):
                optimize(func, int(arg[1]) if arg else 2, env=module, verify=True)
            else:
                optimize(func, env=module, passes=arg, verify=True)
    return "".join(print_function(f) for f in module.functions)


def test_there_are_enough_filetests():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_filetest(path):
    text = path.read_text()
    directives = parse_directives(text)
    assert directives, f"{path}: no check directives"
    output = run_filetest(text)
    check(output, directives)
