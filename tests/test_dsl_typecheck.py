"""Type errors of the rule language, each citing file:line:column."""

from __future__ import annotations

import pytest

from deadeye.lower.dsl import RuleError, check_sources, parse_text, typecheck

PRELUDE = """\
(type int (primitive int))
(type V (primitive object))
(type Op (enum Add Sub))
(decl iadd (V V) V)
(extern extractor iadd ex_iadd)
(extern constructor iadd mk_iadd)
(decl iconst (int) V)
(extern extractor iconst ex_iconst)
(extern constructor iconst mk_iconst)
(decl op_of (V) Op)
(extern constructor op_of c_op_of)
(decl only_ext (V) V)
(extern extractor only_ext ex_only)
(decl simplify (V) V)
"""
BASE = PRELUDE.count("\n")


def errors(rules: str) -> list[tuple[int, int, str]]:
    """(line relative to the rules text, column, message) of every error."""
    with pytest.raises(RuleError) as info:
        typecheck(parse_text(PRELUDE + rules, "t.isle"))
    return [(d.pos.line - BASE, d.pos.col, d.message) for d in info.value.diagnostics]


def test_well_typed_program_passes():
    checked = check_sources([("t.isle", PRELUDE + """\
(rule 1 (simplify (iadd x (iconst 0))) x)
(rule (simplify (iadd x y @ (iconst k)))
      (if-let Op.Add (op_of y))
      (if-let z (simplify x))
      (iadd z (iconst k)))
""")])
    assert len(checked.terms["simplify"].rules) == 2
    assert checked.terms["iadd"].extractor.py_name == "ex_iadd"


@pytest.mark.parametrize("rules, expected", [
    ("(rule (nosuch x) x)", [(1, 7, "unknown term nosuch")]),
    ("(rule (simplify (nosuch x)) x)", [(1, 17, "unknown term nosuch")]),
    ("(rule (simplify x) (nosuch x))", [(1, 20, "unknown term nosuch")]),
    ("(rule (simplify x y) x)", [(1, 7, "takes 1 argument(s), the rule gives 2")]),
    ("(rule (simplify (iadd x)) x)", [(1, 17, "takes 2 argument(s), got 1")]),
    ("(rule (simplify x) (iadd x))", [(1, 20, "takes 2 argument(s), got 1")]),
    ("(rule (simplify (iconst x)) x)", [(1, 29, "type mismatch: expected V, got int")]),
    ("(rule (simplify x) (iconst x))", [(1, 28, "type mismatch: expected int, got V")]),
    ("(rule (simplify x) y)", [(1, 20, "unbound variable y")]),
    ("(rule (simplify (iadd x (iconst x))) x)",
     [(1, 33, "variable x is bound twice with different types (V and int)")]),
    ("(rule (simplify x @ (iconst x)) x)",
     [(1, 29, "variable x is bound twice with different types (V and int)")]),
    ("(rule (simplify (op_of x)) x)", [(1, 17, "term op_of has no extractor"),
                                        (1, 17, "type mismatch: op_of matches Op, expected V")]),
    ("(rule (simplify x) (only_ext x))", [(1, 20, "term only_ext has no constructor or rules")]),
    ("(rule (simplify (iadd 3 x)) x)", [(1, 23, "integer literal where V is expected")]),
    ("(rule (simplify x) (iconst Op.Add))", [(1, 28, "type mismatch: expected int, got Op")]),
    ("(rule (simplify x) (if-let Op.Mul (op_of x)) x)", [(1, 28, "enum Op has no variant Mul")]),
    ("(rule (simplify x) (if-let No.Add (op_of x)) x)", [(1, 28, "unknown type No")]),
    ("(rule (simplify x) (if-let int.Add (op_of x)) x)", [(1, 28, "type int is not an enum")]),
    ("(rule (simplify x) (if-let (iconst k) (op_of x)) x)",
     [(1, 28, "type mismatch: iconst matches V, expected Op")]),
    ("(rule (simplify x) (if-let k 3) x)", [(1, 30, "cannot infer the type of this integer literal")]),
    ("(rule (simplify x) (if-let y (simplify x)) (if y) (iadd y z))", [(1, 59, "unbound variable z")]),
    ("(extern extractor ghost py_ghost)", [(1, 1, "extern extractor for undeclared term ghost")]),
    ("(extern extractor iadd other)", [(1, 1, "term iadd already has an extern extractor at t.isle:5:1")]),
    ("(decl iadd (V) V)", [(1, 1, "term iadd is already declared at t.isle:4:1")]),
    ("(type V (primitive int))", [(1, 1, "type V is already defined at t.isle:2:1")]),
    ("(decl f (Nope) V)", [(1, 10, "unknown type Nope")]),
    ("(decl f (V) Nope)", [(1, 13, "unknown type Nope")]),
    ("(rule (iadd x y) x)", [(6 - BASE, 1, "term iadd has rules and an extern constructor")]),
    ("(disjoint iadd op_of)", [(1, 16, "term op_of has no extern extractor")]),
    ("(disjoint iadd)", [(1, 1, "disjoint needs at least two terms")]),
    ("(decl e2 (V) int)\n(extern extractor e2 ex_e2)\n(disjoint iadd e2)",
     [(3, 1, "disjoint terms iadd and e2 match different types (V and int)")]),
])
def test_type_errors(rules, expected):
    got = errors(rules)
    assert [(line, col) for line, col, _ in got] == [(line, col) for line, col, _ in expected]
    for (_, _, msg), (_, _, fragment) in zip(got, expected):
        assert fragment in msg


def test_every_error_is_reported_across_files():
    with pytest.raises(RuleError) as info:
        check_sources([("a.isle", PRELUDE), ("b.isle", "(rule (simplify x) y)\n(rule (nosuch) 1)\n")])
    assert [str(d).split(": ")[0] for d in info.value.diagnostics] == ["b.isle:1:20", "b.isle:2:7"]


def test_rules_may_use_terms_whose_rules_come_later():
    typecheck(parse_text(PRELUDE + """\
(decl helper (V) V)
(rule (simplify x) (helper x))
(rule (helper x) x)
""", "t.isle"))
