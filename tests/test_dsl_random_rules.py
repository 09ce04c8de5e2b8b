"""Random rule programs over the toy language: whatever rules hypothesis writes (kept if
the checker accepts them; rejected rules are dropped), the compiled decision tree must
pick exactly the rule that the naive reference matcher picks, and list exactly the rules
that match. This exercises prefix sharing and the reordering of disjoint rules across
priorities on shapes nobody wrote by hand."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.lower.dsl import RuleError, check_sources, load_sources
from dsl_testlib import ENV, PRELUDE, Reference, exprs

EXPR_VARS = ["x", "y", "z"]
INT_VARS = ["i", "j"]


@st.composite
def int_pattern(draw, bound):
    kind = draw(st.sampled_from(["wild", "lit", "var"]))
    if kind == "wild":
        return "_"
    if kind == "lit":
        return str(draw(st.integers(0, 2)))
    v = draw(st.sampled_from(INT_VARS))
    bound["int"].add(v)
    return v


@st.composite
def expr_pattern(draw, bound, depth=0):
    # The root is never a bare variable (it would hide every lower-priority rule).
    kinds = ["const", "var_leaf"] if depth == 0 else ["wild", "var", "const", "var_leaf", "leaf"]
    if depth < 3:
        kinds += ["add", "mul", "neg", "bin", "bind"] * 2
    kind = draw(st.sampled_from(kinds))
    if kind == "wild":
        return "_"
    if kind == "var":
        v = draw(st.sampled_from(EXPR_VARS))
        bound["expr"].add(v)
        return v
    if kind == "const":
        return f"(const {draw(int_pattern(bound))})"
    if kind == "var_leaf":
        return f"(var {draw(int_pattern(bound))})"
    if kind == "leaf":
        return "(is_leaf)"
    if kind == "neg":
        return f"(neg {draw(expr_pattern(bound, depth + 1))})"
    if kind == "bin":
        op = draw(st.sampled_from(["Op.Add", "Op.Sub", "_", "o"]))
        if op == "o":
            bound["op"] = True
        return f"(bin {op} {draw(expr_pattern(bound, depth + 1))} {draw(expr_pattern(bound, depth + 1))})"
    if kind == "bind":
        v = draw(st.sampled_from(EXPR_VARS))
        bound["expr"].add(v)
        return f"{v} @ {draw(expr_pattern(bound, depth + 1))}"
    return f"({kind} {draw(expr_pattern(bound, depth + 1))} {draw(expr_pattern(bound, depth + 1))})"


@st.composite
def rule(draw, n):
    bound = {"expr": set(), "int": set(), "op": False}
    lhs = draw(expr_pattern(bound))
    guards = ""
    if bound["int"] and draw(st.booleans()):
        v = sorted(bound["int"])[0]
        guards = draw(st.sampled_from([f" (if (even {v}))", f" (if-let k (small {v}))", f" (if-let 1 (small {v}))"]))
    rhs = sorted(bound["expr"])[0] if bound["expr"] else f"(const {100 + n})"
    prio = draw(st.integers(0, 6))
    return f"(rule {prio} (r {lhs}){guards} {rhs})"


def accepted_program(rules: list[str]) -> list[str]:
    """Drop the rules the checker rejects until it accepts the rest."""
    while rules:
        text = "(decl r (Expr) Expr)\n" + "\n".join(rules) + "\n"
        try:
            check_sources([("prelude.isle", PRELUDE), ("r.isle", text)])
            return rules
        except RuleError as e:
            bad = {d.pos.line - 2 for d in e.diagnostics if d.pos.file == "r.isle"}
            assert bad, str(e)  # the prelude itself is fine: only rules may be rejected
            rules = [r for k, r in enumerate(rules) if k not in bad]
    return rules


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_rule_programs_match_the_reference(data):
    n = data.draw(st.integers(1, 12))
    rules = accepted_program([data.draw(rule(k)) for k in range(n)])
    if not rules:
        return
    sources = [("prelude.isle", PRELUDE), ("r.isle", "(decl r (Expr) Expr)\n" + "\n".join(rules) + "\n")]
    rs = load_sources(sources, ENV, use_cache=False)
    ref = Reference(sources, ENV)
    fired = []
    rs.trace = lambda info, args, result: fired.append((info.id, result))
    for e in data.draw(st.lists(exprs(), min_size=10, max_size=10)):
        fired.clear()
        got = rs.call("r", e)
        want = ref.call("r", e)
        assert (fired[-1] if fired else None) == want
        assert got == (want[1] if want else None)
        matching = rs.matching("r", e)
        assert [m.id for m in matching] == ref.all_matching("r", e)
        # The overlap checker accepted the program: no two matching rules share a priority.
        assert len({m.priority for m in matching}) == len(matching)
