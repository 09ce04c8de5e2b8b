"""The syntax tree of rule files. Every node records its `pos` (file:line:col).

Patterns (left-hand sides, `if-let` patterns): `PWild` `_`, `PVar` x, `PBind` x @ pat,
`PInt` 42, `PEnum` Type.Variant, `PTerm` (term pat...) which applies the term's extractor.
Expressions (right-hand sides, guard expressions): `EVar`, `EInt`, `EEnum`, `ECall`
(term expr...) which applies the term's constructor or runs the term's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deadeye.lower.dsl.errors import Pos


@dataclass(frozen=True)
class TypeDef:
    name: str
    kind: str  # "primitive" | "enum"
    py: str | None  # the Python type named by a primitive
    variants: tuple[str, ...]
    pos: Pos


@dataclass(frozen=True)
class Decl:
    name: str
    arg_types: tuple[str, ...]
    ret_type: str
    pos: Pos
    arg_pos: tuple[Pos, ...] = ()
    ret_pos: Pos | None = None


@dataclass(frozen=True)
class Extern:
    kind: str  # "extractor" | "constructor"
    term: str
    py_name: str
    pos: Pos


@dataclass(frozen=True)
class Disjoint:
    terms: tuple[str, ...]
    pos: Pos
    term_pos: tuple[Pos, ...] = ()


# -- patterns -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PWild:
    pos: Pos


@dataclass(frozen=True)
class PVar:
    name: str
    pos: Pos


@dataclass(frozen=True)
class PBind:
    name: str
    pat: "Pattern"
    pos: Pos


@dataclass(frozen=True)
class PInt:
    value: int
    pos: Pos


@dataclass(frozen=True)
class PEnum:
    type: str
    variant: str
    pos: Pos


@dataclass(frozen=True)
class PTerm:
    term: str
    args: tuple["Pattern", ...]
    pos: Pos


Pattern = PWild | PVar | PBind | PInt | PEnum | PTerm


# -- expressions --------------------------------------------------------------------------

@dataclass(frozen=True)
class EVar:
    name: str
    pos: Pos


@dataclass(frozen=True)
class EInt:
    value: int
    pos: Pos


@dataclass(frozen=True)
class EEnum:
    type: str
    variant: str
    pos: Pos


@dataclass(frozen=True)
class ECall:
    term: str
    args: tuple["Expr", ...]
    pos: Pos


Expr = EVar | EInt | EEnum | ECall


@dataclass(frozen=True)
class IfLet:
    pat: Pattern
    expr: Expr
    pos: Pos


@dataclass(frozen=True)
class If:
    expr: Expr
    pos: Pos


Guard = IfLet | If


@dataclass(frozen=True)
class Rule:
    priority: int
    lhs: PTerm  # (term arg-patterns...): `term` is the term these rules define
    guards: tuple[Guard, ...]
    rhs: Expr
    pos: Pos
    text: str  # the rule's left-hand side as written, for comments and reports

    @property
    def term(self) -> str:
        return self.lhs.term


@dataclass
class Program:
    """All forms of several files; names are shared across files."""

    files: list[str] = field(default_factory=list)
    types: list[TypeDef] = field(default_factory=list)
    decls: list[Decl] = field(default_factory=list)
    externs: list[Extern] = field(default_factory=list)
    disjoints: list[Disjoint] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    def extend(self, other: "Program") -> None:
        for name in ("files", "types", "decls", "externs", "disjoints", "rules"):
            getattr(self, name).extend(getattr(other, name))
