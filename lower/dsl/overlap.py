"""The overlap and subsumption checker.

Two rules of one term with equal priority must never both match one input: the order in
which the matcher tries them would be an accident, and chaos mode (which picks any matching
rule) would make it visible. The checker decides overlap by unifying the two left-hand
sides: each pattern position becomes a node of a union-find; literals and extractor
applications constrain nodes; a variable bound twice is one node (an equality constraint).
Extractors are deterministic functions of their input, so one node with the same extractor
twice unifies that extractor's outputs. The outcome is one of

- a contradiction (two different literals, or two extractors declared `(disjoint ...)`,
  on one node): the rules are disjoint;
- a clean unifier and no guards: the rules overlap (an error);
- anything the checker cannot see through (a literal against an extractor, extractors not
  declared disjoint, guards): the checker refuses and asks for distinct priorities.

A rule is also an error if it can never fire: when its own constraints contradict each
other, or when a guard-free rule of higher priority matches every input it matches
(checked by one-way matching of that rule's pattern against this rule's unified nodes).
"""

from __future__ import annotations

from deadeye.lower.dsl import ast as A
from deadeye.lower.dsl.errors import Collector
from deadeye.lower.dsl.typecheck import CheckedProgram


class _Contradiction(Exception):
    """Internal: unification found that no input can satisfy the constraints."""


class _Unifier:
    def __init__(self, prog: CheckedProgram):
        self.prog = prog
        self.parent: list[int] = []
        self.const: dict[int, tuple] = {}
        self.apps: dict[int, dict[str, list[int]]] = {}
        self.unknown: list[str] = []

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, n: int) -> int:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def node(self, p: A.Pattern, scope: dict[str, int]) -> int:
        if isinstance(p, A.PWild):
            return self.new()
        if isinstance(p, A.PVar):
            if p.name not in scope:
                scope[p.name] = self.new()
            return scope[p.name]
        if isinstance(p, A.PBind):
            if p.name not in scope:
                scope[p.name] = self.new()
            n = scope[p.name]
            self.union(n, self.node(p.pat, scope))
            return n
        n = self.new()
        if isinstance(p, A.PInt):
            self.const[n] = ("int", p.value)
        elif isinstance(p, A.PEnum):
            self.const[n] = ("enum", p.type, p.variant)
        else:
            self.apps[n] = {p.term: [self.node(a, scope) for a in p.args]}
        return n

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.parent[rb] = ra
        cb = self.const.pop(rb, None)
        if cb is not None:
            ca = self.const.get(ra)
            if ca is not None and ca != cb:
                raise _Contradiction(f"{_show(ca)} vs {_show(cb)}")
            self.const[ra] = cb
        apps_a = self.apps.setdefault(ra, {})
        pending = []
        for term, args in self.apps.pop(rb, {}).items():
            if term in apps_a:
                pending.extend(zip(apps_a[term], args))
            else:
                apps_a[term] = args
        terms = sorted(apps_a)
        for i, t1 in enumerate(terms):
            for t2 in terms[i + 1:]:
                if self.prog.are_disjoint(t1, t2):
                    raise _Contradiction(f"{t1} vs {t2}")
                self.unknown.append(f"extractors {t1} and {t2} at the same position are not "
                                    f"declared disjoint (see `(disjoint {t1} {t2})`)")
        if terms and ra in self.const:
            self.unknown.append(f"{_show(self.const[ra])} and extractor {terms[0]} at the same "
                                "position may both match")
        for x, y in pending:
            self.union(x, y)

    def rule_roots(self, rule: A.Rule) -> list[int]:
        scope: dict[str, int] = {}
        return [self.node(p, scope) for p in rule.lhs.args]


def _show(c: tuple) -> str:
    return str(c[1]) if c[0] == "int" else f"{c[1]}.{c[2]}"


def _heads(prog: CheckedProgram, rule: A.Rule):
    """Per root argument: (literal or None, set of extractor terms), from the rule's own
    unifier; None if the rule contradicts itself (then the message)."""
    u = _Unifier(prog)
    try:
        roots = u.rule_roots(rule)
    except _Contradiction as e:
        return None, str(e)
    out = []
    for r in roots:
        r = u.find(r)
        out.append((u.const.get(r), frozenset(u.apps.get(r, {}))))
    return (u, roots, tuple(out)), None


def _quick_disjoint(prog: CheckedProgram, h1, h2) -> bool:
    for (c1, t1), (c2, t2) in zip(h1, h2):
        if c1 is not None and c2 is not None and c1 != c2:
            return True
        if t1 and t2 and all(prog.are_disjoint(a, b) for a in t1 for b in t2):
            return True
    return False


def _overlap(prog: CheckedProgram, r1: A.Rule, r2: A.Rule) -> tuple[str, str] | None:
    """None if disjoint, else (kind, detail) with kind "overlap" or "undecided"."""
    u = _Unifier(prog)
    try:
        for a, b in zip(u.rule_roots(r1), u.rule_roots(r2)):
            u.union(a, b)
    except _Contradiction:
        return None
    if u.unknown:
        return "undecided", u.unknown[0]
    if r1.guards or r2.guards:
        return "undecided", "their guards cannot be compared"
    return "overlap", ""


def _covers(u: _Unifier, p: A.Pattern, n: int, subst: dict[str, int]) -> bool:
    """Does pattern `p` (of a higher-priority rule) match every value that the unified
    node `n` (of a lower-priority rule) can stand for?"""
    if isinstance(p, A.PWild):
        return True
    if isinstance(p, (A.PVar, A.PBind)):
        if p.name in subst:
            a, b = u.find(subst[p.name]), u.find(n)
            if a != b and (u.const.get(a) is None or u.const.get(a) != u.const.get(b)):
                return False
        else:
            subst[p.name] = n
        return _covers(u, p.pat, n, subst) if isinstance(p, A.PBind) else True
    r = u.find(n)
    if isinstance(p, A.PInt):
        return u.const.get(r) == ("int", p.value)
    if isinstance(p, A.PEnum):
        return u.const.get(r) == ("enum", p.type, p.variant)
    args = u.apps.get(r, {}).get(p.term)
    return args is not None and all(_covers(u, q, m, subst) for q, m in zip(p.args, args))


def check_overlaps(prog: CheckedProgram) -> Collector:
    """Return a Collector holding every overlap, undecidable pair and dead rule."""
    errors = Collector()
    for term in prog.terms.values():
        rules = term.rules
        info = []
        for r in rules:
            h, why = _heads(prog, r)
            if h is None:
                errors.error(r.pos, f"rule can never match: its pattern requires {why} at one position")
            info.append(h)
        for i, r1 in enumerate(rules):
            if info[i] is None:
                continue
            for j in range(i + 1, len(rules)):
                r2 = rules[j]
                if info[j] is None:
                    continue
                if r1.priority == r2.priority:
                    if _quick_disjoint(prog, info[i][2], info[j][2]):
                        continue
                    res = _overlap(prog, r1, r2)
                    if res is None:
                        continue
                    kind, detail = res
                    if kind == "overlap":
                        errors.error(r2.pos, f"rules of {term.name} overlap: this rule and the one at "
                                     f"{r1.pos} (both priority {r1.priority}) can match the same "
                                     "input; make them disjoint or give them distinct priorities")
                    else:
                        errors.error(r2.pos, f"cannot decide whether this rule and the one at {r1.pos} "
                                     f"(both priority {r1.priority}) overlap: {detail}; give them "
                                     "distinct priorities")
                else:
                    hi, lo, lo_i = (r1, r2, j) if r1.priority > r2.priority else (r2, r1, i)
                    if hi.guards:
                        continue
                    u, roots, _ = info[lo_i]
                    subst: dict[str, int] = {}
                    if all(_covers(u, p, n, subst) for p, n in zip(hi.lhs.args, roots)):
                        errors.error(lo.pos, f"rule can never fire: the rule at {hi.pos} (priority "
                                     f"{hi.priority}, higher than {lo.priority}) matches every input "
                                     "this one matches")
    return errors


class DisjointnessOracle:
    """Answers "can no input match both rules' left-hand sides?" (guards aside), with a
    cheap test of the root positions before full unification."""

    def __init__(self, prog: CheckedProgram):
        self.prog = prog
        self._heads: dict[int, tuple | None] = {}

    def _head(self, r: A.Rule):
        key = id(r)
        if key not in self._heads:
            h, _ = _heads(self.prog, r)
            self._heads[key] = None if h is None else h[2]
        return self._heads[key]

    def disjoint(self, r1: A.Rule, r2: A.Rule) -> bool:
        h1, h2 = self._head(r1), self._head(r2)
        if h1 is None or h2 is None:  # a rule that cannot match at all
            return True
        return _quick_disjoint(self.prog, h1, h2) or _overlap(self.prog, r1, r2) is None
