"""Numeric literals of the WebAssembly text format, turned into the bit patterns deadeye
uses for values (i32/i64 unsigned, f32/f64 as IEEE bits, v128 as a 128-bit int).

Floats convert exactly: a literal becomes a rational number and is rounded once, to nearest
with ties to even, straight to the target width (no detour through a Python double, which
would round twice for f32). Every malformed or out-of-range literal raises `ValueError` with
a short reason; callers add the file and line."""

from __future__ import annotations

import re

__all__ = [
    "parse_int",
    "parse_float",
    "parse_v128_lanes",
    "FLOAT_FORMATS",
    "LANE_SHAPES",
    "canonical_nan",
    "float_bits_from_rational",
]

# bits -> (mantissa bits without the hidden one, exponent bits)
FLOAT_FORMATS = {32: (23, 8), 64: (52, 11)}

# v128 shapes: name -> (lane kind, lane width in bits)
LANE_SHAPES = {
    "i8x16": ("i", 8),
    "i16x8": ("i", 16),
    "i32x4": ("i", 32),
    "i64x2": ("i", 64),
    "f32x4": ("f", 32),
    "f64x2": ("f", 64),
}

_DEC = r"[0-9](?:_?[0-9])*"
_HEX = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_INT_RE = re.compile(rf"([+-]?)(?:0x({_HEX})|({_DEC}))")
_DEC_FLOAT_RE = re.compile(rf"({_DEC})(?:\.({_DEC})?)?(?:[eE]([+-]?{_DEC}))?")
_HEX_FLOAT_RE = re.compile(rf"0x({_HEX})(?:\.({_HEX})?)?(?:[pP]([+-]?{_DEC}))?")


def parse_int(text: str, bits: int) -> int:
    """An integer literal (decimal or 0x hex, `_` between digits, optional sign) as an
    unsigned `bits`-wide pattern. Accepts -2**(bits-1) .. 2**bits-1 (the text format lets
    either signed or unsigned spellings name a value)."""
    m = _INT_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"malformed integer literal {text!r}")
    sign, hexdigits, decdigits = m.groups()
    value = int(hexdigits.replace("_", ""), 16) if hexdigits is not None else int(decdigits.replace("_", ""))
    if sign == "-":
        if value > 1 << (bits - 1):
            raise ValueError(f"integer literal {text!r} out of range for i{bits}")
        return (-value) & ((1 << bits) - 1)
    if value >> bits:
        raise ValueError(f"integer literal {text!r} out of range for i{bits}")
    return value


def canonical_nan(bits: int, negative: bool = False) -> int:
    mant, exp = FLOAT_FORMATS[bits]
    return (int(negative) << (bits - 1)) | (((1 << exp) - 1) << mant) | (1 << (mant - 1))


def float_bits_from_rational(negative: bool, num: int, den: int, bits: int) -> int:
    """Round num/den (num >= 0, den > 0) to the nearest `bits`-wide float, ties to even,
    and return its bit pattern. Raises ValueError if it rounds to infinity (the text
    format calls such a literal out of range)."""
    mant, exp_bits = FLOAT_FORMATS[bits]
    sign = int(negative) << (bits - 1)
    if num == 0:
        return sign
    p = mant + 1  # precision including the hidden bit
    bias = (1 << (exp_bits - 1)) - 1
    emin = 1 - bias
    # e = floor(log2(num/den))
    e = num.bit_length() - den.bit_length()
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    scale = max(e, emin) - (p - 1)  # the value of the last mantissa bit is 2**scale
    if scale >= 0:
        q, r = divmod(num, den << scale)
        d2 = den << scale
    else:
        q, r = divmod(num << -scale, den)
        d2 = den
    if 2 * r > d2 or (2 * r == d2 and q & 1):
        q += 1
    if q >> p:  # rounding carried into a new binade
        q >>= 1
        scale += 1
    if q >> (p - 1):  # normal
        biased = scale + (p - 1) + bias
        if biased >= (1 << exp_bits) - 1:
            raise ValueError(f"float literal out of range for f{bits}")
        return sign | (biased << mant) | (q & ((1 << mant) - 1))
    return sign | q  # subnormal (scale == emin - mant)


def parse_float(text: str, bits: int) -> int:
    """A float literal (decimal, 0x hex float, `inf`, `nan`, `nan:0x...`, optional sign,
    `_` between digits) as the bit pattern of an f32 (bits=32) or f64 (bits=64)."""
    mant, exp_bits = FLOAT_FORMATS[bits]
    body = text
    negative = False
    if body[:1] in "+-" and body:
        negative = body[0] == "-"
        body = body[1:]
    sign = int(negative) << (bits - 1)
    inf = sign | (((1 << exp_bits) - 1) << mant)
    if body == "inf":
        return inf
    if body == "nan":
        return canonical_nan(bits, negative)
    if body.startswith("nan:0x"):
        digits = body[6:]
        if not re.fullmatch(_HEX, digits):
            raise ValueError(f"malformed NaN literal {text!r}")
        payload = int(digits.replace("_", ""), 16)
        if payload == 0 or payload >> mant:
            raise ValueError(f"NaN payload out of range in {text!r}")
        return inf | payload
    m = _HEX_FLOAT_RE.fullmatch(body)
    if m is not None:
        ip, fp, ex = m.groups()
        fp = (fp or "").replace("_", "")
        mantissa = int(ip.replace("_", "") + fp, 16)
        exp2 = (int(ex.replace("_", "")) if ex else 0) - 4 * len(fp)
        if mantissa == 0:
            return sign
        magnitude = mantissa.bit_length() + exp2  # value < 2**magnitude
        if magnitude > (1 << (exp_bits - 1)) + 2:
            raise ValueError(f"float literal {text!r} out of range for f{bits}")
        if magnitude < -(1 << (exp_bits - 1)) - mant - 4:
            return sign  # far below half the smallest subnormal
        if exp2 >= 0:
            return float_bits_from_rational(negative, mantissa << exp2, 1, bits)
        return float_bits_from_rational(negative, mantissa, 1 << -exp2, bits)
    m = _DEC_FLOAT_RE.fullmatch(body)
    if m is not None:
        ip, fp, ex = m.groups()
        fp = (fp or "").replace("_", "")
        mantissa = int(ip.replace("_", "") + fp)
        exp10 = (int(ex.replace("_", "")) if ex else 0) - len(fp)
        if mantissa == 0:
            return sign
        magnitude = len(str(mantissa)) + exp10  # value < 10**magnitude
        # f64 ranges over about 1e-324 .. 1.8e308: anything far outside needs no bignums.
        if magnitude > 320:
            raise ValueError(f"float literal {text!r} out of range for f{bits}")
        if magnitude < -330:
            return sign
        if exp10 >= 0:
            return float_bits_from_rational(negative, mantissa * 10**exp10, 1, bits)
        return float_bits_from_rational(negative, mantissa, 10**-exp10, bits)
    raise ValueError(f"malformed float literal {text!r}")


def parse_v128_lanes(shape: str, lanes: list[str]) -> int:
    """`v128.const SHAPE lane...` as one 128-bit int, lane 0 in the low bits."""
    if shape not in LANE_SHAPES:
        raise ValueError(f"unknown v128 shape {shape!r}")
    kind, width = LANE_SHAPES[shape]
    count = 128 // width
    if len(lanes) != count:
        raise ValueError(f"{shape} needs {count} lanes, got {len(lanes)}")
    value = 0
    for i, lane in enumerate(lanes):
        v = parse_int(lane, width) if kind == "i" else parse_float(lane, width)
        value |= v << (i * width)
    return value
