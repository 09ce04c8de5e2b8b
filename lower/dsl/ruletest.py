"""`deadeye rules test`: property-test every rule of a term without writing a test.

For each rule, hypothesis draws instances of its left-hand side: the pattern is walked
bottom-up, wildcards and variables become random leaves, literals stay, and every
`(term pat...)` is built by the *domain* so that the term's extractor gives back those
arguments. An instance counts when the compiled rules say this rule matches it (pattern
and guards, via `RuleSet.matching`); then the rule's right-hand side is built, and the
domain evaluates the left-hand side and the result on several random inputs and requires
bit-for-bit agreement, traps included.

The engine knows nothing of the IR: a `Domain` supplies it (the mid-end's is
`deadeye.opt.rule_check.IRDomain`):

- `term`: the term whose rules are tested (e.g. "simplify");
- `leaf(data, type_name)`: a random value of a rule-language type (a free IR value,
  an int, an enum literal);
- `literal(type_name, value)`: the host value of a literal (ints, enum variants);
- `build(data, term, args)`: an instance on which `term`'s extractor yields `args`, or
  None when the arguments do not make one (e.g. ill-typed): the draw is discarded;
- `begin(data)` / `compare(data, lhs, rhs)`: set up an instance; check LHS against RHS
  and return None (agree) or a description of the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from deadeye.lower.dsl import ast as A
from deadeye.lower.dsl.runtime import RuleSet
from deadeye.lower.dsl.typecheck import CheckedProgram


class Domain(Protocol):
    term: str

    def begin(self, data) -> None: ...
    def leaf(self, data, type_name: str) -> Any: ...
    def literal(self, type_name: str, value) -> Any: ...
    def build(self, data, term: str, args: tuple) -> Any: ...
    def compare(self, data, lhs, rhs) -> str | None: ...


class _Reject(Exception):
    """The drawn arguments make no instance."""


@dataclass
class RuleReport:
    where: str
    text: str
    instances: int = 0  # instances that matched the rule and were checked
    failure: str | None = None  # a counterexample, if one was found
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None and self.instances > 0

    def line(self) -> str:
        if self.failure is not None:
            return f"FAIL {self.where}: {self.text}\n     {self.failure}"
        if self.instances == 0:
            return (f"NONE {self.where}: {self.text}: no instance matched in {self.attempts} "
                    "draws (pattern or guards too narrow for the generator)")
        return f"ok   {self.where}: {self.instances} instance(s)"


@dataclass
class TestReport:
    rules: list[RuleReport] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleReport]:
        return [r for r in self.rules if r.failure is not None]

    @property
    def untested(self) -> list[RuleReport]:
        return [r for r in self.rules if r.failure is None and r.instances == 0]

    def summary(self) -> str:
        n = len(self.rules)
        return (f"{n - len(self.failed) - len(self.untested)} rule(s) ok, {len(self.failed)} "
                f"failed, {len(self.untested)} without instances")


class _Instantiator:
    def __init__(self, prog: CheckedProgram, domain: Domain, data):
        self.prog, self.domain, self.data = prog, domain, data
        self.env: dict[str, Any] = {}

    def pattern(self, p: A.Pattern, type_name: str):
        if isinstance(p, A.PWild):
            return self.domain.leaf(self.data, type_name)
        if isinstance(p, A.PVar):
            if p.name not in self.env:
                self.env[p.name] = self.domain.leaf(self.data, type_name)
            return self.env[p.name]
        if isinstance(p, A.PBind):
            v = self.pattern(p.pat, type_name)
            if p.name in self.env and self.env[p.name] is not v:
                raise _Reject
            self.env[p.name] = v
            return v
        if isinstance(p, A.PInt):
            return self.domain.literal(type_name, p.value)
        if isinstance(p, A.PEnum):
            return self.domain.literal(p.type, p.variant)
        term = self.prog.terms[p.term]
        args = tuple(self.pattern(a, t) for a, t in zip(p.args, term.arg_types))
        made = self.domain.build(self.data, p.term, args)
        if made is None:
            raise _Reject
        return made


def rule_infos(rs: RuleSet) -> dict[tuple[str, int, int], Any]:
    return {(r.file, r.line, r.col): r for r in rs.rules}


def test_rule(prog: CheckedProgram, rs: RuleSet, domain: Domain, rule: A.Rule, *,
              max_examples: int = 200, seed: int = 0) -> RuleReport:
    """Property-test one rule (of `domain.term`) with hypothesis."""
    from hypothesis import HealthCheck, Phase, assume, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    info = rule_infos(rs)[(rule.pos.file, rule.pos.line, rule.pos.col)]
    report = RuleReport(info.where, rule.text)
    term = rule.lhs.term
    arg_types = prog.terms[term].arg_types

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              phases=(Phase.generate, Phase.shrink), print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data):
        report.attempts += 1
        domain.begin(data)
        inst = _Instantiator(prog, domain, data)
        try:
            args = tuple(inst.pattern(p, t) for p, t in zip(rule.lhs.args, arg_types))
        except _Reject:
            assume(False)
        fired = [(rid, thunk) for rid, thunk in rs._all[term](rs, [], *args) if rid == info.id]
        # A guard said no: not an instance of this rule (hypothesis then draws more).
        assume(fired)
        rhs = fired[0][1]()
        if rhs is None:
            raise AssertionError("the rule matched but its right-hand side gave no value")
        problem = domain.compare(data, args[0] if len(args) == 1 else args, rhs)
        report.instances += 1
        if problem is not None:
            raise AssertionError(problem)

    try:
        check()
    except Unsatisfiable:
        pass
    except AssertionError as e:
        report.failure = str(e).strip() or "assertion failed"
    return report


def test_rules(prog: CheckedProgram, rs: RuleSet, domain: Domain, *, files=None,
               max_examples: int = 200, progress=None) -> TestReport:
    """Test every rule of `domain.term` (only those from `files`, display names or
    suffixes of them, when given)."""
    out = TestReport()
    for rule in prog.rules:
        if rule.lhs.term != domain.term:
            continue
        if files and not any(rule.pos.file == f or rule.pos.file.endswith(f.lstrip("./"))
                             for f in files):
            continue
        r = test_rule(prog, rs, domain, rule, max_examples=max_examples)
        out.rules.append(r)
        if progress is not None:
            progress(r)
    return out
