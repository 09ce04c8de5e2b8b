"""The mid-end's domain for `deadeye rules test` (`lower/dsl/ruletest.py`): builds IR
instances of rule patterns over `simplify` and evaluates both sides with `ir.numerics`.

Instances are small expression trees in a scratch function. Free values of the patterns
become leaves: usually a parameter, sometimes a constant, a comparison or an eqz (so that
guards such as `is_bool`/`not_const` see both answers). Types are inferred while the
pattern is built bottom-up: a leaf, or a constant whose type is a wildcard, stays untyped
until the operation using it fixes its type, and a wildcard type takes one the operation
admits. Evaluation is a direct walk over the tree with `ir.numerics` (every operand is
evaluated, as Wasm does, so a trap anywhere is the outcome)."""

from __future__ import annotations

from deadeye.ir import numerics
from deadeye.ir.errors import Trap
from deadeye.ir.function import Function, Instruction, Value
from deadeye.ir.opcodes import OPS as IR_OPS
from deadeye.ir.types import FuncType, ValType
from deadeye.opt.rule_env import (
    ARITY, COMPARES, CONST_TYPES, INT_TYPES, MASK, OP_NAMES, OP_VARIANTS, SCALAR, RuleEnv, Session,
)

INTERESTING_INTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 31, 32, 33, 48, 56, 63, 64, 100, 1000,
                    641, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 2**63 - 1, 2**63,
                    2**64 - 1, 2**64 - 2, 0x3F800000, 0x7FC00000, 0x7FA00001, 0xFF800000,
                    0x3FF0000000000000, 0x7FF8000000000000, 0x7FF4000000000001]
INTERESTING_BITS = {
    ValType.I32: [0, 1, 2, 7, 31, 32, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFF, 0xFFFFFFF9],
    ValType.I64: [0, 1, 2, 7, 63, 64, 0xFFFFFFFF, 0x80000000, 2**63 - 1, 2**63, 2**64 - 1],
    ValType.F32: [0, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000, 0x7FC00000,
                  0xFFC00000, 0x7FA00001, 0x4F000000, 0x00000001],
    ValType.F64: [0, 2**63, 0x3FF0000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
                  0x7FF8000000000000, 0x7FF4000000000001, 0x41E0000000000000, 1],
}
INPUTS_PER_INSTANCE = 12
COMMON_OPS = ["Add", "Sub", "Mul", "And", "Or", "Xor", "Eq", "Ne", "Shl", "ShrS", "ShrU",
              "Rotl", "Rotr", "DivS", "DivU", "RemS", "RemU", "LtU", "GeS"]


class TyHole:
    """A wildcard or variable of type Ty: fixed by the first operation that needs it."""

    __slots__ = ("value",)

    def __init__(self):
        self.value: ValType | None = None


def _sig(name: str):
    s = numerics.SIGNATURES[name]
    return s.params, s.results[0]


class IRDomain:
    term = "simplify"

    def __init__(self, env: RuleEnv):
        self.env = env
        self.func: Function | None = None
        self.params: list[Value] = []
        self._holes: dict[Value, TyHole] = {}

    # -- instances -----------------------------------------------------------------------
    def begin(self, data) -> None:
        self.func = Function("ruletest", FuncType((), ()))
        self.block = self.func.new_block()
        self.params = []
        self.ints: list[int] = []
        self._holes = {}
        self.env.session = Session(self.func)

    def _param(self, ty=None) -> Value:
        v = self.func.new_value(ty, self.block)
        self.params.append(v)
        return v

    def _instr(self, name: str, args, imm, rtype) -> Value:
        ins = Instruction(IR_OPS[name], args, imm)
        ins.block = self.block
        ins.results = (self.func.new_value(rtype, ins, 0),)
        return ins.results[0]

    def leaf(self, data, type_name: str):
        from hypothesis import strategies as st

        if type_name == "Value":
            kind = data.draw(st.sampled_from(["param", "param", "param", "const", "bool"]))
            if kind == "param":
                return self._param()
            if kind == "const":
                return self._instr("i32.const", (), (data.draw(self._ints()),), None)
            ty = data.draw(st.sampled_from(INT_TYPES))
            if data.draw(st.booleans()):
                op = data.draw(st.sampled_from(sorted(c for c in COMPARES if (ty, c) in OP_NAMES)))
                return self._instr(OP_NAMES[(ty, op)], (self._param(ty), self._param(ty)), (),
                                   ValType.I32)
            return self._instr(OP_NAMES[(ty, "Eqz")], (self._param(ty),), (), ValType.I32)
        if type_name == "Ty":
            return TyHole()
        if type_name == "Op":
            # Half the time one of the ops rules name most (guards such as `commutes` or
            # `is_shift` then pass often enough).
            return data.draw(st.one_of(st.sampled_from(COMMON_OPS), st.sampled_from(OP_VARIANTS)))
        if type_name == "bool":
            return data.draw(st.booleans())
        kinds = ["interesting", "small", "any"] + (["related"] if self.ints else [])
        kind = data.draw(st.sampled_from(kinds))
        if kind == "related":
            # Guards relate constants (shift counts adding up to the width...).
            a = data.draw(st.sampled_from(self.ints))
            k = data.draw(st.sampled_from([a, 32 - a, 64 - a, a + 1, a - 1])) % 2**64
        else:
            k = data.draw({"interesting": st.sampled_from(INTERESTING_INTS),
                           "small": st.integers(0, 64), "any": st.integers(0, 2**64 - 1)}[kind])
        self.ints.append(k)
        return k

    @staticmethod
    def _ints():
        from hypothesis import strategies as st

        return st.one_of(st.sampled_from(INTERESTING_INTS), st.integers(0, 2**64 - 1),
                         st.integers(0, 40))

    def literal(self, type_name: str, value):
        if type_name == "Ty":
            return getattr(ValType, value)
        return value

    @staticmethod
    def _fit(v: Value, ty: ValType) -> bool:
        """Give an untyped value type `ty` (constants are truncated to it); does v have it?"""
        if v.type is None:
            v.type = ty
            d = v.defn
            if isinstance(d, Instruction) and d.op.name in CONST_TYPES:
                d.op = IR_OPS[f"{ty}.const"]
                d.imm = (d.imm[0] & MASK[ty],)
            return True
        return v.type == ty

    @staticmethod
    def _ty(ty):
        if isinstance(ty, TyHole):
            return ty.value
        return ty

    def _choose(self, data, ty, candidates):
        """Resolve `ty` (a ValType or a hole) among `candidates`; None if impossible."""
        from hypothesis import strategies as st

        fixed = self._ty(ty)
        if fixed is not None:
            return fixed if fixed in candidates else None
        if not candidates:
            return None
        chosen = data.draw(st.sampled_from(sorted(candidates)))
        if isinstance(ty, TyHole):
            ty.value = chosen
        return chosen

    def build(self, data, term: str, args: tuple):
        if term == "const":
            ty, k = args
            fixed = self._ty(ty)
            if fixed is None:
                # Typed by its user; a hole left open would be resolved with it.
                v = self._instr("i32.const", (), (k,), None)
                if isinstance(ty, TyHole):
                    self._pending_hole(v, ty)
                return v
            if fixed not in SCALAR:
                return None
            return self._instr(f"{fixed}.const", (), (k & MASK[fixed],), fixed)
        if term in ("unary", "binary"):
            ty, op, *operands = args
            arity = 1 if term == "unary" else 2

            def admits(t):
                name = OP_NAMES.get((t, op))
                if name is None or ARITY[name] != arity:
                    return False
                params, _ = _sig(name)
                return all(o.type is None or o.type == p for o, p in zip(operands, params))

            t = self._choose(data, ty, [t for t in SCALAR if admits(t)])
            if t is None or not admits(t):
                return None
            name = OP_NAMES[(t, op)]
            params, result = _sig(name)
            for o, p in zip(operands, params):
                self._fit(o, p)
                self._settle(o)
            return self._instr(name, tuple(operands), (), result)
        if term == "select":
            x, y, c = args
            if not self._fit(c, ValType.I32):
                return None
            t = x.type or y.type
            if t is None:
                from hypothesis import strategies as st

                t = data.draw(st.sampled_from(SCALAR))
            if not (self._fit(x, t) and self._fit(y, t)):
                return None
            for o in (x, y, c):
                self._settle(o)
            return self._instr("select", (x, y, c), (), t)
        return None

    # A const built with an open type hole: when its type gets fixed, so does the hole.
    def _pending_hole(self, v: Value, hole: TyHole) -> None:
        self._holes[v] = hole

    def _settle(self, v: Value) -> None:
        hole = self._holes.pop(v, None)
        if hole is not None and hole.value is None:
            hole.value = v.type

    # -- evaluation ----------------------------------------------------------------------
    def compare(self, data, lhs, rhs) -> str | None:
        from hypothesis import strategies as st

        if not isinstance(rhs, Value):
            return f"right-hand side is {rhs!r}, not a value"
        if rhs.type != lhs.type:
            return f"type changed: {lhs.type} -> {rhs.type}"
        for p in self.params:
            if p.type is None:
                p.type = ValType.I32
        for _ in range(INPUTS_PER_INSTANCE):
            inputs = {}
            for p in self.params:
                bits = (1 << {ValType.I32: 32, ValType.I64: 64, ValType.F32: 32,
                              ValType.F64: 64}[p.type]) - 1
                inputs[p] = data.draw(st.one_of(st.sampled_from(INTERESTING_BITS[p.type]),
                                                st.integers(0, bits)))
            a, b = evaluate(lhs, inputs), evaluate(rhs, inputs)
            if a != b:
                shown = ", ".join(f"{p!r}:{p.type}={inputs[p]:#x}" for p in self.params)
                return (f"{describe(lhs)} gives {a} but {describe(rhs)} gives {b} "
                        f"for {shown or 'no inputs'}")
        return None


def evaluate(v: Value, inputs: dict, memo=None):
    """("value", bits) or ("trap", message) of the expression tree defining v."""
    memo = {} if memo is None else memo
    if v in memo:
        return memo[v]
    d = v.defn
    if not isinstance(d, Instruction):
        out = ("value", inputs[v])
    elif d.op.name in CONST_TYPES:
        out = ("value", d.imm[0])
    else:
        vals = []
        out = None
        for a in d.args:
            r = evaluate(a, inputs, memo)
            if r[0] == "trap":
                out = r
                break
            vals.append(r[1])
        if out is None:
            if d.op.name == "select":
                out = ("value", vals[0] if vals[2] else vals[1])
            else:
                try:
                    out = ("value", numerics.OPS[d.op.name](*vals))
                except Trap as e:
                    out = ("trap", str(e))
    memo[v] = out
    return out


def describe(v: Value, depth: int = 0) -> str:
    d = v.defn
    if not isinstance(d, Instruction):
        return f"{v!r}"
    if d.op.name in CONST_TYPES:
        return f"({d.op.name} {d.imm[0]:#x})"
    if depth > 6:
        return "(...)"
    return f"({d.op.name} {' '.join(describe(a, depth + 1) for a in d.args)})"


def load_checked(paths):
    """(CheckedProgram, RuleSet, IRDomain) for the rule files under `paths`."""
    from deadeye.lower.dsl import check_sources, read_sources
    from deadeye.opt.rewrite import load

    sources = read_sources(paths)
    prog = check_sources(sources)
    rs, env = load(paths)
    rs.budget = None
    return prog, rs, IRDomain(env)
