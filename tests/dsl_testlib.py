"""A toy term language for the rule-language tests: expression trees as tuples
(("add", a, b), ("mul", a, b), ("neg", a), ("const", k), ("var", i), ("bin", op, a, b)),
the host functions binding its extractors and constructors, a rule program over it, and a
naive reference matcher that interprets the parsed rules directly (trying rules in
priority order), independent of the decision-tree compiler."""

from __future__ import annotations

from hypothesis import strategies as st

from deadeye.lower.dsl import ast as A
from deadeye.lower.dsl import parse_text, typecheck

PRELUDE = """\
;; the toy language's types and terms
(type int (primitive int))
(type Expr (primitive tuple))
(type Op (enum Add Sub Mul))

(decl add (Expr Expr) Expr)
(decl mul (Expr Expr) Expr)
(decl neg (Expr) Expr)
(decl const (int) Expr)
(decl var (int) Expr)
(decl bin (Op Expr Expr) Expr)
(decl is_leaf () Expr)
(extern extractor add ex_add)
(extern constructor add mk_add)
(extern extractor mul ex_mul)
(extern constructor mul mk_mul)
(extern extractor neg ex_neg)
(extern constructor neg mk_neg)
(extern extractor const ex_const)
(extern constructor const mk_const)
(extern extractor var ex_var)
(extern extractor bin ex_bin)
(extern constructor bin mk_bin)
(extern extractor is_leaf ex_is_leaf)
(disjoint add mul neg const var bin)

(decl small (int) int)
(extern constructor small c_small)
(decl even (int) int)
(extern constructor even c_even)
(decl plus (int int) int)
(extern constructor plus c_plus)
"""

RULES = """\
(decl simplify (Expr) Expr)
(rule 10 (simplify (add x (const 0))) x)
(rule 10 (simplify (mul _ (const 0))) (const 0))
(rule 10 (simplify (neg (neg x))) x)
(rule 9 (simplify (add x x)) (mul x (const 2)))
(rule 9 (simplify (mul x (const 1))) x)
(rule 8 (simplify (add (const a) (const b))) (const (plus a b)))
(rule 8 (simplify (mul (const a) (const b))) (if (even a)) (const 0))
(rule 7 (simplify (add (neg x) x)) (const 0))
(rule 7 (simplify (mul x (const k))) (if-let j (small k)) (add x (const j)))
(rule 6 (simplify (bin Op.Add a b)) (add a b))
(rule 6 (simplify (bin Op.Mul a b)) (mul a b))
(rule 6 (simplify (neg (const k))) (const (plus k 1)))
(rule 5 (simplify (bin _ a a)) a)
(rule 4 (simplify x @ (is_leaf)) x)
(rule 3 (simplify (add a (add b c))) (add (add a b) c))
(rule 3 (simplify (mul a (mul b c))) (mul (mul a b) c))
(rule 2 (simplify (neg x)) (if-let y (simplify x)) (neg y))
(rule 1 (simplify (add a b)) (add b a))
(rule 0 (simplify (bin o a b)) (bin o b a))

(decl pick (Expr int) Expr)
(rule 2 (pick e 0) e)
(rule 1 (pick (add a _) 1) a)
(rule 1 (pick (mul a _) 1) a)
(rule 1 (pick (add _ b) 2) b)
(rule 1 (pick (neg (neg e @ (const k))) k) e)
(rule 0 (pick e k) (if (even k)) (neg e))
(rule -1 (pick _ k) (const k))
"""


def _ext(tag: str, arity: int):
    def extract(v):
        if isinstance(v, tuple) and v[0] == tag:
            return v[1] if arity == 1 else v[1:]
        return None

    return extract


ENV = {
    "ex_add": _ext("add", 2), "mk_add": lambda a, b: ("add", a, b),
    "ex_mul": _ext("mul", 2), "mk_mul": lambda a, b: ("mul", a, b),
    "ex_neg": _ext("neg", 1), "mk_neg": lambda a: ("neg", a),
    "ex_const": _ext("const", 1), "mk_const": lambda k: ("const", k),
    "ex_var": _ext("var", 1),
    "ex_bin": _ext("bin", 3), "mk_bin": lambda o, a, b: ("bin", o, a, b),
    "ex_is_leaf": lambda v: v[0] in ("const", "var"),
    "c_small": lambda k: k - 1 if k < 3 else None,
    "c_even": lambda k: k % 2 == 0,
    "c_plus": lambda a, b: a + b,
}

SOURCES = [("prelude.isle", PRELUDE), ("simplify.isle", RULES)]


def exprs():
    leaves = st.one_of(st.builds(lambda k: ("const", k), st.integers(0, 3)),
                       st.builds(lambda i: ("var", i), st.integers(0, 1)))

    def grow(kids):
        return st.one_of(
            st.builds(lambda a, b: ("add", a, b), kids, kids),
            st.builds(lambda a, b: ("mul", a, b), kids, kids),
            st.builds(lambda a: ("neg", a), kids),
            st.builds(lambda o, a, b: ("bin", o, a, b), st.sampled_from(["Add", "Sub", "Mul"]), kids, kids),
        )

    return st.recursive(leaves, grow, max_leaves=6)


class Reference:
    """Interprets the parsed rules: try each term's rules by priority (then file order)."""

    def __init__(self, sources, env):
        prog = A.Program()
        for name, text in sources:
            prog.extend(parse_text(text, name))
        self.checked = typecheck(prog)
        self.env = env
        self.index = {id(r): i for i, r in enumerate(prog.rules)}

    def _extract(self, term, value):
        t = self.checked.terms[term]
        out = self.env[t.extractor.py_name](value)
        if t.arity == 0:
            return () if out else None
        if out is None:
            return None
        return (out,) if t.arity == 1 else tuple(out)

    def match(self, p, v, env) -> bool:
        if isinstance(p, A.PWild):
            return True
        if isinstance(p, (A.PVar, A.PBind)):
            if p.name in env:
                if env[p.name] != v:
                    return False
            else:
                env[p.name] = v
            return self.match(p.pat, v, env) if isinstance(p, A.PBind) else True
        if isinstance(p, A.PInt):
            return v == p.value
        if isinstance(p, A.PEnum):
            return v == p.variant
        outs = self._extract(p.term, v)
        return outs is not None and all(self.match(q, o, env) for q, o in zip(p.args, outs))

    def eval(self, e, env):
        if isinstance(e, A.EVar):
            return env[e.name]
        if isinstance(e, A.EInt):
            return e.value
        if isinstance(e, A.EEnum):
            return e.variant
        args = [self.eval(a, env) for a in e.args]
        t = self.checked.terms[e.term]
        if t.constructor is not None:
            return self.env[t.constructor.py_name](*args)
        hit = self.call(e.term, *args)
        return None if hit is None else hit[1]

    def _env_if_matches(self, rule, args):
        env: dict = {}
        if not all(self.match(p, a, env) for p, a in zip(rule.lhs.args, args)):
            return None
        for g in rule.guards:
            v = self.eval(g.expr, env)
            if isinstance(g, A.IfLet):
                if v is None or not self.match(g.pat, v, env):
                    return None
            elif v is None or v is False:
                return None
        return env

    def ordered(self, term):
        rules = self.checked.terms[term].rules
        return sorted(rules, key=lambda r: (-r.priority, self.index[id(r)]))

    def call(self, term, *args):
        """(rule id, result) of the first matching rule by priority, or None."""
        for r in self.ordered(term):
            env = self._env_if_matches(r, args)
            if env is not None:
                return self.index[id(r)], self.eval(r.rhs, env)
        return None

    def all_matching(self, term, *args) -> list[int]:
        return sorted(self.index[id(r)] for r in self.ordered(term)
                      if self._env_if_matches(r, args) is not None)
