"""Compile each term's rules into a decision tree, emitted as readable Python source.

A rule becomes a sequence of *steps* over *slots* (the values the matcher has in hand):
`("arg", i)` is the term's i-th argument, `("sub", slot, term, j)` the j-th output of
term's extractor applied to slot, `("let", expr)` the value of an `if-let` expression.
Steps are, in pattern pre-order: `ext` (run an extractor, fail on None), `lit` (compare
with a literal), `eq` (a variable bound twice), then the guards `let` and `if`.

The rules of a term are ordered by priority (highest first; within one priority, where
rules are pairwise disjoint, sorted so that rules with common step prefixes are adjacent)
and folded into a tree: consecutive rules that start with the same step share it. Trying
the children of a node in order and returning at the first leaf is exactly "try the rules
in priority order", with each shared test done once.

Two functions are emitted per term: `match_T(rt, a0, ...)` returns `(rule_id, result)` for
the first rule that matches (or None), and `all_T(rt, out, a0, ...)` appends
`(rule_id, thunk)` for every rule that matches (chaos mode and coverage use it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deadeye.lower.dsl import ast as A
from deadeye.lower.dsl.errors import Collector
from deadeye.lower.dsl.overlap import DisjointnessOracle
from deadeye.lower.dsl.typecheck import CheckedProgram

COMPILER_VERSION = "1"

# CPython's tokenizer allows 100 indentation levels; keep a margin.
_MAX_INDENT = 90


@dataclass
class Leaf:
    rule_id: int
    rule: A.Rule
    rhs: tuple


@dataclass
class Branch:
    step: tuple
    children: list


def _expr_key(e: A.Expr, env: dict[str, tuple]) -> tuple:
    if isinstance(e, A.EVar):
        return ("var", env[e.name])
    if isinstance(e, A.EInt):
        return ("int", e.value)
    if isinstance(e, A.EEnum):
        return ("enum", e.type, e.variant)
    return ("call", e.term, tuple(_expr_key(a, env) for a in e.args))


def rule_steps(rule: A.Rule) -> tuple[list[tuple], tuple]:
    """The rule's steps and its right-hand side as an expression key."""
    env: dict[str, tuple] = {}
    steps: list[tuple] = []

    def pat(p: A.Pattern, slot: tuple) -> None:
        if isinstance(p, A.PWild):
            return
        if isinstance(p, (A.PVar, A.PBind)):
            if p.name in env:
                steps.append(("eq", env[p.name], slot))
            else:
                env[p.name] = slot
            if isinstance(p, A.PBind):
                pat(p.pat, slot)
        elif isinstance(p, A.PInt):
            steps.append(("lit", slot, ("int", p.value)))
        elif isinstance(p, A.PEnum):
            steps.append(("lit", slot, ("enum", p.type, p.variant)))
        else:
            steps.append(("ext", slot, p.term))
            for j, a in enumerate(p.args):
                pat(a, ("sub", slot, p.term, j))

    for i, a in enumerate(rule.lhs.args):
        pat(a, ("arg", i))
    for g in rule.guards:
        key = _expr_key(g.expr, env)
        if isinstance(g, A.IfLet):
            slot = ("let", key)
            steps.append(("let", slot, key))
            pat(g.pat, slot)
        else:
            steps.append(("if", key))
    return steps, _expr_key(rule.rhs, env)


def build_tree(items: list[tuple[list[tuple], Leaf]]) -> list:
    """Fold (steps, leaf) pairs, already in trial order, into shared-prefix nodes."""
    out: list = []
    i = 0
    while i < len(items):
        steps, leaf = items[i]
        if not steps:
            out.append(leaf)
            i += 1
            continue
        j = i + 1
        while j < len(items) and items[j][0] and items[j][0][0] == steps[0]:
            j += 1
        out.append(Branch(steps[0], build_tree([(s[1:], lf) for s, lf in items[i:j]])))
        i = j
    return out


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


@dataclass
class Generated:
    source: str  # the whole module
    term_sources: dict[str, str]  # term -> the source of its two functions


class _Names:
    """Unique Python identifiers for terms' host functions and enum values."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.by_key: dict[tuple, str] = {}

    def get(self, key: tuple, base: str) -> str:
        if key not in self.by_key:
            name, n = base, 1
            while name in self.used:
                n += 1
                name = f"{base}_{n}"
            self.used.add(name)
            self.by_key[key] = name
        return self.by_key[key]


class _Emitter:
    def __init__(self, prog: CheckedProgram, names: _Names, errors: Collector):
        self.prog = prog
        self.names = names
        self.errors = errors
        self.lines: list[str] = []
        self.counter = 0
        self.rule_ids = {id(r): i for i, r in enumerate(prog.rules)}
        self.too_deep: set[int] = set()
        self.oracle = DisjointnessOracle(prog)
        self.trees: dict[str, list] = {}

    def fresh(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def line(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    # -- expressions --------------------------------------------------------------------

    def expr(self, key: tuple, names: dict) -> str:
        kind = key[0]
        if kind == "var":
            return names[key[1]]
        if kind == "int":
            return repr(key[1])
        if kind == "enum":
            return self.enum_name(key[1], key[2])
        term = self.prog.terms[key[1]]
        args = ", ".join(self.expr(a, names) for a in key[2])
        if term.constructor is not None:
            return f"{self.names.get(('constructor', term.name), 'C_' + _ident(term.name))}({args})"
        return f"rt.call({term.name!r}{', ' if args else ''}{args})"

    def fn_name(self, kind: str, term: str) -> str:
        return self.names.get((kind, term), f"{kind}_{_ident(term)}")

    def enum_name(self, ty: str, variant: str) -> str:
        return self.names.get(("enum", ty, variant), f"E_{_ident(ty)}_{_ident(variant)}")

    def lit(self, c: tuple) -> str:
        return repr(c[1]) if c[0] == "int" else self.enum_name(c[1], c[2])

    # -- the tree -----------------------------------------------------------------------

    def term(self, name: str, mode: str) -> None:
        term = self.prog.terms[name]
        if name not in self.trees:  # both modes share one tree
            items = [(steps, Leaf(self.rule_ids[id(r)], r, rhs))
                     for r in term.rules for steps, rhs in [rule_steps(r)]]
            self.trees[name] = build_tree(self.trial_order(items))
        tree = self.trees[name]
        params = ", ".join(f"a{i}" for i in range(term.arity))
        names = {("arg", i): f"a{i}" for i in range(term.arity)}
        if mode == "first":
            self.line(0, f"def {self.fn_name('match', name)}(rt{', ' if params else ''}{params}):")
            self.line(1, f'"""First rule of {name} that matches, by priority: (rule id, result) or None."""')
        else:
            self.line(0, f"def {self.fn_name('all', name)}(rt, out{', ' if params else ''}{params}):")
            self.line(1, f'"""Append (rule id, thunk) for every rule of {name} that matches."""')
        self.counter = 0
        for node in tree:
            self.node(node, names, 1, mode)
        if mode == "first":
            if not (tree and isinstance(tree[-1], Leaf)):  # else the last rule always returns
                self.line(1, "return None")
        else:
            self.line(1, "return out")

    def trial_order(self, items: list) -> list:
        """Priority order, rearranged so that rules starting with the same step are
        adjacent. Within one priority rules are disjoint (checked), so any order is
        correct, and sorting by steps groups common prefixes. A rule then moves up next to
        an earlier rule with the same first step when it is provably disjoint from every
        rule it passes: no input matches both, so their relative order cannot matter."""
        items = sorted(items, key=lambda it: (-it[1].rule.priority, [repr(s) for s in it[0]]))
        out: list = []
        for steps, leaf in items:
            at = len(out)
            if steps:
                for k in range(len(out) - 1, -1, -1):
                    other = out[k]
                    if other[0] and other[0][0] == steps[0]:
                        at = k + 1
                        break
                    if (other[1].rule.priority != leaf.rule.priority
                            and not self._first_steps_exclusive(other[0], steps)
                            and not self.oracle.disjoint(other[1].rule, leaf.rule)):
                        break
                else:
                    at = len(out)
            out.insert(at, (steps, leaf))
        return out

    def _first_steps_exclusive(self, a: list, b: list) -> bool:
        """Fast path: both rules start with extractors declared disjoint on one slot."""
        return (bool(a) and a[0][0] == "ext" and b[0][0] == "ext" and a[0][1] == b[0][1]
                and self.prog.are_disjoint(a[0][2], b[0][2]))

    def node(self, node, names: dict, indent: int, mode: str) -> None:
        if isinstance(node, Leaf):
            r = node.rule
            self.line(indent, f"# rule {node.rule_id} at {r.pos} (priority {r.priority}): {_clip(r.text)}")
            rhs = self.expr(node.rhs, names)
            if mode == "first":
                self.line(indent, f"return ({node.rule_id}, {rhs})")
            else:
                self.line(indent, f"out.append(({node.rule_id}, lambda: {rhs}))")
            return
        if indent > _MAX_INDENT:
            for leaf in _leaves(node):
                if leaf.rule_id not in self.too_deep:
                    self.too_deep.add(leaf.rule_id)
                    self.errors.error(leaf.rule.pos, "rule is nested too deeply to compile "
                                      f"(more than {_MAX_INDENT} tests); split it with a helper term")
            return
        names = dict(names)
        conds: list[str] = []
        unpack: list[str] = []
        # A step whose node has a single child chains into one `if a and b` (up to four
        # tests), which keeps nesting shallow; tuple unpacking needs its own statement.
        while True:
            cond, unpack = self.step(node.step, names)
            conds.append(cond)
            if (unpack or len(conds) >= 4 or len(node.children) != 1
                    or not isinstance(node.children[0], Branch)):
                break
            node = node.children[0]
        self.line(indent, f"if {' and '.join(conds)}:")
        for u in unpack:
            self.line(indent + 1, u)
        for child in node.children:
            self.node(child, names, indent + 1, mode)

    def step(self, step: tuple, names: dict) -> tuple[str, list[str]]:
        """The condition of a step, and the statements that follow a success; records the
        slots the step defines in `names`."""
        kind = step[0]
        if kind == "ext":
            slot, term_name = step[1], step[2]
            term = self.prog.terms[term_name]
            fn = self.names.get(("extractor", term_name), "X_" + _ident(term_name))
            src = names[slot]
            if term.arity == 0:
                return f"{fn}({src})", []
            res = self.fresh()
            if term.arity == 1:
                names[("sub", slot, term_name, 0)] = res
                return f"({res} := {fn}({src})) is not None", []
            outs = []
            for j in range(term.arity):
                v = self.fresh()
                names[("sub", slot, term_name, j)] = v
                outs.append(v)
            return f"({res} := {fn}({src})) is not None", [f"{', '.join(outs)} = {res}"]
        if kind == "lit":
            return f"{names[step[1]]} == {self.lit(step[2])}", []
        if kind == "eq":
            return f"{names[step[1]]} == {names[step[2]]}", []
        if kind == "let":
            v = self.fresh()
            cond = f"({v} := {self.expr(step[2], names)}) is not None"
            names[step[1]] = v
            return cond, []
        return f"_passes({self.expr(step[1], names)})", []


def _leaves(node):
    if isinstance(node, Leaf):
        yield node
    else:
        for c in node.children:
            yield from _leaves(c)


def _clip(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def generate(prog: CheckedProgram) -> Generated:
    """Emit the matcher module for every term that has rules (raises RuleError if a rule
    cannot be compiled)."""
    errors = Collector()
    names = _Names()
    em = _Emitter(prog, names, errors)
    term_sources: dict[str, str] = {}
    body: list[str] = []
    ruled = [t for t in prog.terms.values() if t.rules]
    for t in ruled:
        em.lines = []
        em.line(0, f"# ---- term {t.name}: {len(t.rules)} rule(s) " + "-" * 40)
        em.term(t.name, "first")
        em.line(0, "")
        em.term(t.name, "all")
        em.line(0, "")
        term_sources[t.name] = "\n".join(em.lines) + "\n"
        body.extend(em.lines)
    errors.raise_if_any()

    rules_meta = tuple((r.term, r.pos.file, r.pos.line, r.pos.col, r.priority, r.text) for r in prog.rules)
    terms_meta = {t.name: (em.fn_name("match", t.name), em.fn_name("all", t.name), t.arity) for t in ruled}
    externs_meta = {}
    for t in prog.terms.values():
        for kind, prefix in (("extractor", "X_"), ("constructor", "C_")):
            x = getattr(t, kind)
            if x is not None and (kind, t.name) in names.by_key:
                externs_meta[names.by_key[(kind, t.name)]] = (
                    kind, t.name, x.py_name, x.pos.file, x.pos.line, x.pos.col)
    enums_meta = {v: (k[1], k[2]) for k, v in names.by_key.items() if k[0] == "enum"}
    head = [
        f"# Generated by deadeye.lower.dsl (compiler version {COMPILER_VERSION}) from:",
        *(f"#   {f}" for f in prog.program.files),
        "# Do not edit: it is regenerated whenever a rule file changes.",
        "",
        f"COMPILER_VERSION = {COMPILER_VERSION!r}",
        "# (term, file, line, column, priority, left-hand side), indexed by rule id",
        f"RULES = {rules_meta!r}",
        "# term -> (first-match function, all-matches function, arity)",
        f"TERMS = {terms_meta!r}",
        "# global name -> (role, term, host function name, file, line, column)",
        f"EXTERNS = {externs_meta!r}",
        "# global name -> (enum type, variant)",
        f"ENUMS = {enums_meta!r}",
        "",
        "",
    ]
    return Generated("\n".join(head + body) + "\n", term_sources)
