"""The host side of the mid-end rules (`rules/opts/*.isle`): the extractors and
constructors their `extern` declarations name, over the IR.

Vocabulary (declared in `rules/opts/prelude.isle`):
- `Ty` is bound to `ValType` (so `Ty.I32` is `ValType.I32`); `Op` is the suffix of a scalar
  Wasm operator in CamelCase (`Add`, `DivS`, `ExtendI32U`), and `(ty, op)` names the op
  `f"{ty}.{snake(op)}"`: `ty` is the type *in the op's name* (i64 for `i64.eqz`, i32 for
  `i32.wrap_i64`), not necessarily its result type.
- Extractors `const`, `unary`, `binary`, `select` look at a Value's defining
  instruction; their constructors build a new instruction through a `Session` (the
  rewrite driver's state: where new instructions go, the function that numbers values).
- Everything else is a pure function of ints (folding through `ir.numerics`, powers of
  two, magic numbers...). A helper returns None when it does not apply, so it can be a
  guard.

`OP_NAMES` maps (ValType, Op) to the Wasm op name; it is derived from `ir.numerics`, the
enum in prelude.isle must list exactly `OP_VARIANTS` (a test checks it)."""

from __future__ import annotations

import re

from deadeye.ir import numerics
from deadeye.ir.errors import Trap
from deadeye.ir.function import Function, Instruction, Value
from deadeye.ir.opcodes import OPS as IR_OPS
from deadeye.ir.types import ValType

SCALAR = (ValType.I32, ValType.I64, ValType.F32, ValType.F64)
INT_TYPES = (ValType.I32, ValType.I64)
BITS = {ValType.I32: 32, ValType.I64: 64, ValType.F32: 32, ValType.F64: 64, ValType.V128: 128}
MASK = {t: (1 << b) - 1 for t, b in BITS.items()}
CONST_TYPES = {f"{t}.const": t for t in (*SCALAR, ValType.V128)}


def camel(suffix: str) -> str:
    return "".join(p.capitalize() for p in suffix.split("_"))


# (ValType, Op) -> op name and back, for every scalar numeric op of ir.numerics.
OP_NAMES: dict[tuple[ValType, str], str] = {}
OP_OF: dict[str, tuple[ValType, str]] = {}
for _name in numerics.OPS:
    _m = re.fullmatch(r"(i32|i64|f32|f64)\.(\w+)", _name)
    if _m and _name not in numerics.IMMEDIATE:
        _key = (ValType.from_name(_m.group(1)), camel(_m.group(2)))
        OP_NAMES[_key] = _name
        OP_OF[_name] = _key
OP_VARIANTS = sorted({op for _, op in OP_NAMES})
ARITY = {name: len(numerics.SIGNATURES[name].params) for name in OP_OF}
RESULT = {name: numerics.SIGNATURES[name].results[0] for name in OP_OF}

COMPARES = {"Eq", "Ne", "LtS", "LtU", "GtS", "GtU", "LeS", "LeU", "GeS", "GeU",
            "Lt", "Gt", "Le", "Ge"}
# Integer comparison -> its negation (exact: integers are totally ordered; not so floats,
# where NaN makes both a < b and a >= b false).
INVERSE = {"Eq": "Ne", "Ne": "Eq", "LtS": "GeS", "GeS": "LtS", "LtU": "GeU", "GeU": "LtU",
           "GtS": "LeS", "LeS": "GtS", "GtU": "LeU", "LeU": "GtU"}
# x op x for integers: true for the reflexive comparisons.
SELF_COMPARE = {"Eq": 1, "LeS": 1, "LeU": 1, "GeS": 1, "GeU": 1,
                "Ne": 0, "LtS": 0, "LtU": 0, "GtS": 0, "GtU": 0}
INT_COMMUTATIVE = {"Add", "Mul", "And", "Or", "Xor", "Eq", "Ne"}
INT_ASSOCIATIVE = {"Add", "Mul", "And", "Or", "Xor"}
SHIFTS = {"Shl", "ShrS", "ShrU", "Rotl", "Rotr"}


# Narrow unsigned loads: the bits they can set.
_LOAD_BITS = {"i32.load8_u": 0xFF, "i32.load16_u": 0xFFFF, "i64.load8_u": 0xFF,
              "i64.load16_u": 0xFFFF, "i64.load32_u": 0xFFFFFFFF}


def may_be_set(v: Value, depth: int = 0) -> int:
    """A mask of the bits of integer value v that can be 1 (a bit outside it is 0 for
    every execution), from v's definition; the full mask when unknown."""
    full = MASK.get(v.type, 0)
    d = v.defn
    if not isinstance(d, Instruction) or depth > 8:
        return full
    name = d.op.name
    if name in CONST_TYPES:
        return d.imm[0]
    if name in _LOAD_BITS:
        return _LOAD_BITS[name]
    key = OP_OF.get(name)
    if key is None:
        return full
    ty, op = key
    if op in COMPARES or op == "Eqz":
        return 1
    if op in ("Clz", "Ctz", "Popcnt"):
        return 0x7F
    if op == "ExtendI32U":
        return may_be_set(d.args[0], depth + 1)
    if op == "And":
        return may_be_set(d.args[0], depth + 1) & may_be_set(d.args[1], depth + 1)
    if op in ("Or", "Xor"):
        return may_be_set(d.args[0], depth + 1) | may_be_set(d.args[1], depth + 1)
    if op == "ShrU":
        c = d.args[1].defn
        if isinstance(c, Instruction) and c.op.name in CONST_TYPES:
            return may_be_set(d.args[0], depth + 1) >> (c.imm[0] % BITS[ty])
    return full


class Session:
    """Where constructors put new instructions: before `anchor` (the instruction being
    rewritten), in `func`. `created` collects them in creation order."""

    def __init__(self, func: Function, nan_canonicalization: bool = False):
        self.func = func
        self.nan_canonicalization = nan_canonicalization
        self.anchor: Instruction | None = None
        self.created: list[Instruction] = []
        # Canonical constants: (op name, bits) -> Value, when the driver keeps one
        # definition per constant; new ones are collected in new_consts (for the entry).
        self.consts: dict[tuple[str, int], Value] | None = None
        self.new_consts: list[Instruction] = []

    def build(self, name: str, args, imm: tuple, rtype: ValType) -> Value:
        anchor = self.anchor
        ins = Instruction(IR_OPS[name], args, imm, offset=None if anchor is None else anchor.offset)
        ins.block = None if anchor is None else anchor.block
        ins.results = (self.func.new_value(rtype, ins, 0),)
        self.created.append(ins)
        return ins.results[0]


class RuleEnv:
    """The `env` of `load_rules`: one instance per RuleSet; the driver sets `session`."""

    def __init__(self):
        self.session: Session | None = None

    # -- extractors over Values ----------------------------------------------------------
    @staticmethod
    def _defn(v):
        d = v.defn if isinstance(v, Value) else None
        return d if isinstance(d, Instruction) else None

    def ext_const(self, v):
        d = self._defn(v)
        if d is not None and d.op.name in CONST_TYPES:
            return CONST_TYPES[d.op.name], d.imm[0]
        return None

    def ext_unary(self, v):
        d = self._defn(v)
        if d is not None:
            key = OP_OF.get(d.op.name)
            if key is not None and len(d.args) == 1:
                return key[0], key[1], d.args[0]
        return None

    def ext_binary(self, v):
        d = self._defn(v)
        if d is not None:
            key = OP_OF.get(d.op.name)
            if key is not None and len(d.args) == 2:
                return key[0], key[1], d.args[0], d.args[1]
        return None

    def ext_select(self, v):
        d = self._defn(v)
        if d is not None and d.op.name == "select":
            return tuple(d.args)
        return None

    # -- constructors of instructions ----------------------------------------------------
    def mk_const(self, ty, bits):
        if ty is None or bits is None:
            return None
        s = self.session
        name, imm = f"{ty}.const", bits & MASK[ty]
        if s.consts is None:
            return s.build(name, (), (imm,), ty)
        v = s.consts.get((name, imm))
        if v is None:
            ins = Instruction(IR_OPS[name], (), (imm,))
            ins.results = (s.func.new_value(ty, ins, 0),)
            s.new_consts.append(ins)
            v = s.consts[(name, imm)] = ins.results[0]
        return v

    def _op(self, ty, op, args):
        name = OP_NAMES.get((ty, op))
        if name is None or ARITY[name] != len(args):
            return None
        return self.session.build(name, args, (), RESULT[name])

    def mk_unary(self, ty, op, x):
        return self._op(ty, op, (x,))

    def mk_binary(self, ty, op, x, y):
        return self._op(ty, op, (x, y))

    def mk_select(self, x, y, c):
        return self.session.build("select", (x, y, c), (), x.type)

    # -- pure helpers (guards and arithmetic on constants) -------------------------------
    def fold(self, ty, op, *operands):
        """The op's result on constant operands through ir.numerics; None if it traps
        (the trap must stay where it is) or the op does not exist."""
        name = OP_NAMES.get((ty, op))
        if name is None or ARITY[name] != len(operands):
            return None
        try:
            r = numerics.OPS[name](*operands)
        except Trap:
            return None
        s = self.session
        if s is not None and s.nan_canonicalization and name in numerics.NAN_CANONICALIZE:
            r = numerics.NAN_CANONICALIZE[name](r)
        return r

    def fold1(self, ty, op, a):
        return self.fold(ty, op, a)

    def fold2(self, ty, op, a, b):
        return self.fold(ty, op, a, b)

    @staticmethod
    def type_of(v):
        return v.type

    @staticmethod
    def is_int(ty):
        return ty in INT_TYPES

    @staticmethod
    def is_float(ty):
        return ty in (ValType.F32, ValType.F64)

    @staticmethod
    def is_compare(op):
        return op in COMPARES

    @staticmethod
    def is_bool(v):
        """Is v known to be 0 or 1 (a comparison or an eqz)?"""
        d = RuleEnv._defn(v)
        key = None if d is None else OP_OF.get(d.op.name)
        return key is not None and (key[1] in COMPARES or key[1] == "Eqz")

    @staticmethod
    def invert_cmp(ty, op):
        return INVERSE.get(op) if ty in INT_TYPES else None

    @staticmethod
    def self_compare(ty, op):
        return SELF_COMPARE.get(op) if ty in INT_TYPES else None

    @staticmethod
    def commutes(ty, op):
        return ty in INT_TYPES and op in INT_COMMUTATIVE

    @staticmethod
    def is_shift(op):
        return op in SHIFTS

    @staticmethod
    def not_const(v):
        d = RuleEnv._defn(v)
        return d is None or d.op.name not in CONST_TYPES

    @staticmethod
    def is_zero_shift(ty, k):
        """Shifts and rotates use the count modulo the width."""
        return ty in INT_TYPES and k % BITS[ty] == 0

    @staticmethod
    def all_ones(ty, k):
        return ty in INT_TYPES and k == MASK[ty]

    @staticmethod
    def log2(ty, k):
        """n when k == 2**n with n >= 1 (an integer type), else None."""
        if ty in INT_TYPES and k > 1 and k & (k - 1) == 0:
            return k.bit_length() - 1
        return None

    @staticmethod
    def log2_signed(ty, k):
        """n when k == 2**n is a positive signed divisor: 1 <= n <= width - 2."""
        n = RuleEnv.log2(ty, k)
        return n if n is not None and n <= BITS[ty] - 2 else None

    @staticmethod
    def associates(ty, op):
        return ty in INT_TYPES and op in INT_ASSOCIATIVE

    @staticmethod
    def low_mask(ty, k):
        """k - 1 for a power of two k >= 2."""
        return k - 1 if ty in INT_TYPES and k > 1 and k & (k - 1) == 0 else None

    @staticmethod
    def bits_minus(ty, n):
        """width - n."""
        return BITS[ty] - n

    @staticmethod
    def shift_sum(ty, a, b):
        """a + b when both counts (modulo the width) add up to less than the width."""
        if ty not in INT_TYPES:
            return None
        s = a % BITS[ty] + b % BITS[ty]
        return s if s < BITS[ty] else None

    @staticmethod
    def rotation(ty, a, b):
        """Do shifts by a and b (in 1..width-1) add up to the width?"""
        w = BITS.get(ty)
        return ty in INT_TYPES and 0 < a < w and 0 < b < w and a + b == w

    @staticmethod
    def sext_op(ty, s):
        """The sign-extension op equal to (x << s) >>s s, if there is one."""
        if ty not in INT_TYPES:
            return None
        return {8: "Extend8S", 16: "Extend16S", 32: "Extend32S"}.get(BITS[ty] - s) \
            if not (ty == ValType.I32 and BITS[ty] - s == 32) else None

    @staticmethod
    def low_bits_mask(ty, s):
        """(x << s) >>u s keeps the low width - s bits."""
        if ty not in INT_TYPES or not 0 < s < BITS[ty]:
            return None
        return (1 << (BITS[ty] - s)) - 1

    def mask_keeps_all(self, ty, x, k):
        return ty in INT_TYPES and may_be_set(x) & ~k & MASK[ty] == 0

    @staticmethod
    def sub1(n):
        return n - 1

    @staticmethod
    def minus(ty, k):
        """Two's-complement negation of k in ty's width."""
        return (-k) & MASK[ty] if ty in INT_TYPES else None

    @staticmethod
    def pick(c, x, y):
        return x if c else y

    @staticmethod
    def sdiv_magic(d):
        """For i32.div_s by a constant d (3 <= d < 2**31, not a power of two): (m, p) with
        trunc(x / d) == floor(x * m / 2**p) + (x < 0) for every i32 x, and x * m
        representable in i64. Why it is exact: write e = m*d - 2**p (0 < e < d). Then
        x*m / 2**p = x/d + x*e/(d * 2**p); with |x| <= 2**31 and e * 2**31 < 2**p the error
        term is below 1/d in magnitude, which never crosses an integer for x >= 0 and
        always moves x/d just below it for x < 0 (hence the + 1 there). `rules test`
        checks the rewrite on random and edge inputs too. None when no such p exists."""
        if not isinstance(d, int) or d < 3 or d >= 1 << 31 or d & (d - 1) == 0:
            return None
        for p in range(32, 64):
            m = -(-(1 << p) // d)
            e = m * d - (1 << p)
            if m >= 1 << 32:
                break
            if e << 31 < 1 << p:
                return m, p
        return None

    def magic_m(self, d):
        r = self.sdiv_magic(d)
        return None if r is None else r[0]

    def magic_p(self, d):
        r = self.sdiv_magic(d)
        return None if r is None else r[1]

    def bindings(self) -> dict:
        """The name -> callable mapping `load_rules` takes as env."""
        out = {}
        for name in dir(self):
            if name.startswith("_") or name in ("bindings", "session"):
                continue
            fn = getattr(self, name)
            if callable(fn):
                out[name] = fn
        return out
