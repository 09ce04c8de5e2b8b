"""The overlap checker (equal-priority rules that can match one input), its refusals where
it cannot decide, and rules that can never fire (subsumed or self-contradictory)."""

from __future__ import annotations

import pytest

from deadeye.lower.dsl import RuleError, check_sources

PRELUDE = """\
(type int (primitive int))
(type V (primitive object))
(type Op (enum Add Sub Mul))
(decl iadd (V V) V)
(decl isub (V V) V)
(decl imul (V V) V)
(decl iconst (int) V)
(decl unknown_ext (V) V)
(decl pos (int) int)
(extern extractor iadd ex_iadd)
(extern extractor isub ex_isub)
(extern extractor imul ex_imul)
(extern extractor iconst ex_iconst)
(extern extractor unknown_ext ex_unknown)
(extern extractor pos ex_pos)
(disjoint iadd isub imul iconst)
(decl cond1 (V) int)
(extern constructor cond1 c1)
(decl cond2 (V) int)
(extern constructor cond2 c2)
(decl s (V) V)
(decl g (int int) int)
(decl h (Op V) V)
"""
BASE = PRELUDE.count("\n")


def check(rules: str):
    return check_sources([("p.isle", PRELUDE), ("r.isle", rules)])


def diags(rules: str) -> list[tuple[int, str]]:
    with pytest.raises(RuleError) as info:
        check(rules)
    return [(d.pos.line, d.message) for d in info.value.diagnostics]


# Each case: two (or more) rules; the expected error (line in r.isle, message fragment) or None.
CASES = {
    "same variable twice overlaps a general pattern": (
        "(rule (s (iadd x x)) x)\n(rule (s (iadd x y)) y)", (2, "overlap")),
    "different literals are disjoint": (
        "(rule (s (iadd x (iconst 0))) x)\n(rule (s (iadd x (iconst 1))) x)", None),
    "literal against variable overlaps": (
        "(rule (s (iadd x (iconst 0))) x)\n(rule (s (iadd x (iconst k))) x)", (2, "overlap")),
    "equality constraint contradicts two literals": (
        "(rule (g x x) x)\n(rule (g 1 2) 0)", None),
    "equality constraint meets equal literals": (
        "(rule (g x x) x)\n(rule (g 1 1) 0)", (2, "overlap")),
    "equality constraint meets one literal": (
        "(rule (g x x) x)\n(rule (g 1 y) y)", (2, "overlap")),
    "equality through a binding contradicts a literal": (
        "(rule (s (iadd x @ (iconst 0) x)) x)\n(rule (s (iadd (iconst 1) y)) y)", None),
    "equality through nested extractors": (
        "(rule (s x @ (iadd (iconst a) (iconst a))) x)\n(rule (s y @ (iadd (iconst 1) (iconst 2))) y)", None),
    "equality through nested extractors can still overlap": (
        "(rule (s x @ (iadd (iconst a) (iconst a))) x)\n(rule (s y @ (iadd (iconst 1) _)) y)", (2, "overlap")),
    "different enum variants are disjoint": (
        "(rule (h Op.Add x) x)\n(rule (h Op.Sub x) x)", None),
    "enum variant against a variable overlaps": (
        "(rule (h Op.Add x) x)\n(rule (h o x) x)", (2, "overlap")),
    "declared-disjoint extractors": (
        "(rule (s (iadd x y)) x)\n(rule (s (isub x y)) x)", None),
    "nested disjoint extractors": (
        "(rule (s (iadd (iadd a b) c)) a)\n(rule (s (iadd (isub a b) c)) a)", None),
    "nested patterns that unify overlap": (
        "(rule (s (iadd (iadd a b) c)) a)\n(rule (s (iadd x (imul y z))) x)", (2, "overlap")),
    "extractors not declared disjoint are refused": (
        "(rule (s (iadd x y)) x)\n(rule (s (unknown_ext x)) x)",
        (2, "not declared disjoint (see `(disjoint iadd unknown_ext)`); give them distinct priorities")),
    "literal against an int extractor is refused": (
        "(rule (g 0 y) y)\n(rule (g (pos k) y) y)", (2, "may both match; give them distinct priorities")),
    "different guards are refused": (
        "(rule (s (iadd x y)) (if (cond1 x)) x)\n(rule (s (iadd x y)) (if (cond2 x)) y)",
        (2, "cannot decide whether this rule and the one at r.isle:1:1 (both priority 0) overlap: "
            "their guards cannot be compared; give them distinct priorities")),
    "guard against no guard is refused": (
        "(rule (s (iadd x y)) (if-let 1 (cond1 x)) x)\n(rule (s (iadd x y)) y)", (2, "cannot decide")),
    "guards with disjoint patterns are fine": (
        "(rule (s (iadd x y)) (if (cond1 x)) x)\n(rule (s (isub x y)) (if (cond2 x)) y)", None),
    "guards at distinct priorities are fine": (
        "(rule 1 (s (iadd x y)) (if (cond1 x)) x)\n(rule (s (iadd x y)) (if (cond2 x)) y)", None),
    "distinct priorities resolve an overlap": (
        "(rule 1 (s (iadd x x)) x)\n(rule (s (iadd x y)) y)", None),
    "different terms never overlap": (
        "(decl t (V) V)\n(rule (s x) x)\n(rule (t x) x)", None),
    "subsumed by a more general higher-priority rule": (
        "(rule 1 (s (iadd x y)) x)\n(rule (s (iadd x (iconst 0))) x)", (2, "rule can never fire: the rule at r.isle:1:1")),
    "a more specific higher-priority rule is fine": (
        "(rule 1 (s (iadd x (iconst 0))) x)\n(rule (s (iadd x y)) x)", None),
    "a guarded higher-priority rule does not subsume": (
        "(rule 1 (s (iadd x y)) (if (cond1 x)) x)\n(rule (s (iadd x (iconst 0))) x)", None),
    "lower-priority guards do not prevent subsumption": (
        "(rule 1 (s x) x)\n(rule (s (iadd x y)) (if (cond1 x)) y)", (2, "can never fire")),
    "equality constraint subsumes equal literals": (
        "(rule 1 (g x x) x)\n(rule (g 3 3) 0)", (2, "can never fire")),
    "equality constraint subsumes a repeated variable": (
        "(rule 1 (g x x) x)\n(rule -5 (g a @ 7 a) 0)", (2, "can never fire")),
    "equality constraint does not subsume distinct variables": (
        "(rule 1 (g x x) x)\n(rule (g a b) 0)", None),
    "subsumption through nested structure and enums": (
        "(rule 1 (h Op.Mul x @ (iadd _ (iconst k))) x)\n(rule (h Op.Mul (iadd (isub a b) (iconst 4))) a)",
        (2, "can never fire")),
    "self-contradictory pattern": (
        "(rule (g x @ 1 x) x)\n(rule (g y @ 2 y) y)\n(rule (s (iadd a @ (iconst 1) a @ (iconst 2))) a)",
        (3, "rule can never match: its pattern requires 1 vs 2")),
    "self-contradiction through disjoint extractors": (
        "(rule (s (iadd a @ (isub _ _) a @ (imul _ _))) a)", (1, "its pattern requires imul vs isub")),
    "a cyclic binding is not a contradiction": (
        "(rule (s a @ (iadd (isub _ _) a)) a)", None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_overlap_cases(name):
    rules, expected = CASES[name]
    if expected is None:
        check(rules)
        return
    got = diags(rules)
    assert len(got) == 1, got
    line, msg = got[0]
    assert line == expected[0] and expected[1] in msg, got


def test_overlap_message_names_both_rules():
    ((line, msg),) = diags("(rule (s (iadd x x)) x)\n(rule (s (iadd x y)) y)")
    assert msg == ("rules of s overlap: this rule and the one at r.isle:1:1 (both priority 0) can "
                   "match the same input; make them disjoint or give them distinct priorities")


def test_every_pair_is_reported():
    got = diags("(rule (s (iadd x y)) x)\n(rule (s (iadd x x)) x)\n(rule (s (iadd (iconst 0) x)) x)\n")
    assert [line for line, _ in got] == [2, 3, 3]


def test_large_rule_sets_check_quickly():
    import time

    variants = 150
    decls = "".join(f"(decl op{i} (V V) V)\n(extern extractor op{i} ex{i})\n" for i in range(variants))
    disjoint = "(disjoint " + " ".join(f"op{i}" for i in range(variants)) + ")\n"
    rules = "".join(f"(rule (s (op{i} x (iconst {k}))) x)\n" for i in range(variants) for k in range(2))
    t = time.perf_counter()
    check_sources([("p.isle", PRELUDE + decls + disjoint), ("r.isle", rules)])
    assert time.perf_counter() - t < 20
