"""A reader for the S-expressions of the WebAssembly text format and its `.wast` scripts.

`read(text, filename)` turns source text into a list of nodes:
- `Atom`: a keyword, identifier (`$x`), number or other bare token; `.text` is its spelling;
- `Str`: a string literal; `.value` holds its bytes (escapes decoded: a string may carry raw
  bytes, as `(module binary "...")` does), `.text()` decodes them as UTF-8;
- `SList`: a parenthesised list; `.items` are its nodes.
Every node records `line` (1-based) and `start`/`end` (character offsets into the source),
so callers can cite `file:line` and take the exact source slice of a form.

Comments (`;; ...` to the end of the line and nestable `(; ... ;)` blocks) are skipped.
Malformed input raises `DecodeError` whose message starts with `file:line:`."""

from __future__ import annotations

import re

from deadeye.ir.errors import DecodeError

__all__ = ["Atom", "Str", "SList", "Node", "read", "syntax_error"]


class Atom:
    __slots__ = ("text", "line", "start", "end")

    def __init__(self, text: str, line: int, start: int, end: int):
        self.text = text
        self.line = line
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"Atom({self.text!r})"


class Str:
    __slots__ = ("value", "line", "start", "end")

    def __init__(self, value: bytes, line: int, start: int, end: int):
        self.value = value
        self.line = line
        self.start = start
        self.end = end

    def text(self) -> str:
        """The string as UTF-8 text (names, messages); invalid UTF-8 is an error."""
        return self.value.decode("utf-8")

    def __repr__(self) -> str:
        return f"Str({self.value!r})"


class SList:
    __slots__ = ("items", "line", "start", "end")

    def __init__(self, items: list, line: int, start: int, end: int):
        self.items = items
        self.line = line
        self.start = start
        self.end = end

    def head(self) -> str | None:
        """The first item's text when it is an atom (the form's keyword), else None."""
        if self.items and type(self.items[0]) is Atom:
            return self.items[0].text
        return None

    def __repr__(self) -> str:
        return f"SList({self.items!r})"


Node = Atom | Str | SList


def syntax_error(filename: str, line: int, message: str) -> DecodeError:
    return DecodeError(f"{filename}:{line}: {message}")


# One token per match; block comments are handled by hand because they nest.
_TOKEN = re.compile(
    r"""
     (?P<ws>[ \t\r\n]+)
    |(?P<lc>;;[^\n]*)
    |(?P<bc>\(;)
    |(?P<lp>\()
    |(?P<rp>\))
    |(?P<str>"(?:[^"\\\n]|\\[^\n])*")
    |(?P<atom>[^\s()";]+)
    """,
    re.VERBOSE,
)
_BLOCK = re.compile(r"\(;|;\)")
_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{2})|u\{([0-9a-fA-F](?:_?[0-9a-fA-F])*)\}|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"t": b"\t", "n": b"\n", "r": b"\r", '"': b'"', "'": b"'", "\\": b"\\"}


def _decode_string(body: str, filename: str, line: int) -> bytes:
    """Decode the inside of a string literal (without quotes) to bytes."""
    if "\\" not in body:
        return body.encode("utf-8")
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(body):
        out += body[pos : m.start()].encode("utf-8")
        pos = m.end()
        hexbyte, uni, simple = m.groups()
        if hexbyte is not None:
            out.append(int(hexbyte, 16))
        elif uni is not None:
            cp = int(uni.replace("_", ""), 16)
            if cp >= 0x110000 or 0xD800 <= cp < 0xE000:
                raise syntax_error(filename, line, f"invalid unicode escape \\u{{{uni}}}")
            out += chr(cp).encode("utf-8")
        elif simple in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[simple]
        else:
            raise syntax_error(filename, line, f"invalid escape \\{simple} in string")
    out += body[pos:].encode("utf-8")
    return bytes(out)


def read(text: str, filename: str = "<input>") -> list[Node]:
    """Read every top-level node of `text`."""
    top: list = []
    stack: list[tuple[list, int, int]] = []  # (items, line, start) of each open list
    items = top
    line = 1
    pos = 0
    n = len(text)
    match = _TOKEN.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            ch = text[pos]
            if ch == '"':
                raise syntax_error(filename, line, "unterminated string")
            raise syntax_error(filename, line, f"unexpected character {ch!r}")
        kind = m.lastgroup
        end = m.end()
        if kind == "atom":
            items.append(Atom(m.group(), line, pos, end))
        elif kind == "ws":
            line += text.count("\n", pos, end)
        elif kind == "lp":
            stack.append((items, line, pos))
            items = []
        elif kind == "rp":
            if not stack:
                raise syntax_error(filename, line, "unexpected ')'")
            outer, open_line, open_pos = stack.pop()
            outer.append(SList(items, open_line, open_pos, end))
            items = outer
        elif kind == "str":
            items.append(Str(_decode_string(text[pos + 1 : end - 1], filename, line), line, pos, end))
        elif kind == "lc":
            pass
        else:  # block comment: find the matching ';)' counting nested '(;'
            depth = 1
            scan = end
            start_line = line
            while depth:
                b = _BLOCK.search(text, scan)
                if b is None:
                    raise syntax_error(filename, start_line, "unterminated block comment")
                depth += 1 if b.group() == "(;" else -1
                scan = b.end()
            end = scan
            line += text.count("\n", pos, end)
        pos = end
    if stack:
        raise syntax_error(filename, stack[-1][1], "unclosed '('")
    return top
