"""Exact semantics of the scalar Wasm operators (i32, i64, f32, f64), over bit-pattern ints.

Import these through `deadeye.ir.numerics`, which merges this table with the SIMD one.

Value conventions: every operand and result is a Python int holding the value's bits
(i32/i64 unsigned, f32/f64 as IEEE bits). Booleans (comparisons, eqz) are the i32 0 or 1.

NaN rule (deterministic; allowed by the spec): when an arithmetic operator (add, sub, mul,
div, sqrt, min, max, ceil, floor, trunc, nearest, demote, promote) produces a NaN,
  * if some operand is a NaN, the result is the FIRST NaN operand with its quiet bit set
    (sign and payload kept; demote keeps the payload's top bits, promote pads with zeros);
  * otherwise (inf - inf, 0 * inf, 0 / 0, sqrt(-1), ...) the result is the positive
    canonical NaN 0x7fc00000 / 0x7ff8000000000000.
A canonical input therefore gives a canonical output and any other NaN an arithmetic NaN,
exactly what the spec permits. abs, neg and copysign only touch the sign bit; reinterpret is
the identity. NaN cases are decided on the bits, never by CPython float arithmetic (which can
flip NaN signs and quiets signalling NaNs on conversion).

f32 arithmetic is done in double and rounded once to single: for +, -, *, / and sqrt of two
single-precision operands that rounding is exact because double has more than 2*24+2 bits
(tests/test_numerics.py checks this against exact rational arithmetic). Where double
rounding would not be exact (i64 -> f32) the rounding is done on integers.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Callable

from .errors import Trap
from .types import ValType

# The spec's trap messages.
DIV_BY_ZERO = "integer divide by zero"
INT_OVERFLOW = "integer overflow"
INVALID_CONVERSION = "invalid conversion to integer"

CANONICAL_NAN_F32 = 0x7FC00000
CANONICAL_NAN_F64 = 0x7FF8000000000000


@dataclass(frozen=True, slots=True)
class OpInfo:
    """One operator of the table.

    `params`/`results` are the operand types as they sit on the Wasm stack. `imm` names an
    immediate the function takes as an extra trailing argument: "lane" (an int below
    `imm_limit`) or "shuffle" (a sequence of 16 ints, each below `imm_limit` = 32). `traps`
    says the function may raise `Trap`. `nan` is the lane shape ("f32", "f64", "f32x4",
    "f64x2") of a result that obeys the arithmetic NaN rule, else None: those are the results
    NaN canonicalization must rewrite."""

    name: str
    fn: Callable
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]
    imm: str | None = None
    imm_limit: int = 0
    traps: bool = False
    nan: str | None = None


_TYPES = {str(t): t for t in (ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128)}


def parse_sig(sig: str) -> tuple[tuple[ValType, ...], tuple[ValType, ...]]:
    """"i32 i32 -> i32" -> ((I32, I32), (I32,))."""
    left, right = sig.split("->")
    return tuple(_TYPES[t] for t in left.split()), tuple(_TYPES[t] for t in right.split())


def register(table: dict, namespace: dict, name: str, fn: Callable, sig: str, **kw) -> None:
    """Add `fn` to `table` under the Wasm name and publish it in `namespace` under the
    Python name ("i32.add" -> i32_add)."""
    params, results = parse_sig(sig)
    pyname = name.replace(".", "_")
    fn.__name__ = fn.__qualname__ = pyname
    namespace[pyname] = fn
    table[name] = OpInfo(name, fn, params, results, **kw)


TABLE: dict[str, OpInfo] = {}


def _reg(name: str, fn: Callable, sig: str, **kw) -> None:
    register(TABLE, globals(), name, fn, sig, **kw)


# ---------------------------------------------------------------- float <-> bits

_f32s = struct.Struct("<f")
_u32s = struct.Struct("<I")
_f64s = struct.Struct("<d")
_u64s = struct.Struct("<Q")


def f32_to_float(bits: int) -> float:
    """The value of f32 bits as a Python float (exact; NaN payloads are not preserved)."""
    return _f32s.unpack(_u32s.pack(bits))[0]


def f64_to_float(bits: int) -> float:
    return _f64s.unpack(_u64s.pack(bits))[0]


def float_to_f32(x: float) -> int:
    """Round a double to single precision (round to nearest, ties to even, subnormals and
    overflow to infinity included) and return the bits. A NaN gives some NaN: callers decide
    NaN results on the bits."""
    try:
        return _u32s.unpack(_f32s.pack(x))[0]
    except OverflowError:  # struct refuses values that round to infinity
        return 0x7F800000 if x > 0 else 0xFF800000


def float_to_f64(x: float) -> int:
    return _u64s.unpack(_f64s.pack(x))[0]


def int_to_f32(n: int) -> int:
    """Round any integer to the nearest f32 (ties to even) without double rounding."""
    if -(1 << 53) <= n <= (1 << 53):
        return float_to_f32(float(n))  # exact in double: one rounding only
    m = -n if n < 0 else n
    if m.bit_length() > 129:  # far beyond f32's range (and double's, for float())
        return 0xFF800000 if n < 0 else 0x7F800000
    shift = m.bit_length() - 24
    q = m >> shift
    r = m & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    v = float(q << shift)  # at most 25 significant bits: exact
    return float_to_f32(-v if n < 0 else v)


def int_to_f64(n: int) -> int:
    """Round an integer (|n| < 2**1024) to the nearest f64; CPython's int -> float
    rounds ties to even."""
    return float_to_f64(float(n))


def canonicalize_nan_f32(bits: int) -> int:
    """Any f32 NaN becomes the positive canonical NaN; other values are unchanged."""
    return CANONICAL_NAN_F32 if (bits & 0x7FFFFFFF) > 0x7F800000 else bits


def canonicalize_nan_f64(bits: int) -> int:
    return CANONICAL_NAN_F64 if (bits & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000 else bits


# ---------------------------------------------------------------- integers


def _make_int(N: int) -> None:
    t = f"i{N}"
    M = (1 << N) - 1
    S = 1 << (N - 1)
    W = N - 1  # shift counts are taken mod N
    bb, bi = f"{t} {t} -> {t}", f"{t} {t} -> i32"

    def add(a, b):
        return (a + b) & M

    def sub(a, b):
        return (a - b) & M

    def mul(a, b):
        return (a * b) & M

    def div_u(a, b):
        if not b:
            raise Trap(DIV_BY_ZERO)
        return a // b

    def rem_u(a, b):
        if not b:
            raise Trap(DIV_BY_ZERO)
        return a % b

    def div_s(a, b):
        if not b:
            raise Trap(DIV_BY_ZERO)
        if a == S and b == M:
            raise Trap(INT_OVERFLOW)
        x = a - ((a & S) << 1)
        y = b - ((b & S) << 1)
        q = abs(x) // abs(y)  # C-style division truncates toward zero
        return (-q if (x < 0) != (y < 0) else q) & M

    def rem_s(a, b):
        if not b:
            raise Trap(DIV_BY_ZERO)
        x = a - ((a & S) << 1)
        y = b - ((b & S) << 1)
        r = abs(x) % abs(y)  # the remainder takes the dividend's sign
        return (-r if x < 0 else r) & M

    def and_(a, b):
        return a & b

    def or_(a, b):
        return a | b

    def xor(a, b):
        return a ^ b

    def shl(a, b):
        return (a << (b & W)) & M

    def shr_u(a, b):
        return a >> (b & W)

    def shr_s(a, b):
        return ((a - ((a & S) << 1)) >> (b & W)) & M

    def rotl(a, b):
        k = b & W
        return ((a << k) | (a >> (N - k))) & M

    def rotr(a, b):
        k = b & W
        return ((a >> k) | (a << (N - k))) & M

    def clz(a):
        return N - a.bit_length()

    def ctz(a):
        return (a & -a).bit_length() - 1 if a else N

    def popcnt(a):
        return a.bit_count()

    def eqz(a):
        return 0 if a else 1

    # Signed order is unsigned order once the sign bit is flipped.
    def eq(a, b):
        return 1 if a == b else 0

    def ne(a, b):
        return 1 if a != b else 0

    def lt_u(a, b):
        return 1 if a < b else 0

    def gt_u(a, b):
        return 1 if a > b else 0

    def le_u(a, b):
        return 1 if a <= b else 0

    def ge_u(a, b):
        return 1 if a >= b else 0

    def lt_s(a, b):
        return 1 if (a ^ S) < (b ^ S) else 0

    def gt_s(a, b):
        return 1 if (a ^ S) > (b ^ S) else 0

    def le_s(a, b):
        return 1 if (a ^ S) <= (b ^ S) else 0

    def ge_s(a, b):
        return 1 if (a ^ S) >= (b ^ S) else 0

    for name, fn in [("add", add), ("sub", sub), ("mul", mul), ("and", and_), ("or", or_),
                     ("xor", xor), ("shl", shl), ("shr_s", shr_s), ("shr_u", shr_u),
                     ("rotl", rotl), ("rotr", rotr)]:
        _reg(f"{t}.{name}", fn, bb)
    for name, fn in [("div_s", div_s), ("div_u", div_u), ("rem_s", rem_s), ("rem_u", rem_u)]:
        _reg(f"{t}.{name}", fn, bb, traps=True)
    for name, fn in [("clz", clz), ("ctz", ctz), ("popcnt", popcnt)]:
        _reg(f"{t}.{name}", fn, f"{t} -> {t}")
    _reg(f"{t}.eqz", eqz, f"{t} -> i32")
    for name, fn in [("eq", eq), ("ne", ne), ("lt_s", lt_s), ("lt_u", lt_u), ("gt_s", gt_s),
                     ("gt_u", gt_u), ("le_s", le_s), ("le_u", le_u), ("ge_s", ge_s),
                     ("ge_u", ge_u)]:
        _reg(f"{t}.{name}", fn, bi)
    for k in (8, 16, 32):
        if k < N:
            _reg(f"{t}.extend{k}_s", _make_sext(k, M), f"{t} -> {t}")


def _make_sext(k: int, mask: int) -> Callable[[int], int]:
    low, sign = (1 << k) - 1, 1 << (k - 1)

    def extend(a):
        return (((a & low) ^ sign) - sign) & mask

    return extend


_make_int(32)
_make_int(64)


def _wrap(a):
    return a & 0xFFFFFFFF


def _extend_u(a):
    return a


_reg("i32.wrap_i64", _wrap, "i64 -> i32")
_reg("i64.extend_i32_s", _make_sext(32, (1 << 64) - 1), "i32 -> i64")
_reg("i64.extend_i32_u", _extend_u, "i32 -> i64")


# ---------------------------------------------------------------- floats


def _make_float(N: int) -> None:
    t = f"f{N}"
    if N == 32:
        unpack, pack, SIGN, QUIET, CANON = f32_to_float, float_to_f32, 0x80000000, 0x00400000, CANONICAL_NAN_F32
        INTEGRAL = 2.0 ** 23  # every f32 at least this large is an integer
        FU, IP = _f32s.unpack, _u32s.pack  # inlined in the hot ops: FU(IP(bits))[0] is the value
    else:
        unpack, pack, SIGN, QUIET, CANON = f64_to_float, float_to_f64, 1 << 63, 1 << 51, CANONICAL_NAN_F64
        INTEGRAL = 2.0 ** 52
        FU, IP = _f64s.unpack, _u64s.pack
    ABS = SIGN - 1
    INF = ABS ^ (QUIET | (QUIET - 1))  # exponent all ones, mantissa zero

    def nan1(a):
        return a | QUIET

    def nan2(a, b):
        # The first NaN operand, quieted (see the module docstring).
        return (a if (a & ABS) > INF else b) | QUIET

    # Binary arithmetic: decide NaN operands on the bits, then compute in double.
    def add(a, b):
        x, y = FU(IP(a))[0], FU(IP(b))[0]
        if x != x or y != y:
            return nan2(a, b)
        r = x + y
        return CANON if r != r else pack(r)

    def sub(a, b):
        x, y = FU(IP(a))[0], FU(IP(b))[0]
        if x != x or y != y:
            return nan2(a, b)
        r = x - y
        return CANON if r != r else pack(r)

    def mul(a, b):
        x, y = FU(IP(a))[0], FU(IP(b))[0]
        if x != x or y != y:
            return nan2(a, b)
        r = x * y
        return CANON if r != r else pack(r)

    def div(a, b):
        x, y = FU(IP(a))[0], FU(IP(b))[0]
        if x != x or y != y:
            return nan2(a, b)
        if y == 0.0:  # Python raises instead of giving IEEE results
            if x == 0.0:
                return CANON
            return INF | ((a ^ b) & SIGN)
        return pack(x / y)

    def sqrt(a):
        x = unpack(a)
        if x != x:
            return nan1(a)
        if x < 0.0:
            return CANON
        return pack(math.sqrt(x))  # sqrt(-0) is -0, sqrt(inf) is inf

    def min_(a, b):
        x, y = FU(IP(a))[0], FU(IP(b))[0]
        if x != x or y != y:
            return nan2(a, b)
        if x < y:
            return a
        if y < x:
            return b
        return a | b  # equal: identical bits, or zeros where -0 wins

    def max_(a, b):
        x, y = FU(IP(a))[0], FU(IP(b))[0]
        if x != x or y != y:
            return nan2(a, b)
        if x > y:
            return a
        if y > x:
            return b
        return a & b  # equal: identical bits, or zeros where +0 wins

    def make_round(to_int):
        def rounding(a):
            x = unpack(a)
            if x != x:
                return nan1(a)
            if x == 0.0 or not -INTEGRAL < x < INTEGRAL:  # already integral (or inf)
                return a
            r = to_int(x)
            if r == 0:
                return a & SIGN  # a zero result keeps the operand's sign
            return pack(float(r))  # |r| <= 2**52: exact

        return rounding

    def abs_(a):
        return a & ABS

    def neg(a):
        return a ^ SIGN

    def copysign(a, b):
        return (a & ABS) | (b & SIGN)

    def eq(a, b):
        return 1 if FU(IP(a))[0] == FU(IP(b))[0] else 0

    def ne(a, b):
        return 1 if FU(IP(a))[0] != FU(IP(b))[0] else 0

    def lt(a, b):
        return 1 if FU(IP(a))[0] < FU(IP(b))[0] else 0

    def gt(a, b):
        return 1 if FU(IP(a))[0] > FU(IP(b))[0] else 0

    def le(a, b):
        return 1 if FU(IP(a))[0] <= FU(IP(b))[0] else 0

    def ge(a, b):
        return 1 if FU(IP(a))[0] >= FU(IP(b))[0] else 0

    bb, b1 = f"{t} {t} -> {t}", f"{t} -> {t}"
    for name, fn in [("add", add), ("sub", sub), ("mul", mul), ("div", div), ("min", min_),
                     ("max", max_)]:
        _reg(f"{t}.{name}", fn, bb, nan=t)
    _reg(f"{t}.sqrt", sqrt, b1, nan=t)
    for name, to_int in [("ceil", math.ceil), ("floor", math.floor), ("trunc", math.trunc),
                         ("nearest", round)]:  # round() on a float ties to even
        _reg(f"{t}.{name}", make_round(to_int), b1, nan=t)
    _reg(f"{t}.abs", abs_, b1)
    _reg(f"{t}.neg", neg, b1)
    _reg(f"{t}.copysign", copysign, bb)
    for name, fn in [("eq", eq), ("ne", ne), ("lt", lt), ("gt", gt), ("le", le), ("ge", ge)]:
        _reg(f"{t}.{name}", fn, f"{t} {t} -> i32")


_make_float(32)
_make_float(64)


# ---------------------------------------------------------------- conversions


def _make_trunc(src: int, dst: int, signed: bool, sat: bool) -> Callable[[int], int]:
    unpack = f32_to_float if src == 32 else f64_to_float
    lo, hi = (-(1 << (dst - 1)), (1 << (dst - 1)) - 1) if signed else (0, (1 << dst) - 1)
    mask = (1 << dst) - 1

    if sat:
        def trunc_sat(a):
            x = unpack(a)
            if x != x:
                return 0
            if x == math.inf:
                return hi & mask
            if x == -math.inf:
                return lo & mask
            return min(max(int(x), lo), hi) & mask

        return trunc_sat

    def trunc(a):
        x = unpack(a)
        if x != x:
            raise Trap(INVALID_CONVERSION)
        if x in (math.inf, -math.inf):
            raise Trap(INT_OVERFLOW)
        r = int(x)  # exact truncation toward zero
        if r < lo or r > hi:
            raise Trap(INT_OVERFLOW)
        return r & mask

    return trunc


for _dst in (32, 64):
    for _src in (32, 64):
        for _sg in ("s", "u"):
            _reg(f"i{_dst}.trunc_f{_src}_{_sg}", _make_trunc(_src, _dst, _sg == "s", False),
                 f"f{_src} -> i{_dst}", traps=True)
            _reg(f"i{_dst}.trunc_sat_f{_src}_{_sg}", _make_trunc(_src, _dst, _sg == "s", True),
                 f"f{_src} -> i{_dst}")


def _make_convert(src: int, dst: int, signed: bool) -> Callable[[int], int]:
    to_float = int_to_f32 if dst == 32 else int_to_f64
    if signed:
        S = 1 << (src - 1)

        def convert_s(a):
            return to_float(a - ((a & S) << 1))

        return convert_s

    def convert_u(a):
        return to_float(a)

    return convert_u


for _dst in (32, 64):
    for _src in (32, 64):
        for _sg in ("s", "u"):
            _reg(f"f{_dst}.convert_i{_src}_{_sg}", _make_convert(_src, _dst, _sg == "s"),
                 f"i{_src} -> f{_dst}")


def _demote(a):
    if (a & 0x7FFFFFFFFFFFFFFF) > 0x7FF0000000000000:
        # Keep the sign and the payload's top bits; set the quiet bit.
        return ((a >> 32) & 0x80000000) | 0x7FC00000 | ((a >> 29) & 0x3FFFFF)
    return float_to_f32(f64_to_float(a))


def _promote(a):
    if (a & 0x7FFFFFFF) > 0x7F800000:
        return ((a & 0x80000000) << 32) | 0x7FF8000000000000 | ((a & 0x3FFFFF) << 29)
    return float_to_f64(f32_to_float(a))


_reg("f32.demote_f64", _demote, "f64 -> f32", nan="f32")
_reg("f64.promote_f32", _promote, "f32 -> f64", nan="f64")
for _name, _sig in [("i32.reinterpret_f32", "f32 -> i32"), ("i64.reinterpret_f64", "f64 -> i64"),
                    ("f32.reinterpret_i32", "i32 -> f32"), ("f64.reinterpret_i64", "i64 -> f64")]:
    # One function object per name so that each carries its own __name__.
    _reg(_name, (lambda a: a), _sig)


# ---------------------------------------------------------------- scalar loads and stores
# The value part of narrow loads/stores, as pure functions of the accessed bytes: a load
# takes the little-endian int of the bytes read, a store returns the int of the bytes to write.

MEMORY_TABLE: dict[str, OpInfo] = {}


def _make_truncate(k: int) -> Callable[[int], int]:
    low = (1 << k) - 1

    def store(a):
        return a & low

    return store


for _t, _n in (("i32", 32), ("i64", 64)):
    for _k in (8, 16, 32):
        if _k >= _n:
            continue
        _m = (1 << _n) - 1
        register(MEMORY_TABLE, globals(), f"{_t}.load{_k}_s", _make_sext(_k, _m),
                 f"i32 -> {_t}")
        register(MEMORY_TABLE, globals(), f"{_t}.load{_k}_u", (lambda a: a), f"i32 -> {_t}")
        register(MEMORY_TABLE, globals(), f"{_t}.store{_k}", _make_truncate(_k), f"{_t} -> i32")

del _t, _n, _k, _m, _dst, _src, _sg, _name, _sig
