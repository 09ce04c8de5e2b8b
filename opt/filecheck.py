"""A FileCheck subset for filetests (in the style of Cranelift's `filecheck`).

Directives are comment lines `; KIND: PATTERN` with KIND one of
  check:   the pattern matches at or after the end of the previous match;
  nextln:  the pattern matches on the line right after the previous match's line;
  sameln:  the pattern matches on the previous match's line, after it;
  not:     the pattern does not match between the previous match and the next positive
           match (or the end of the output).
A pattern is literal text (runs of blanks match any run of blanks) with variables:
`$(name=REGEX)` matches REGEX and binds `name`; `$name` or `$(name)` matches the text
bound earlier (in this pattern or a previous one); `$$` is a literal `$`. A match never
spans lines.

`check(text, directives)` raises `CheckFailure` whose message says which directive
failed, why, and shows the output with line numbers and a marker where the search began.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("check", "nextln", "sameln", "not")
_DIRECTIVE = re.compile(r"^\s*;+\s*(check|nextln|sameln|not)\s*:(.*)$")
_VAR = re.compile(r"\$\$|\$\((\w+)=((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*)\)|\$\((\w+)\)|\$(\w+)")


class CheckFailure(AssertionError):
    pass


@dataclass
class Directive:
    kind: str
    pattern: str
    line: int  # 1-based line in the test file


def parse_directives(text: str) -> list[Directive]:
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        m = _DIRECTIVE.match(line)
        if m:
            out.append(Directive(m.group(1), m.group(2).strip(), no))
    return out


def _literal(s: str) -> str:
    return "".join(r"[ \t]+" if part.isspace() else re.escape(part)
                   for part in re.split(r"([ \t]+)", s) if part)


def _compile(d: Directive, variables: dict[str, str]):
    """A compiled regex and the {group: variable} it binds."""
    parts, binds, local = [], {}, {}
    pos = 0
    for m in _VAR.finditer(d.pattern):
        parts.append(_literal(d.pattern[pos:m.start()]))
        pos = m.end()
        if m.group(0) == "$$":
            parts.append(r"\$")
        elif m.group(1):
            name, regex = m.group(1), m.group(2)
            try:
                re.compile(regex)
            except re.error as e:
                raise CheckFailure(f"line {d.line}: bad regex for ${name}: {e}") from None
            group = f"g{len(binds)}"
            binds[group] = name
            local[name] = group
            parts.append(f"(?P<{group}>{regex})")
        else:
            name = m.group(3) or m.group(4)
            if name in local:
                parts.append(f"(?P={local[name]})")
            elif name in variables:
                parts.append(re.escape(variables[name]))
            else:
                raise CheckFailure(f"line {d.line}: `{d.kind}: {d.pattern}` uses ${name}, "
                                   "which no earlier directive defined")
    parts.append(_literal(d.pattern[pos:]))
    return re.compile("".join(parts)), binds


def _show(text: str, at: int, note: str) -> str:
    lines = text.splitlines()
    mark_line = text.count("\n", 0, at)
    out = []
    for i, line in enumerate(lines):
        out.append(f"{'>' if i == mark_line else ' '} {i + 1:4} | {line}")
    return f"{note}\noutput (> marks where the search started):\n" + "\n".join(out)


def _line_bounds(text: str, pos: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, (len(text) if end < 0 else end)


def check(text: str, directives: list[Directive]) -> None:
    """Match `directives` against `text`; raise CheckFailure on the first failure."""
    variables: dict[str, str] = {}
    pos = 0  # end of the previous positive match
    last_start = 0  # start of the previous positive match (its line is "the" line)
    pending_not: list[Directive] = []

    def search(regex, lo, hi):
        # A match never spans lines: search each line of [lo, hi) separately.
        while lo <= hi:
            _, line_end = _line_bounds(text, lo)
            m = regex.search(text, lo, min(line_end, hi))
            if m:
                return m
            if line_end >= hi:
                return None
            lo = line_end + 1
        return None

    def check_nots(lo, hi):
        for d in pending_not:
            regex, _ = _compile(d, variables)
            m = search(regex, lo, hi)
            if m:
                raise CheckFailure(_show(text, m.start(),
                                         f"line {d.line}: `not: {d.pattern}` matched "
                                         f"{m.group(0)!r} on output line "
                                         f"{text.count(chr(10), 0, m.start()) + 1}"))
        pending_not.clear()

    for d in directives:
        if d.kind == "not":
            pending_not.append(d)
            continue
        regex, binds = _compile(d, variables)
        if d.kind == "check":
            m = search(regex, pos, len(text))
            why = "no match at or after the previous match"
        elif d.kind == "sameln":
            _, end = _line_bounds(text, last_start)
            m = regex.search(text, pos, end)
            why = "no match on the same line after the previous match"
        else:  # nextln
            _, end = _line_bounds(text, last_start)
            if end >= len(text):
                m, why = None, "the previous match is on the last line"
            else:
                lo, hi = _line_bounds(text, end + 1)
                m = regex.search(text, lo, hi)
                why = "no match on the next line"
        if m is None:
            raise CheckFailure(_show(text, pos, f"line {d.line}: `{d.kind}: {d.pattern}` "
                                                f"failed: {why}"
                                     + (f" (variables: {variables})" if variables else "")))
        check_nots(pos, m.start())
        for group, name in binds.items():
            variables[name] = m.group(group)
        pos, last_start = m.end(), m.start()
    check_nots(pos, len(text))
