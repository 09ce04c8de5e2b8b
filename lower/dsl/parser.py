"""Rule files → `ast.Program`, with the lark grammar in `grammar.lark`."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import lark

from deadeye.lower.dsl import ast as A
from deadeye.lower.dsl.errors import Collector, Diagnostic, Pos, RuleError

_TERMINAL_NAMES = {
    "NAME": "a name", "QUALNAME": "Type.Variant", "INT": "an integer",
    "EXTERN_KIND": "extractor or constructor", "LPAR": "'('", "RPAR": "')'",
    "$END": "end of file",
}


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


@lru_cache(maxsize=1)
def _display() -> dict[str, str]:
    out = {}
    for t in _parser().terminals:
        if isinstance(t.pattern, lark.lexer.PatternStr):
            out[t.name] = repr(t.pattern.value)
        elif t.name.startswith("_") and t.name[1:].isupper():  # a keyword: _IF_LET is if-let
            out[t.name] = repr(t.name[1:].lower().replace("_", "-"))
        else:
            out[t.name] = _TERMINAL_NAMES.get(t.name, t.name)
    return {**out, "$END": "end of file"}


def parse_text(text: str, file: str = "<string>") -> A.Program:
    """Parse one file's text; raise `RuleError` citing file:line:col on a syntax error."""
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise RuleError([_syntax_diag(e, text, file)]) from None
    try:
        return _Builder(file, text).program(tree)
    except RecursionError:
        raise RuleError([Diagnostic(Pos(file, 1, 1), "forms are nested too deeply")]) from None


def _syntax_diag(e: lark.exceptions.UnexpectedInput, text: str, file: str) -> Diagnostic:
    line, col = getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1
    expected = getattr(e, "expected", None) or getattr(e, "allowed", None) or ()
    token = getattr(e, "token", None)
    if isinstance(e, lark.exceptions.UnexpectedEOF) or (token is not None and token.type == "$END"):
        got = "end of file"
        line = text.count("\n") + 1
        col = len(text) - (text.rfind("\n") + 1) + 1
    elif token is not None:
        got = repr(str(token))
    else:
        pos = e.pos_in_stream or 0
        got = repr(text[pos:pos + 1])
    names = sorted({_display().get(t, t) for t in expected})
    hint = f" (expected {', '.join(names[:8])})" if names else ""
    return Diagnostic(Pos(file, line, col), f"syntax error: unexpected {got}{hint}")


def parse_int(s: str) -> int:
    neg = s.startswith("-")
    body = s[1:] if neg else s
    v = int(body.replace("_", ""), 0) if body[:2].lower() in ("0x", "0b") else int(body.replace("_", ""))
    return -v if neg else v


class _Builder:
    def __init__(self, file: str, text: str):
        self.file = file
        self.text = text
        self.errors = Collector()

    def pos(self, node) -> Pos:
        if isinstance(node, lark.Token):
            return Pos(self.file, node.line, node.column)
        return Pos(self.file, node.meta.line, node.meta.column)

    def program(self, tree: lark.Tree) -> A.Program:
        prog = A.Program(files=[self.file])
        for form in tree.children:
            getattr(self, "f_" + form.data)(form, prog)
        self.errors.raise_if_any()
        return prog

    def f_type_def(self, t, prog):
        name, body = t.children
        if body.data == "primitive":
            prog.types.append(A.TypeDef(str(name), "primitive", self._py(body.children[0]), (), self.pos(t)))
        else:
            variants = [str(v) for v in body.children]
            seen = set()
            for tok in body.children:
                if str(tok) in seen:
                    self.errors.error(self.pos(tok), f"enum variant {tok} listed twice")
                seen.add(str(tok))
            prog.types.append(A.TypeDef(str(name), "enum", None, tuple(variants), self.pos(t)))

    def _py(self, t) -> str:
        return str(t.children[0])

    def f_decl(self, t, prog):
        name, *args, ret = t.children
        prog.decls.append(A.Decl(str(name), tuple(map(str, args)), str(ret), self.pos(t),
                                 tuple(self.pos(a) for a in args), self.pos(ret)))

    def f_extern(self, t, prog):
        kind, term, py = t.children
        prog.externs.append(A.Extern(str(kind), str(term), self._py(py), self.pos(t)))

    def f_disjoint(self, t, prog):
        prog.disjoints.append(A.Disjoint(tuple(map(str, t.children)), self.pos(t),
                                         tuple(self.pos(c) for c in t.children)))

    def f_rule(self, t, prog):
        prio, lhs, *rest = t.children
        *guards, rhs = rest
        head, *args = lhs.children
        lhs_node = A.PTerm(str(head), tuple(self.pattern(a) for a in args), self.pos(lhs))
        text = " ".join(self.text[lhs.meta.start_pos:lhs.meta.end_pos].split())
        prog.rules.append(A.Rule(
            parse_int(str(prio)) if prio is not None else 0, lhs_node,
            tuple(self.guard(g) for g in guards), self.expr(rhs), self.pos(t), text))

    def guard(self, g) -> A.Guard:
        if g.data == "if_let":
            return A.IfLet(self.pattern(g.children[0]), self.expr(g.children[1]), self.pos(g))
        return A.If(self.expr(g.children[0]), self.pos(g))

    def pattern(self, p) -> A.Pattern:
        kind, kids, pos = p.data, p.children, self.pos(p)
        if kind == "p_wild":
            return A.PWild(pos)
        if kind == "p_var":
            return A.PVar(str(kids[0]), pos)
        if kind == "p_bind":
            return A.PBind(str(kids[0]), self.pattern(kids[1]), pos)
        if kind == "p_int":
            return A.PInt(parse_int(str(kids[0])), pos)
        if kind == "p_enum":
            return A.PEnum(*self._qual(kids[0]), pos)
        return A.PTerm(str(kids[0]), tuple(self.pattern(k) for k in kids[1:]), pos)

    def expr(self, e) -> A.Expr:
        kind, kids, pos = e.data, e.children, self.pos(e)
        if kind == "e_var":
            return A.EVar(str(kids[0]), pos)
        if kind == "e_int":
            return A.EInt(parse_int(str(kids[0])), pos)
        if kind == "e_enum":
            return A.EEnum(*self._qual(kids[0]), pos)
        return A.ECall(str(kids[0]), tuple(self.expr(k) for k in kids[1:]), pos)

    def _qual(self, tok) -> tuple[str, str]:
        s = str(tok)
        if s.count(".") != 1:
            self.errors.error(self.pos(tok), f"enum literal {s} must be Type.Variant")
        ty, _, variant = s.rpartition(".")
        return ty, variant


def find_rule_files(paths) -> list[tuple[str, Path]]:
    """Expand files and directories (recursively, `*.isle`, sorted) into (display name,
    path) pairs, in the order given. Missing paths raise OSError."""
    out: list[tuple[str, Path]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(p.rglob("*.isle")):
                out.append((os.path.join(str(p), str(f.relative_to(p))), f))
        elif p.exists():
            out.append((str(p), p))
        else:
            raise FileNotFoundError(2, "No such file or directory", str(p))
    return out


def parse_sources(sources: list[tuple[str, str]]) -> A.Program:
    """Parse several (name, text) files into one program, reporting errors of all files."""
    prog = A.Program()
    diags: list[Diagnostic] = []
    for name, text in sources:
        try:
            prog.extend(parse_text(text, name))
        except RuleError as e:
            diags.extend(e.diagnostics)
    if diags:
        raise RuleError(diags)
    return prog
