"""A tiny extractor of the module-level assertions in the vendored spec scripts, for the
frontend's tests (the full .wast runner lives in deadeye/wast.py): top-level forms are
found with a balanced-paren scan that knows strings and comments."""

from __future__ import annotations

import re
from pathlib import Path

SPEC = Path(__file__).parent / "spec"


def _skip_ws(s: str, i: int) -> int:
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\r\n":
            i += 1
        elif s.startswith(";;", i):
            j = s.find("\n", i)
            i = n if j < 0 else j + 1
        elif s.startswith("(;", i):
            depth = 0
            while i < n:
                if s.startswith("(;", i):
                    depth += 1
                    i += 2
                elif s.startswith(";)", i):
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    i += 1
        else:
            break
    return i


def _end_of_string(s: str, i: int) -> int:
    """`s[i]` is the opening quote; returns the index after the closing one."""
    i += 1
    while s[i] != '"':
        i += 2 if s[i] == "\\" else 1
    return i + 1


_INTERESTING = re.compile(r'"(?:[^"\\]|\\.)*"|;;[^\n]*|\(;|[()]')


def _end_of_form(s: str, i: int) -> int:
    """`s[i]` is '('; returns the index after the matching ')'."""
    depth = 0
    while True:
        m = _INTERESTING.search(s, i)
        if m is None:
            raise ValueError("unbalanced form")
        tok = m.group()
        i = m.end()
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
            if depth == 0:
                return i
        elif tok == "(;":
            i = _skip_ws(s, m.start())


def top_forms(text: str):
    """Yield (line, form_text) for every top-level form."""
    i = 0
    line, counted = 1, 0
    while True:
        i = _skip_ws(text, i)
        if i >= len(text):
            return
        j = _end_of_form(text, i)
        line += text.count("\n", counted, i)
        counted = i
        yield line, text[i:j]
        i = j


def children(form: str) -> list[str]:
    """The direct sub-forms and atoms of `form` (strings keep their quotes)."""
    out = []
    i = 1
    n = len(form) - 1
    while True:
        i = _skip_ws(form, i)
        if i >= n:
            return out
        c = form[i]
        if c == "(":
            j = _end_of_form(form, i)
        elif c == '"':
            j = _end_of_string(form, i)
        else:
            j = i
            while j < n and form[j] not in ' \t\r\n()";':
                j += 1
        out.append(form[i:j])
        i = j


_ESC = {"n": 10, "t": 9, "r": 13, '"': 34, "'": 39, "\\": 92}


def string_bytes(lit: str) -> bytes:
    """Decode a wast string literal (with its quotes) to bytes."""
    body = lit[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESC:
            out.append(_ESC[nxt])
            i += 2
        elif nxt == "u":
            j = body.index("}", i)
            out += chr(int(body[i + 3 : j].replace("_", ""), 16)).encode("utf-8")
            i = j + 1
        else:
            out.append(int(body[i + 1 : i + 3], 16))
            i += 3
    return bytes(out)


def module_payload(module_form: str):
    """("binary", bytes) | ("quote", None) | ("text", wat source) for a module form."""
    parts = children(module_form)
    rest = parts[1:]
    if rest and rest[0].startswith("$"):
        rest = rest[1:]
    if rest and rest[0] == "binary":
        return "binary", b"".join(string_bytes(p) for p in rest[1:])
    if rest and rest[0] == "quote":
        return "quote", None
    return "text", module_form


def assertions(path: Path, kind: str):
    """Yield (line, module kind, payload, message) for each `(kind (module ...) "msg")`."""
    text = path.read_text(encoding="utf-8")
    # Jump straight to the assertions (a full scan of the big SIMD scripts is slow);
    # occurrences inside line comments are skipped.
    for hit in re.finditer(r"\(\s*" + kind + r"\b", text):
        line_start = text.rfind("\n", 0, hit.start()) + 1
        if ";;" in text[line_start : hit.start()]:
            continue
        form = text[hit.start() : _end_of_form(text, hit.start())]
        line = text.count("\n", 0, hit.start()) + 1
        parts = children(form)
        if len(parts) < 3 or not parts[1].startswith("(module"):
            continue
        mkind, payload = module_payload(parts[1])
        yield line, mkind, payload, string_bytes(parts[2]).decode("utf-8")


def spec_files(*patterns: str) -> list[Path]:
    out = []
    for p in patterns:
        out.extend(sorted(SPEC.glob(p)))
    return out
