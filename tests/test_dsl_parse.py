"""Parsing rule files: the forms, literals, positions, and syntax errors citing
file:line:column."""

from __future__ import annotations

import pytest

from deadeye.lower.dsl import RuleError, parse_sources, parse_text
from deadeye.lower.dsl import ast as A


def test_all_forms():
    text = """\
;; a comment
(type u32 (primitive int))   ; trailing comment
(type Op (enum Add Sub))
(type Val (primitive ir.Value))
(decl iadd (Val Val) Val)
(decl nothing () u32)
(extern extractor iadd ext_iadd)
(extern constructor iadd mk.iadd)
(disjoint iadd isub)
(rule -3 (simplify (iadd x (iconst 0x1_0)) _ y @ (f _) Op.Sub -7 0b11)
      (if-let (iconst k) (g x))
      (if (h k))
      (iadd y (iconst 1)))
(rule (simplify a) a)
"""
    p = parse_text(text, "f.isle")
    assert p.files == ["f.isle"]
    assert [(t.name, t.kind, t.py, t.variants) for t in p.types] == [
        ("u32", "primitive", "int", ()), ("Op", "enum", None, ("Add", "Sub")),
        ("Val", "primitive", "ir.Value", ())]
    assert [(d.name, d.arg_types, d.ret_type) for d in p.decls] == [
        ("iadd", ("Val", "Val"), "Val"), ("nothing", (), "u32")]
    assert [(x.kind, x.term, x.py_name) for x in p.externs] == [
        ("extractor", "iadd", "ext_iadd"), ("constructor", "iadd", "mk.iadd")]
    assert p.disjoints[0].terms == ("iadd", "isub")
    r, r2 = p.rules
    assert (r.priority, r.term, r2.priority) == (-3, "simplify", 0)
    assert r.pos == A.Pos("f.isle", 10, 1) and r.lhs.pos == A.Pos("f.isle", 10, 10)
    assert r.text == "(simplify (iadd x (iconst 0x1_0)) _ y @ (f _) Op.Sub -7 0b11)"
    iadd, wild, bind, enum, neg, binary = r.lhs.args
    assert isinstance(iadd, A.PTerm) and iadd.term == "iadd"
    assert isinstance(iadd.args[0], A.PVar) and iadd.args[1].args[0].value == 16
    assert isinstance(wild, A.PWild)
    assert isinstance(bind, A.PBind) and bind.name == "y" and bind.pat.term == "f"
    assert (enum.type, enum.variant) == ("Op", "Sub")
    assert (neg.value, binary.value) == (-7, 3)
    let, cond = r.guards
    assert isinstance(let, A.IfLet) and let.pat.term == "iconst" and let.expr.term == "g"
    assert isinstance(cond, A.If) and cond.expr.args[0].name == "k"
    assert let.pos == A.Pos("f.isle", 11, 7)
    assert isinstance(r.rhs, A.ECall) and r.rhs.args[1].args[0] == A.EInt(1, A.Pos("f.isle", 13, 23))


def test_keywords_are_names_where_they_cannot_be_keywords():
    p = parse_text("(rule (type type rule) (rule if iffy typex))")
    (r,) = p.rules
    assert r.term == "type" and [a.name for a in r.lhs.args] == ["type", "rule"]
    assert r.rhs.term == "rule" and [a.name for a in r.rhs.args] == ["if", "iffy", "typex"]


def test_empty_file_and_only_comments():
    assert parse_text("").rules == []
    assert parse_text(";; nothing here\n  ; at all\n").types == []


@pytest.mark.parametrize("text, line, col, fragment", [
    ("(type x (primitive int)", 1, 24, "unexpected end of file"),
    ("(rule (f x) y))", 1, 15, "unexpected ')'"),
    ("(decl f (a b) )", 1, 15, "expected a name"),
    ("(rule (f 1x) y)", 1, 10, "unexpected '1'"),
    ("(typex a (primitive int))", 1, 2, "unexpected 'typex'"),
    ("(decl f () t)\n\n  (rule (f)\n   @)", 4, 4, "unexpected '@'"),
    ("(rule)", 1, 6, "unexpected ')'"),
    ("(extern extractorx a b)", 1, 9, "expected extractor or constructor"),
    ("(rule (f $) 1)", 1, 10, "unexpected '$'"),
    ("(type t (enum A B A))", 1, 19, "variant A listed twice"),
    ("(rule (f X.y.z) 1)", 1, 10, "must be Type.Variant"),
    ("(rule (f x) (if-let 1))", 1, 22, "unexpected ')'"),
])
def test_syntax_errors_cite_position(text, line, col, fragment):
    with pytest.raises(RuleError) as info:
        parse_text(text, "bad.isle")
    (d,) = info.value.diagnostics
    assert (d.pos.file, d.pos.line, d.pos.col) == ("bad.isle", line, col)
    assert fragment in d.message
    assert str(info.value).startswith(f"bad.isle:{line}:{col}: ")


def test_errors_of_several_files_are_all_reported():
    with pytest.raises(RuleError) as info:
        parse_sources([("a.isle", "(rule"), ("ok.isle", "(type t (primitive int))"), ("b.isle", "\n)")])
    assert [(d.pos.file, d.pos.line) for d in info.value.diagnostics] == [("a.isle", 1), ("b.isle", 2)]


def test_several_files_form_one_program():
    p = parse_sources([("a.isle", "(type t (primitive int))"), ("b.isle", "(decl f (t) t)")])
    assert p.files == ["a.isle", "b.isle"] and len(p.types) == 1 and len(p.decls) == 1


def test_absurd_nesting_is_an_error_not_a_crash():
    from deadeye.lower.dsl import check_sources

    deep = ("(type T (primitive object)) (decl w (T) T) (extern extractor w e) (decl f (T) T)"
            "(rule (f " + "(w " * 3000 + "x" + ")" * 3000 + ") x)")
    with pytest.raises(RuleError) as info:
        check_sources([("d.isle", deep)])
    assert str(info.value) == "d.isle:1:1: forms are nested too deeply"


@pytest.mark.parametrize("text", ["(rule (f 0x_) 1)", "(rule (f 0b) 1)", "(rule (f --1) 1)"])
def test_malformed_integers(text):
    with pytest.raises(RuleError) as info:
        parse_text(text, "i.isle")
    assert str(info.value).startswith("i.isle:1:10: syntax error")
