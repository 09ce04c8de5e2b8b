"""The compiled decision trees against a naive reference matcher, chaos mode, counters,
trace, the work budget, and the on-disk cache."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deadeye.lower.dsl import RuleError, load_rules, load_sources
from dsl_testlib import ENV, SOURCES, Reference, exprs

REF = Reference(SOURCES, ENV)


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    return load_sources(SOURCES, ENV, cache_dir=tmp_path_factory.mktemp("cache"))


def _top_rule(rs, term, *args):
    """(rule id of the top-level firing or None, result)."""
    fired = []
    rs.trace = lambda rule, a, res: fired.append(rule.id)
    try:
        result = rs.call(term, *args)
    finally:
        rs.trace = None
    return (fired[-1] if fired else None), result


@settings(max_examples=300, deadline=None)
@given(exprs())
def test_simplify_picks_the_reference_rule(rules, e):
    expected = REF.call("simplify", e)
    rid, result = _top_rule(rules, "simplify", e)
    if expected is None:
        assert (rid, result) == (None, None)
    else:
        assert (rid, result) == expected


@settings(max_examples=300, deadline=None)
@given(exprs(), st.integers(-1, 3))
def test_two_argument_term_picks_the_reference_rule(rules, e, k):
    expected = REF.call("pick", e, k)
    assert _top_rule(rules, "pick", e, k) == (expected if expected else (None, None))
    # Also exercise the structures that only `pick`'s nested rule looks for.
    wrapped = ("neg", ("neg", ("const", k)))
    assert _top_rule(rules, "pick", wrapped, k) == REF.call("pick", wrapped, k)


@settings(max_examples=200, deadline=None)
@given(exprs(), st.integers(0, 2**32))
def test_chaos_only_picks_matching_rules(rules, e, seed):
    assert [r.id for r in rules.matching("simplify", e)] == REF.all_matching("simplify", e)
    rules.set_chaos(seed)
    try:
        rid, _ = _top_rule(rules, "simplify", e)
    finally:
        rules.set_chaos(None)
    matching = REF.all_matching("simplify", e)
    assert (rid is None) == (not matching)
    if rid is not None:
        assert rid in matching


def test_chaos_reaches_lower_priority_rules_and_is_seeded(rules):
    e = ("add", ("const", 0), ("const", 0))  # matches add-zero, x+x, const fold, commute
    matching = REF.all_matching("simplify", e)
    assert len(matching) >= 3

    def picks(seed):
        rules.set_chaos(seed)
        try:
            return [_top_rule(rules, "simplify", e)[0] for _ in range(60)]
        finally:
            rules.set_chaos(None)

    first = picks(7)
    assert set(first) == set(matching)
    assert picks(7) == first
    assert _top_rule(rules, "simplify", e)[0] == REF.call("simplify", e)[0]


def test_counters_and_trace(tmp_path):
    rs = load_sources(SOURCES, ENV, cache_dir=tmp_path)
    log = []
    rs.trace = lambda rule, args, result: log.append((rule.where, args, result))
    assert rs.call("simplify", ("neg", ("neg", ("var", 0)))) == ("var", 0)
    assert rs.call("simplify", ("neg", ("neg", ("var", 1)))) == ("var", 1)
    assert rs.call("simplify", ("neg", ("add", ("var", 0), ("const", 0)))) == ("neg", ("var", 0))
    assert rs.call("simplify", ("var", 0)) == ("var", 0)
    assert rs.call("pick", ("var", 0), 5) == ("const", 5)
    where = {r.text: r.where for r in rs.rules}
    neg_neg = where["(simplify (neg (neg x)))"]
    add_zero = where["(simplify (add x (const 0)))"]
    neg_rec = where["(simplify (neg x))"]
    leaf = where["(simplify x @ (is_leaf))"]
    assert neg_neg == "simplify.isle:4"
    c = rs.counters
    assert c[neg_neg] == 2 and c[add_zero] == 1 and c[neg_rec] == 1 and c[leaf] == 1
    assert c[where["(pick _ k)"]] == 1
    assert sum(c.values()) == 6
    # The nested rewrite is reported before the rule whose right-hand side asked for it.
    assert [w for w, _, _ in log] == [neg_neg, neg_neg, add_zero, neg_rec, leaf, where["(pick _ k)"]]
    assert log[2] == (add_zero, (("add", ("var", 0), ("const", 0)),), ("var", 0))
    rs.reset_counters()
    assert sum(rs.counters.values()) == 0


def test_no_rule_matches_returns_none(rules):
    assert rules.call("simplify", ("bin", "Sub", ("var", 0), ("var", 1))) == ("bin", "Sub", ("var", 1), ("var", 0))
    assert rules.call("simplify", ("mul", ("var", 0), ("var", 1))) is None


def test_budget_bounds_nested_work(tmp_path):
    rs = load_sources(SOURCES, ENV, cache_dir=tmp_path)
    # (simplify (neg x)) asks for (simplify x): two invocations in all.
    e = ("neg", ("add", ("var", 0), ("const", 0)))
    assert rs.call("simplify", e) == ("neg", ("var", 0)) and not rs.exhausted
    rs.budget = 1
    assert rs.call("simplify", e) is None and rs.exhausted
    assert rs.call("simplify", ("neg", ("neg", ("var", 0)))) == ("var", 0) and not rs.exhausted
    rs.budget = 2
    assert rs.call("simplify", e) == ("neg", ("var", 0)) and not rs.exhausted
    rs.budget = None
    seen = []
    rs.budget_hook = lambda term, args: seen.append(args) or len(seen) < 2
    assert rs.call("simplify", e) is None and rs.exhausted
    assert seen == [(e,), (e[1],)]
    rs.budget_hook = None
    assert rs.call("simplify", e) == ("neg", ("var", 0)) and not rs.exhausted


def test_call_errors(rules):
    with pytest.raises(KeyError):
        rules.call("nope", 1)
    with pytest.raises(TypeError):
        rules.call("pick", ("var", 0))


def test_missing_host_function_is_reported(tmp_path):
    env = dict(ENV)
    del env["mk_neg"]
    with pytest.raises(RuleError) as info:
        load_sources(SOURCES, env, cache_dir=tmp_path)
    (d,) = info.value.diagnostics
    line = SOURCES[0][1].splitlines().index("(extern constructor neg mk_neg)") + 1
    assert (d.pos.file, d.pos.line, d.pos.col) == ("prelude.isle", line, 1)
    assert "mk_neg" in d.message


def test_enum_binding_to_a_host_class(tmp_path):
    import enum

    class Op(enum.Enum):
        Add = "+"
        Sub = "-"
        Mul = "*"

    rs = load_sources(SOURCES, ENV, enums={"Op": Op}, cache_dir=tmp_path)
    assert rs.call("simplify", ("bin", Op.Add, ("var", 0), ("var", 1))) == ("add", ("var", 0), ("var", 1))
    assert rs.call("simplify", ("bin", "Add", ("var", 0), ("var", 1)))[0] == "bin"  # not Op.Add


# -- the cache ------------------------------------------------------------------------------

def _write(dir, text):
    (dir / "prelude.isle").write_text(SOURCES[0][1])
    (dir / "simplify.isle").write_text(text)
    return [dir / "prelude.isle", dir / "simplify.isle"]


def test_cache_is_reused_and_invalidated_when_a_file_changes(tmp_path):
    src, cache = tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    paths = _write(src, SOURCES[1][1])
    first = load_rules(paths, ENV, cache_dir=cache)
    assert not first.from_cache
    assert len(list(cache.glob("*.py"))) == 1
    again = load_rules(paths, ENV, cache_dir=cache)
    assert again.from_cache and again.source == first.source
    assert again.call("simplify", ("neg", ("neg", ("var", 0)))) == ("var", 0)

    changed = SOURCES[1][1].replace("(rule 10 (simplify (neg (neg x))) x)",
                                    "(rule 10 (simplify (neg (neg x))) (const 7))")
    paths = _write(src, changed)
    fresh = load_rules(paths, ENV, cache_dir=cache)
    assert not fresh.from_cache
    assert fresh.call("simplify", ("neg", ("neg", ("var", 0)))) == ("const", 7)
    assert load_rules(paths, ENV, cache_dir=cache).from_cache


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    first = load_sources(SOURCES, ENV, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.py")
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\xff\xfe not python (",
                      "flip": data.replace(b"return (", b"return  ("), "empty": b""}[damage])
    rebuilt = load_sources(SOURCES, ENV, cache_dir=tmp_path)
    assert not rebuilt.from_cache and rebuilt.source == first.source
    assert rebuilt.call("simplify", ("add", ("var", 1), ("const", 0))) == ("var", 1)
    assert load_sources(SOURCES, ENV, cache_dir=tmp_path).from_cache


def test_default_cache_dir_is_overridable(monkeypatch, tmp_path):
    from deadeye.lower.dsl import default_cache_dir

    monkeypatch.setenv("DEADEYE_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "rules"
    monkeypatch.delenv("DEADEYE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "deadeye" / "rules"
    rs = load_sources(SOURCES, ENV)
    assert list((tmp_path / "xdg" / "deadeye" / "rules").glob("*.py"))
    assert rs.call("simplify", ("var", 0)) == ("var", 0)


V0, V1, C0, C1, C2 = ("var", 0), ("var", 1), ("const", 0), ("const", 1), ("const", 2)
EVERY_RULE_INPUTS = [
    ("simplify", ("add", V0, C0)), ("simplify", ("mul", V1, C0)), ("simplify", ("neg", ("neg", V0))),
    ("simplify", ("add", V1, V1)), ("simplify", ("mul", V0, C1)), ("simplify", ("add", C1, C2)),
    ("simplify", ("mul", C2, C2)), ("simplify", ("mul", C1, C2)), ("simplify", ("add", ("neg", V0), V0)),
    ("simplify", ("mul", V0, C2)), ("simplify", ("bin", "Add", V0, V1)), ("simplify", ("bin", "Mul", V0, V1)),
    ("simplify", ("neg", C2)), ("simplify", ("bin", "Sub", V1, V1)), ("simplify", C1),
    ("simplify", ("add", V0, ("add", V1, V0))), ("simplify", ("mul", V0, ("mul", V1, V0))),
    ("simplify", ("neg", ("add", V0, C0))), ("simplify", ("add", V0, V1)),
    ("simplify", ("bin", "Sub", V0, V1)),
    ("pick", V0, 0), ("pick", ("add", V0, V1), 1), ("pick", ("mul", V1, V0), 1), ("pick", ("add", V0, V1), 2),
    ("pick", ("neg", ("neg", C2)), 2), ("pick", V0, 2), ("pick", V0, 3),
]


def test_every_rule_fires_and_agrees_with_the_reference(tmp_path):
    rs = load_sources(SOURCES, ENV, cache_dir=tmp_path)
    for term, *args in EVERY_RULE_INPUTS:
        assert _top_rule(rs, term, *args) == REF.call(term, *args), (term, args)
        assert [r.id for r in rs.matching(term, *args)] == REF.all_matching(term, *args)
    assert [w for w, n in rs.counters.items() if n == 0] == []


# -- code generation corners -------------------------------------------------------------

def _load(tmp_path, text, env):
    return load_sources([("x.isle", text)], env, cache_dir=tmp_path)


def test_names_that_mangle_alike_stay_distinct(tmp_path):
    text = """
(type T (primitive object))
(type E (enum a-b a_b))
(decl a-b (T) T)
(decl a_b (T) T)
(extern extractor a-b ex1)
(extern extractor a_b ex2)
(decl f-g (T) T)
(decl f_g (T) T)
(decl pick (T) E)
(rule (f-g (a-b x)) x)
(rule (f_g (a_b x)) x)
(rule 1 (pick (a-b _)) E.a-b)
(rule (pick _) E.a_b)
"""
    env = {"ex1": lambda v: v[1] if v[0] == 1 else None, "ex2": lambda v: v[1] if v[0] == 2 else None}
    rs = _load(tmp_path, text, env)
    assert rs.call("f-g", (1, "one")) == "one" and rs.call("f-g", (2, "two")) is None
    assert rs.call("f_g", (2, "two")) == "two" and rs.call("f_g", (1, "one")) is None
    assert rs.call("pick", (1, 0)) == "a-b" and rs.call("pick", (2, 0)) == "a_b"


def test_if_let_can_rebind_a_variable_as_an_equality(tmp_path):
    text = """
(type int (primitive int))
(decl double (int) int)
(extern constructor double c_double)
(decl half_of_double (int int) int)
(rule 1 (half_of_double x y) (if-let y (double x)) x)
(rule (half_of_double _ _) -1)
"""
    rs = _load(tmp_path, text, {"c_double": lambda k: 2 * k})
    assert rs.call("half_of_double", 3, 6) == 3
    assert rs.call("half_of_double", 3, 7) == -1
    assert "(v1 := C_double(a0)) is not None and a1 == v1" in rs.term_source("half_of_double")


def _chain(depth: int) -> str:
    pat = "x"
    for _ in range(depth):
        pat = f"(wrap {pat} _)"
    return f"""
(type T (primitive object))
(decl wrap (T T) T)
(extern extractor wrap ex_wrap)
(decl unwrap (T) T)
(rule (unwrap {pat}) x)
"""


def test_deep_patterns_compile_or_are_refused(tmp_path):
    env = {"ex_wrap": lambda v: v if isinstance(v, tuple) else None}
    rs = _load(tmp_path, _chain(40), env)
    v = "core"
    for _ in range(40):
        v = (v, None)
    assert rs.call("unwrap", v) == "core"
    assert rs.call("unwrap", v[0]) is None
    with pytest.raises(RuleError) as info:
        _load(tmp_path, _chain(150), env)
    (d,) = info.value.diagnostics
    assert d.pos.line == 6 and "nested too deeply" in d.message


def test_compiler_changes_invalidate_the_cache(tmp_path, monkeypatch):
    from deadeye.lower.dsl import runtime

    assert load_sources(SOURCES, ENV, cache_dir=tmp_path).from_cache is False
    assert load_sources(SOURCES, ENV, cache_dir=tmp_path).from_cache is True
    key = runtime.cache_key(SOURCES)
    monkeypatch.setattr(runtime, "compiler_fingerprint", lambda: "another-compiler")
    assert runtime.cache_key(SOURCES) != key
    assert load_sources(SOURCES, ENV, cache_dir=tmp_path).from_cache is False


def test_cache_keeps_a_bounded_number_of_entries(tmp_path, monkeypatch):
    from deadeye.lower.dsl import runtime

    monkeypatch.setattr(runtime, "_CACHE_KEEP", 3)
    (tmp_path / "notes.py").write_text("# not ours\n")
    for n in range(6):
        load_sources([("p.isle", SOURCES[0][1]), ("r.isle", SOURCES[1][1] + f";; edit {n}\n")], ENV,
                     cache_dir=tmp_path)
    ours = [p for p in tmp_path.glob("*.py") if p.name != "notes.py"]
    assert len(ours) == 3 and (tmp_path / "notes.py").exists()


def test_use_cache_false_writes_nothing(tmp_path):
    rs = load_sources(SOURCES, ENV, cache_dir=tmp_path, use_cache=False)
    assert not rs.from_cache and list(tmp_path.iterdir()) == []
