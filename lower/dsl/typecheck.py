"""Name resolution and type checking of a parsed program.

Checks: types are declared once and exist where used; every term is declared once; an
extern names a declared term and binds each role (extractor, constructor) at most once;
every rule's left-hand side is `(term args...)` of a declared term with the right arity;
patterns only apply terms that have an extractor, expressions only terms that have a
constructor or rules; literals fit their types; variables are bound before use, and a
variable bound twice (an equality constraint) has one type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deadeye.lower.dsl import ast as A
from deadeye.lower.dsl.errors import Collector, Pos


@dataclass
class Term:
    name: str
    arg_types: tuple[str, ...]
    ret_type: str
    pos: Pos
    extractor: A.Extern | None = None
    constructor: A.Extern | None = None
    rules: list[A.Rule] = field(default_factory=list)

    @property
    def arity(self) -> int:
        return len(self.arg_types)


@dataclass
class CheckedProgram:
    program: A.Program
    types: dict[str, A.TypeDef]
    terms: dict[str, Term]
    disjoint: set[frozenset]  # pairs of extractor terms that never both succeed on one value

    def are_disjoint(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.disjoint

    @property
    def rules(self) -> list[A.Rule]:
        return self.program.rules


def _is_int_type(t: A.TypeDef) -> bool:
    return t.kind == "primitive" and t.py in ("int", "builtins.int")


class _Checker:
    def __init__(self, prog: A.Program):
        self.prog = prog
        self.errors = Collector()
        self.types: dict[str, A.TypeDef] = {}
        self.terms: dict[str, Term] = {}
        self.disjoint: set[frozenset] = set()
        self.ruled = {r.lhs.term for r in prog.rules}

    def err(self, pos: Pos, msg: str) -> None:
        self.errors.error(pos, msg)

    def run(self) -> CheckedProgram:
        for t in self.prog.types:
            if t.name in self.types:
                self.err(t.pos, f"type {t.name} is already defined at {self.types[t.name].pos}")
            else:
                self.types[t.name] = t
        for d in self.prog.decls:
            if d.name in self.terms:
                self.err(d.pos, f"term {d.name} is already declared at {self.terms[d.name].pos}")
                continue
            for ty, pos in zip((*d.arg_types, d.ret_type), (*d.arg_pos, d.ret_pos)):
                if ty not in self.types:
                    self.err(pos or d.pos, f"unknown type {ty}")
            # Registered even with a bad type, so that uses do not cascade into "unknown term".
            self.terms[d.name] = Term(d.name, d.arg_types, d.ret_type, d.pos)
        for x in self.prog.externs:
            term = self.terms.get(x.term)
            if term is None:
                self.err(x.pos, f"extern {x.kind} for undeclared term {x.term} (add a decl)")
                continue
            prev = getattr(term, x.kind)
            if prev is not None:
                self.err(x.pos, f"term {x.term} already has an extern {x.kind} at {prev.pos}")
            else:
                setattr(term, x.kind, x)
        for d in self.prog.disjoints:
            self.check_disjoint(d)
        for r in self.prog.rules:
            self.check_rule(r)
        for t in self.terms.values():
            if t.rules and t.constructor is not None:
                self.err(t.constructor.pos, f"term {t.name} has rules and an extern constructor; "
                         "it can have only one of them")
        self.errors.raise_if_any()
        return CheckedProgram(self.prog, self.types, self.terms, self.disjoint)

    def check_disjoint(self, d: A.Disjoint) -> None:
        if len(d.terms) < 2:
            self.err(d.pos, "disjoint needs at least two terms")
        ok = []
        for name, pos in zip(d.terms, d.term_pos or [d.pos] * len(d.terms)):
            t = self.terms.get(name)
            if t is None:
                self.err(pos, f"unknown term {name}")
            elif t.extractor is None:
                self.err(pos, f"term {name} has no extern extractor; only extractors can be disjoint")
            else:
                ok.append(t)
        for t in ok[1:]:
            if t.ret_type != ok[0].ret_type:
                self.err(d.pos, f"disjoint terms {ok[0].name} and {t.name} match different types "
                         f"({ok[0].ret_type} and {t.ret_type})")
        for i, a in enumerate(d.terms):
            for b in d.terms[i + 1:]:
                if a == b:
                    self.err(d.pos, f"term {a} listed twice in disjoint")
                self.disjoint.add(frozenset((a, b)))

    # -- rules --------------------------------------------------------------------------

    def check_rule(self, r: A.Rule) -> None:
        term = self.terms.get(r.lhs.term)
        if term is None:
            self.err(r.lhs.pos, f"unknown term {r.lhs.term}")
            return
        term.rules.append(r)
        scope: dict[str, str] = {}
        if len(r.lhs.args) != term.arity:
            self.err(r.lhs.pos, f"term {term.name} takes {term.arity} argument(s), "
                     f"the rule gives {len(r.lhs.args)}")
        for p, ty in zip(r.lhs.args, term.arg_types):
            self.pattern(p, ty, scope)
        for g in r.guards:
            if isinstance(g, A.IfLet):
                ty = self.expr(g.expr, None, scope)
                if ty is not None:
                    self.pattern(g.pat, ty, scope)
                else:  # still bind the names, so that later uses are not reported as unbound
                    self.pattern(g.pat, None, scope)
            else:
                self.expr(g.expr, None, scope)
        self.expr(r.rhs, term.ret_type, scope)

    def pattern(self, p: A.Pattern, ty: str | None, scope: dict[str, str | None]) -> None:
        if isinstance(p, A.PWild):
            return
        if isinstance(p, (A.PVar, A.PBind)):
            if p.name in scope:
                prev = scope[p.name]
                if prev is not None and ty is not None and prev != ty:
                    self.err(p.pos, f"variable {p.name} is bound twice with different types "
                             f"({prev} and {ty})")
            else:
                scope[p.name] = ty
            if isinstance(p, A.PBind):
                self.pattern(p.pat, ty, scope)
            return
        if isinstance(p, A.PInt):
            self.int_literal(p.pos, ty)
            return
        if isinstance(p, A.PEnum):
            self.enum_literal(p, ty)
            return
        term = self.terms.get(p.term)
        if term is None:
            self.err(p.pos, f"unknown term {p.term}")
            for a in p.args:
                self.pattern(a, None, scope)
            return
        if term.extractor is None:
            self.err(p.pos, f"term {p.term} has no extractor and cannot be used in a pattern "
                     f"(add (extern extractor {p.term} ...))")
        if ty is not None and term.ret_type != ty:
            self.err(p.pos, f"type mismatch: {p.term} matches {term.ret_type}, expected {ty}")
        if len(p.args) != term.arity:
            self.err(p.pos, f"term {p.term} takes {term.arity} argument(s), got {len(p.args)}")
        for i, a in enumerate(p.args):
            self.pattern(a, term.arg_types[i] if i < term.arity else None, scope)

    def expr(self, e: A.Expr, ty: str | None, scope: dict[str, str | None]) -> str | None:
        """Check `e` (against `ty` when given) and return its type (None if unknown)."""
        if isinstance(e, A.EVar):
            if e.name not in scope:
                self.err(e.pos, f"unbound variable {e.name}")
                return None
            got = scope[e.name]
        elif isinstance(e, A.EInt):
            if ty is None:
                self.err(e.pos, "cannot infer the type of this integer literal")
                return None
            self.int_literal(e.pos, ty)
            return ty
        elif isinstance(e, A.EEnum):
            self.enum_literal(e, ty)
            return e.type if e.type in self.types else None
        else:
            term = self.terms.get(e.term)
            if term is None:
                self.err(e.pos, f"unknown term {e.term}")
                for a in e.args:
                    self.expr(a, None, scope)
                return None
            if term.constructor is None and term.name not in self.ruled:
                self.err(e.pos, f"term {e.term} has no constructor or rules and cannot be used in "
                         f"an expression (add (extern constructor {e.term} ...))")
            if len(e.args) != term.arity:
                self.err(e.pos, f"term {e.term} takes {term.arity} argument(s), got {len(e.args)}")
            for i, a in enumerate(e.args):
                self.expr(a, term.arg_types[i] if i < term.arity else None, scope)
            got = term.ret_type
        if ty is not None and got is not None and got != ty:
            self.err(e.pos, f"type mismatch: expected {ty}, got {got}")
        return got

    def int_literal(self, pos: Pos, ty: str | None) -> None:
        if ty is None:
            return
        t = self.types.get(ty)
        if t is not None and not _is_int_type(t):
            self.err(pos, f"type mismatch: integer literal where {ty} is expected "
                     "(integer literals need a (primitive int) type)")

    def enum_literal(self, e, ty: str | None) -> None:
        t = self.types.get(e.type)
        if t is None:
            self.err(e.pos, f"unknown type {e.type}")
        elif t.kind != "enum":
            self.err(e.pos, f"type {e.type} is not an enum")
        elif e.variant not in t.variants:
            self.err(e.pos, f"enum {e.type} has no variant {e.variant}")
        elif ty is not None and ty != e.type:
            self.err(e.pos, f"type mismatch: expected {ty}, got {e.type}")


def typecheck(prog: A.Program) -> CheckedProgram:
    """Resolve names and check types; raise `RuleError` with every problem found."""
    return _Checker(prog).run()
