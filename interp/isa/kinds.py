"""Operand kinds of the bytecode: how each operand is encoded, range-checked, printed.

Every operand of every op has one kind from `KINDS`. A kind with a fixed `width` is stored
inline at that many bytes, little-endian, with no alignment: a native handler reads it with a
single (unaligned) load at a constant offset from the op's start. Two kinds are variable
length and always come last in an op: `brtable` (u32 count n, then n+1 i32 offsets, the last
one the default) and `slots` (u16 count n, then n u16 slot indices).

Operand values in Python are plain ints (a shuffle mask is a tuple of 16 ints, the
variable kinds are tuples). Value-immediates hold bit patterns like everywhere else in
deadeye: `u32` of an `i32.add_imm` is the constant's i32 bit pattern; `sx32` is a 64-bit
bit pattern that must be a sign-extended i32 and is stored as 4 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from deadeye.ir.errors import DecodeError, ValidationError

MASK64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Kind:
    """One operand kind.

    `role`: "dst"/"src" (registers), "imm" (a value or count), "index" (into a module index
    space), "branch" (a relative offset), "pool" (a constant pool index), "list" (variable).
    `regclass`: "x" (one 64-bit slot) or "v" (a v128: two consecutive slots), for registers.
    `fmt`: the struct format of a fixed-width kind. `lo`/`hi`: the inclusive range of the
    Python value (for fixed-width ints)."""

    name: str
    role: str
    width: int | None
    fmt: str | None = None
    lo: int = 0
    hi: int = 0
    regclass: str | None = None
    doc: str = ""

    @property
    def is_reg(self) -> bool:
        return self.regclass is not None


def _int_kind(name, bits, signed, role="imm", doc="", regclass=None):
    fmt = {8: "b", 16: "h", 32: "i", 64: "q"}[bits]
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        fmt, lo, hi = fmt.upper(), 0, (1 << bits) - 1
    return Kind(name, role, bits // 8, "<" + fmt, lo, hi, regclass, doc)


_INDEX_DOC = "u32 index into the module's {} index space"
KINDS: dict[str, Kind] = {}
for _k in (
    _int_kind("xd", 16, False, "dst", "destination register: a 64-bit slot (`r5`)", "x"),
    _int_kind("xs", 16, False, "src", "source register: a 64-bit slot (`r5`)", "x"),
    # A v128 register names the first of two consecutive slots, so 65534 is the last one.
    Kind("vd", "dst", 2, "<H", 0, 0xFFFE, "v", "destination v128 register: slots n, n+1 (`v5`)"),
    Kind("vs", "src", 2, "<H", 0, 0xFFFE, "v", "source v128 register: slots n, n+1 (`v5`)"),
    _int_kind("frame", 16, False, "src",
              "callee frame base: the caller's slot where the callee's slot 0 sits (`@r5`)", "x"),
    _int_kind("i8", 8, True), _int_kind("u8", 8, False),
    _int_kind("i16", 16, True), _int_kind("u16", 16, False),
    _int_kind("i32", 32, True), _int_kind("u32", 32, False),
    _int_kind("i64", 64, True), _int_kind("u64", 64, False),
    Kind("sx32", "imm", 4, "<i", 0, MASK64, None,
         "64-bit bit pattern stored as a sign-extended i32 (else: the `_pool` variant)"),
    _int_kind("f32", 32, False, doc="f32 bit pattern"),
    _int_kind("f64", 64, False, doc="f64 bit pattern"),
    Kind("v128", "imm", 16, None, 0, (1 << 128) - 1, None, "v128 bits, lane 0 first"),
    Kind("lane", "imm", 1, "<B", 0, 255, None, "u8 lane index, below the op's lane count"),
    Kind("shuffle", "imm", 16, None, 0, 31, None, "16 bytes: lane indices below 32"),
    _int_kind("off", 32, True, "branch", "i32 branch offset, relative to the branching op's first byte"),
    _int_kind("pool", 32, False, "pool", "u32 index into the function's constant pool"),
    _int_kind("trap", 8, False, doc="u8 trap code (see the trap table)"),
    *(_int_kind(n, 32, False, "index", _INDEX_DOC.format(n))
      for n in ("func", "type", "table", "mem", "global", "data", "elem")),
    Kind("brtable", "list", None, None, 0, 0, None,
         "u32 count n, then n+1 i32 branch offsets (the last is the default)"),
    Kind("slots", "list", None, None, 0, 0xFFFF, "x", "u16 count n, then n u16 slot indices"),
):
    KINDS[_k.name] = _k


# Kinds whose valid range is set per operand (`Operand.limit`): a lane index is below the
# op's lane count, a trap code below the number of trap messages.
LIMITED = frozenset({"lane", "trap"})


def _sx32_ok(v: int) -> bool:
    return 0 <= v < (1 << 31) or MASK64 - (1 << 31) < v <= MASK64


def fits(kind: Kind, value, limit: int = 0) -> bool:
    """Whether `value` is a valid operand of `kind` (`limit`: the bound of a LIMITED kind)."""
    name = kind.name
    if name == "shuffle":
        return (isinstance(value, tuple) and len(value) == 16
                and all(type(x) is int and 0 <= x < 32 for x in value))
    if name == "brtable":
        return (isinstance(value, tuple) and len(value) >= 1 and len(value) - 1 <= 0xFFFFFFFF
                and all(type(x) is int and -(1 << 31) <= x < (1 << 31) for x in value))
    if name == "slots":
        return (isinstance(value, tuple) and len(value) <= 0xFFFF
                and all(type(x) is int and 0 <= x <= 0xFFFF for x in value))
    if type(value) is not int:
        return False
    if name == "sx32":
        return _sx32_ok(value)
    if name in LIMITED:
        return 0 <= value < limit
    return kind.lo <= value <= kind.hi


def put(kind: Kind, value, out: bytearray) -> None:
    """Append the encoding of a valid `value` (check with `fits` first)."""
    name = kind.name
    if name == "v128":
        out += value.to_bytes(16, "little")
    elif name == "shuffle":
        out += bytes(value)
    elif name == "sx32":
        out += struct.pack("<i", value - (1 << 64) if value >> 63 else value)
    elif name == "brtable":
        out += struct.pack(f"<I{len(value)}i", len(value) - 1, *value)
    elif name == "slots":
        out += struct.pack(f"<H{len(value)}H", len(value), *value)
    else:
        out += struct.pack(kind.fmt, value)


def _need(code, pc: int, n: int) -> None:
    if pc + n > len(code):
        raise DecodeError(f"truncated bytecode: operand needs {n} bytes", pc)


def get(kind: Kind, code, pc: int) -> tuple[object, int]:
    """Decode one operand at `pc`: (value, next pc). Raises DecodeError on truncation."""
    name = kind.name
    width = kind.width
    if width is not None:
        _need(code, pc, width)
        if name == "v128":
            return int.from_bytes(code[pc:pc + 16], "little"), pc + 16
        if name == "shuffle":
            mask = tuple(code[pc:pc + 16])
            if any(x >= 32 for x in mask):
                raise DecodeError("shuffle lane index out of range", pc)
            return mask, pc + 16
        (v,) = struct.unpack_from(kind.fmt, code, pc)
        if name == "sx32":
            v &= MASK64
        return v, pc + width
    if name == "brtable":
        _need(code, pc, 4)
        (n,) = struct.unpack_from("<I", code, pc)
        _need(code, pc + 4, 4 * (n + 1))
        return struct.unpack_from(f"<{n + 1}i", code, pc + 4), pc + 4 + 4 * (n + 1)
    _need(code, pc, 2)  # slots
    (n,) = struct.unpack_from("<H", code, pc)
    _need(code, pc + 2, 2 * n)
    return struct.unpack_from(f"<{n}H", code, pc + 2), pc + 2 + 2 * n


def check(kind: Kind, value, limit: int, what: str) -> None:
    if not fits(kind, value, limit):
        raise ValidationError(f"{what}: {value!r} is not a valid {kind.name} operand")


