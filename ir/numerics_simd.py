"""Exact semantics of the Wasm 2.0 SIMD operators (no relaxed SIMD) over v128 ints.

Import these through `deadeye.ir.numerics`. A v128 is a 128-bit unsigned int with lane 0 in
the low bits (little-endian memory order). Float lanes follow the scalar NaN rule of
`numerics_scalar` lane by lane. Ops with an immediate take it as a trailing argument: a lane
index (int), or for `i8x16.shuffle` a sequence of 16 byte indices (each < 32).

The lane part of SIMD loads and stores is here too (MEMORY_TABLE), as pure functions of the
accessed bytes: a load takes the little-endian int of the bytes read (plus the v128 operand
and lane for `loadN_lane`), a store-lane returns the int of the bytes to write.
"""

from __future__ import annotations

import struct
from typing import Callable

from . import numerics_scalar as sc
from .numerics_scalar import OpInfo, register

TABLE: dict[str, OpInfo] = {}
MEMORY_TABLE: dict[str, OpInfo] = {}

V128_MASK = (1 << 128) - 1


def _reg(name: str, fn: Callable, sig: str, **kw) -> None:
    register(TABLE, globals(), name, fn, sig, **kw)


def _mreg(name: str, fn: Callable, sig: str, **kw) -> None:
    register(MEMORY_TABLE, globals(), name, fn, sig, **kw)


_FMT = {(w, s): struct.Struct("<%d%s" % (128 // w, c))
        for w, (u, sg) in {8: "Bb", 16: "Hh", 32: "Ii", 64: "Qq"}.items()
        for s, c in ((False, u), (True, sg))}


def v128_lanes(v: int, width: int, signed: bool = False) -> tuple[int, ...]:
    """The lanes of a v128 (lane 0 first), `width` bits each, signed or unsigned."""
    return _FMT[width, signed].unpack(v.to_bytes(16, "little"))


def v128_from_lanes(lanes, width: int, signed: bool = False) -> int:
    """Inverse of `v128_lanes`; the lanes must already be in range."""
    return int.from_bytes(_FMT[width, signed].pack(*lanes), "little")


def _repeat(width: int) -> int:
    return sum(1 << (i * width) for i in range(128 // width))


def canonicalize_nan_v128_f32x4(v: int) -> int:
    """Every NaN f32 lane becomes the canonical NaN."""
    return v128_from_lanes(map(sc.canonicalize_nan_f32, v128_lanes(v, 32)), 32)


def canonicalize_nan_v128_f64x2(v: int) -> int:
    return v128_from_lanes(map(sc.canonicalize_nan_f64, v128_lanes(v, 64)), 64)


# ---------------------------------------------------------------- building blocks


def _map1(width: int, signed: bool, fn: Callable, out_signed: bool | None = None) -> Callable:
    fi, fo = _FMT[width, signed], _FMT[width, signed if out_signed is None else out_signed]

    def op(a):
        return int.from_bytes(fo.pack(*map(fn, fi.unpack(a.to_bytes(16, "little")))), "little")

    return op


def _map2(width: int, signed: bool, fn: Callable, out_signed: bool | None = None) -> Callable:
    fi, fo = _FMT[width, signed], _FMT[width, signed if out_signed is None else out_signed]

    def op(a, b):
        return int.from_bytes(fo.pack(*map(fn, fi.unpack(a.to_bytes(16, "little")),
                                           fi.unpack(b.to_bytes(16, "little")))), "little")

    return op


def _compare(width: int, signed: bool, pred: Callable) -> Callable:
    ones = (1 << width) - 1
    return _map2(width, signed, lambda x, y: ones if pred(x, y) else 0, out_signed=False)


def _lane_common(shape: str, width: int, scalar: str) -> None:
    """splat, extract_lane, replace_lane for one shape."""
    m = (1 << width) - 1
    rep = _repeat(width)
    count = 128 // width

    def splat(x):
        return (x & m) * rep

    def extract(v, lane):
        return (v >> (lane * width)) & m

    def replace(v, x, lane):
        sh = lane * width
        return (v & ~(m << sh) & V128_MASK) | ((x & m) << sh)

    _reg(f"{shape}.splat", splat, f"{scalar} -> v128")
    _reg(f"{shape}.replace_lane", replace, f"v128 {scalar} -> v128", imm="lane", imm_limit=count)
    if width >= 32:
        _reg(f"{shape}.extract_lane", extract, f"v128 -> {scalar}", imm="lane", imm_limit=count)
    else:
        sign = 1 << (width - 1)

        def extract_s(v, lane):
            return ((((v >> (lane * width)) & m) ^ sign) - sign) & 0xFFFFFFFF

        _reg(f"{shape}.extract_lane_s", extract_s, f"v128 -> {scalar}", imm="lane",
             imm_limit=count)
        _reg(f"{shape}.extract_lane_u", extract, f"v128 -> {scalar}", imm="lane",
             imm_limit=count)


# ---------------------------------------------------------------- integer lanes

_CMP = {"eq": lambda x, y: x == y, "ne": lambda x, y: x != y, "lt": lambda x, y: x < y,
        "gt": lambda x, y: x > y, "le": lambda x, y: x <= y, "ge": lambda x, y: x >= y}


def _int_shape(width: int) -> None:
    t = f"i{width}x{128 // width}"
    scalar = "i64" if width == 64 else "i32"
    m = (1 << width) - 1
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    U, S = _FMT[width, False], _FMT[width, True]
    vv, v1 = "v128 v128 -> v128", "v128 -> v128"

    _lane_common(t, width, scalar)
    _reg(f"{t}.add", _map2(width, False, lambda x, y: (x + y) & m), vv)
    _reg(f"{t}.sub", _map2(width, False, lambda x, y: (x - y) & m), vv)
    if width > 8:
        _reg(f"{t}.mul", _map2(width, False, lambda x, y: (x * y) & m), vv)
    _reg(f"{t}.neg", _map1(width, False, lambda x: (-x) & m), v1)
    _reg(f"{t}.abs", _map1(width, True, lambda x: abs(x) & m, out_signed=False), v1)

    for name, pred in _CMP.items():
        if name in ("eq", "ne"):
            _reg(f"{t}.{name}", _compare(width, False, pred), vv)
        else:
            _reg(f"{t}.{name}_s", _compare(width, True, pred), vv)
            if width < 64:
                _reg(f"{t}.{name}_u", _compare(width, False, pred), vv)
    if width < 64:
        for sg in ("s", "u"):
            _reg(f"{t}.min_{sg}", _map2(width, sg == "s", min), vv)
            _reg(f"{t}.max_{sg}", _map2(width, sg == "s", max), vv)
    if width <= 16:
        _reg(f"{t}.avgr_u", _map2(width, False, lambda x, y: (x + y + 1) >> 1), vv)
        _reg(f"{t}.add_sat_s", _map2(width, True, lambda x, y: min(max(x + y, lo), hi)), vv)
        _reg(f"{t}.sub_sat_s", _map2(width, True, lambda x, y: min(max(x - y, lo), hi)), vv)
        _reg(f"{t}.add_sat_u", _map2(width, False, lambda x, y: min(x + y, m)), vv)
        _reg(f"{t}.sub_sat_u", _map2(width, False, lambda x, y: max(x - y, 0)), vv)

    # Shift counts are taken mod the lane width.
    def shl(v, c):
        k = c & (width - 1)
        return int.from_bytes(U.pack(*[(x << k) & m for x in U.unpack(v.to_bytes(16, "little"))]), "little")

    def shr_s(v, c):
        k = c & (width - 1)
        return int.from_bytes(S.pack(*[x >> k for x in S.unpack(v.to_bytes(16, "little"))]), "little")

    def shr_u(v, c):
        k = c & (width - 1)
        return int.from_bytes(U.pack(*[x >> k for x in U.unpack(v.to_bytes(16, "little"))]), "little")

    def all_true(v):
        return 1 if all(U.unpack(v.to_bytes(16, "little"))) else 0

    def bitmask(v):
        r = 0
        for i, x in enumerate(U.unpack(v.to_bytes(16, "little"))):
            r |= (x >> (width - 1)) << i
        return r

    _reg(f"{t}.shl", shl, "v128 i32 -> v128")
    _reg(f"{t}.shr_s", shr_s, "v128 i32 -> v128")
    _reg(f"{t}.shr_u", shr_u, "v128 i32 -> v128")
    _reg(f"{t}.all_true", all_true, "v128 -> i32")
    _reg(f"{t}.bitmask", bitmask, "v128 -> i32")


for _w in (8, 16, 32, 64):
    _int_shape(_w)

_reg("i8x16.popcnt", _map1(8, False, int.bit_count), "v128 -> v128")
_reg("i16x8.q15mulr_sat_s",
     _map2(16, True, lambda x, y: min(max((x * y + 0x4000) >> 15, -0x8000), 0x7FFF)),
     "v128 v128 -> v128")


def _swizzle(a, s):
    ab = a.to_bytes(16, "little")
    return int.from_bytes(bytes(ab[i] if i < 16 else 0 for i in s.to_bytes(16, "little")), "little")


def _shuffle(a, b, mask):
    ab = a.to_bytes(16, "little") + b.to_bytes(16, "little")
    return int.from_bytes(bytes(ab[i] for i in mask), "little")


_reg("i8x16.swizzle", _swizzle, "v128 v128 -> v128")
_reg("i8x16.shuffle", _shuffle, "v128 v128 -> v128", imm="shuffle", imm_limit=32)


def _widening(dst: int) -> None:
    """The ops whose lanes are twice as wide as their operands' lanes."""
    src = dst // 2
    t, s = f"i{dst}x{128 // dst}", f"i{src}x{128 // src}"
    half = 128 // dst  # lanes of the result
    for sg in ("s", "u"):
        signed = sg == "s"
        fi, fo = _FMT[src, signed], _FMT[dst, signed]

        for part, start in (("low", 0), ("high", half)):
            def extend(v, fi=fi, fo=fo, start=start):
                return int.from_bytes(fo.pack(*fi.unpack(v.to_bytes(16, "little"))[start:start + half]), "little")

            def extmul(a, b, fi=fi, fo=fo, start=start):
                xs = fi.unpack(a.to_bytes(16, "little"))[start:start + half]
                ys = fi.unpack(b.to_bytes(16, "little"))[start:start + half]
                return int.from_bytes(fo.pack(*[x * y for x, y in zip(xs, ys)]), "little")

            _reg(f"{t}.extend_{part}_{s}_{sg}", extend, "v128 -> v128")
            _reg(f"{t}.extmul_{part}_{s}_{sg}", extmul, "v128 v128 -> v128")
        if dst <= 32:
            def extadd(v, fi=fi, fo=fo):
                xs = fi.unpack(v.to_bytes(16, "little"))
                return int.from_bytes(fo.pack(*[xs[2 * i] + xs[2 * i + 1] for i in range(half)]), "little")

            _reg(f"{t}.extadd_pairwise_{s}_{sg}", extadd, "v128 -> v128")


for _w in (16, 32, 64):
    _widening(_w)


def _narrow(dst: int) -> None:
    src = dst * 2
    t, s = f"i{dst}x{128 // dst}", f"i{src}x{128 // src}"
    fi = _FMT[src, True]  # the operands are always read as signed
    for sg, lo, hi in (("s", -(1 << (dst - 1)), (1 << (dst - 1)) - 1), ("u", 0, (1 << dst) - 1)):
        fo = _FMT[dst, sg == "s"]

        def narrow(a, b, fo=fo, lo=lo, hi=hi):
            xs = fi.unpack(a.to_bytes(16, "little")) + fi.unpack(b.to_bytes(16, "little"))
            return int.from_bytes(fo.pack(*[min(max(x, lo), hi) for x in xs]), "little")

        _reg(f"{t}.narrow_{s}_{sg}", narrow, "v128 v128 -> v128")


_narrow(8)
_narrow(16)


def _dot(a, b):
    xs = _FMT[16, True].unpack(a.to_bytes(16, "little"))
    ys = _FMT[16, True].unpack(b.to_bytes(16, "little"))
    return int.from_bytes(_FMT[32, False].pack(
        *[(xs[i] * ys[i] + xs[i + 1] * ys[i + 1]) & 0xFFFFFFFF for i in range(0, 8, 2)]), "little")


_reg("i32x4.dot_i16x8_s", _dot, "v128 v128 -> v128")


# ---------------------------------------------------------------- bitwise

def _not(a):
    return a ^ V128_MASK


def _and(a, b):
    return a & b


def _or(a, b):
    return a | b


def _xor(a, b):
    return a ^ b


def _andnot(a, b):
    return a & (b ^ V128_MASK)


def _bitselect(a, b, c):
    return (a & c) | (b & (c ^ V128_MASK))


def _any_true(a):
    return 1 if a else 0


_reg("v128.not", _not, "v128 -> v128")
_reg("v128.and", _and, "v128 v128 -> v128")
_reg("v128.or", _or, "v128 v128 -> v128")
_reg("v128.xor", _xor, "v128 v128 -> v128")
_reg("v128.andnot", _andnot, "v128 v128 -> v128")
_reg("v128.bitselect", _bitselect, "v128 v128 v128 -> v128")
_reg("v128.any_true", _any_true, "v128 -> i32")


# ---------------------------------------------------------------- float lanes


def _float_shape(width: int) -> None:
    f = f"f{width}"
    t = f"{f}x{128 // width}"
    vv, v1 = "v128 v128 -> v128", "v128 -> v128"
    ops = sc.TABLE
    to_float = sc.f32_to_float if width == 32 else sc.f64_to_float
    sign = _repeat(width) << (width - 1)

    _lane_common(t, width, f)
    for name in ("add", "sub", "mul", "div", "min", "max"):
        _reg(f"{t}.{name}", _map2(width, False, ops[f"{f}.{name}"].fn), vv, nan=t)
    for name in ("sqrt", "ceil", "floor", "trunc", "nearest"):
        _reg(f"{t}.{name}", _map1(width, False, ops[f"{f}.{name}"].fn), v1, nan=t)
    # pmin/pmax are selects (b < a ? b : a), so NaN bits pass through untouched.
    _reg(f"{t}.pmin", _map2(width, False, lambda a, b: b if to_float(b) < to_float(a) else a), vv)
    _reg(f"{t}.pmax", _map2(width, False, lambda a, b: b if to_float(a) < to_float(b) else a), vv)
    _reg(f"{t}.abs", lambda a: a & (sign ^ V128_MASK), v1)
    _reg(f"{t}.neg", lambda a: a ^ sign, v1)
    ones = (1 << width) - 1
    for name in ("eq", "ne", "lt", "gt", "le", "ge"):
        scalar = ops[f"{f}.{name}"].fn
        _reg(f"{t}.{name}", _map2(width, False, lambda a, b, s=scalar: ones if s(a, b) else 0), vv)


_float_shape(32)
_float_shape(64)


# ---------------------------------------------------------------- conversions

def _convert_fn(name: str) -> Callable:
    return sc.TABLE[name].fn


_reg("f32x4.convert_i32x4_s", _map1(32, False, _convert_fn("f32.convert_i32_s")), "v128 -> v128")
_reg("f32x4.convert_i32x4_u", _map1(32, False, _convert_fn("f32.convert_i32_u")), "v128 -> v128")
_reg("i32x4.trunc_sat_f32x4_s", _map1(32, False, _convert_fn("i32.trunc_sat_f32_s")), "v128 -> v128")
_reg("i32x4.trunc_sat_f32x4_u", _map1(32, False, _convert_fn("i32.trunc_sat_f32_u")), "v128 -> v128")


def _f64_to_i32_zero(fn: Callable) -> Callable:
    def op(v):
        a, b = _FMT[64, False].unpack(v.to_bytes(16, "little"))
        return fn(a) | (fn(b) << 32)  # lanes 2 and 3 are zero

    return op


def _low_i32_to_f64(fn: Callable) -> Callable:
    def op(v):
        return fn(v & 0xFFFFFFFF) | (fn((v >> 32) & 0xFFFFFFFF) << 64)

    return op


_reg("i32x4.trunc_sat_f64x2_s_zero", _f64_to_i32_zero(_convert_fn("i32.trunc_sat_f64_s")), "v128 -> v128")
_reg("i32x4.trunc_sat_f64x2_u_zero", _f64_to_i32_zero(_convert_fn("i32.trunc_sat_f64_u")), "v128 -> v128")
_reg("f32x4.demote_f64x2_zero", _f64_to_i32_zero(_convert_fn("f32.demote_f64")), "v128 -> v128", nan="f32x4")
_reg("f64x2.convert_low_i32x4_s", _low_i32_to_f64(_convert_fn("f64.convert_i32_s")), "v128 -> v128")
_reg("f64x2.convert_low_i32x4_u", _low_i32_to_f64(_convert_fn("f64.convert_i32_u")), "v128 -> v128")
_reg("f64x2.promote_low_f32x4", _low_i32_to_f64(_convert_fn("f64.promote_f32")), "v128 -> v128", nan="f64x2")


# ---------------------------------------------------------------- the lane part of loads/stores


def _load_extend(k: int, signed: bool) -> Callable:
    fi = struct.Struct("<%d%s" % (64 // k, {8: "Bb", 16: "Hh", 32: "Ii"}[k][signed]))
    fo = _FMT[2 * k, signed]

    def load(x):
        return int.from_bytes(fo.pack(*fi.unpack(x.to_bytes(8, "little"))), "little")

    return load


for _k in (8, 16, 32):
    for _sg in ("s", "u"):
        _mreg(f"v128.load{_k}x{64 // _k}_{_sg}", _load_extend(_k, _sg == "s"), "i64 -> v128")


def _load_lane_ops(k: int) -> None:
    m = (1 << k) - 1
    rep = _repeat(k)
    scalar = "i64" if k == 64 else "i32"

    def splat(x):
        return (x & m) * rep

    def load_lane(v, x, lane):
        sh = lane * k
        return (v & ~(m << sh) & V128_MASK) | ((x & m) << sh)

    def store_lane(v, lane):
        return (v >> (lane * k)) & m

    _mreg(f"v128.load{k}_splat", splat, f"{scalar} -> v128")
    _mreg(f"v128.load{k}_lane", load_lane, f"v128 {scalar} -> v128", imm="lane", imm_limit=128 // k)
    _mreg(f"v128.store{k}_lane", store_lane, f"v128 -> {scalar}", imm="lane", imm_limit=128 // k)
    if k >= 32:
        _mreg(f"v128.load{k}_zero", lambda x: x & m, f"{scalar} -> v128")


for _k in (8, 16, 32, 64):
    _load_lane_ops(_k)

del _w, _k, _sg
