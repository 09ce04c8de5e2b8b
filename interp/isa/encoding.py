"""Encoding of bytecode ops (derived from the table).

An op is its opcode followed by its operands in table order:

- opcode: one byte 0x00..0xFE for the ops flagged `common` (primary page), or the escape
  byte 0xFF followed by a u16 (little-endian) extended code for the rest. Codes are
  assigned from table order, so the same table always encodes the same way;
- operands: each at its kind's fixed width, little-endian, unaligned (registers u16,
  indices u32, immediates at their width), then at most one variable-length list last.

Immediates that do not fit their field (today: 64-bit constants that are not sign-extended
i32s) are placed in the function's **constant pool**, and the op's `_pool` form names the
pool index instead. `encode(..., pool=ConstPool())` does this automatically.

Serialized code (`pack_code`) starts with a magic and the `FORMAT_VERSION`; loading code of
another version fails with DecodeError. The encoding layout has a hash (`layout_hash`): the
test suite pins it per version, so a layout change without a version bump fails CI.
"""

from __future__ import annotations

import hashlib
import struct

from deadeye.ir.errors import DecodeError, ValidationError

from . import kinds as K
from .table import ESCAPE, EXTENDED, FORMAT_VERSION, OP_LIST, OPS, PRIMARY, Op

MAGIC = b"DEYEbc"


class ConstPool:
    """A function's constant pool: distinct 64-bit values, indexed from 0."""

    def __init__(self, values=()):
        self.values: list[int] = []
        self._index: dict[int, int] = {}
        for v in values:
            self.add(v)

    def add(self, value: int) -> int:
        if type(value) is not int or not 0 <= value <= K.MASK64:
            raise ValidationError(f"constant pool value {value!r} is not a 64-bit pattern")
        i = self._index.get(value)
        if i is None:
            i = self._index[value] = len(self.values)
            self.values.append(value)
        return i

    def __getitem__(self, i: int) -> int:
        return self.values[i]

    def __len__(self) -> int:
        return len(self.values)


def _row(op) -> Op:
    if isinstance(op, Op):
        return op
    row = OPS.get(op) if isinstance(op, str) else None
    if row is None:
        raise ValidationError(f"unknown bytecode op {op!r}")
    return row


def _fits_all(row: Op, operands) -> bool:
    return all(K.fits(o.kind, v, o.limit) for o, v in zip(row.operands, operands))


def encode(op, *operands, pool: ConstPool | None = None) -> bytes:
    """The bytes of one op (`op` a name or an `Op`). With `pool`, an operand that does not
    fit its field moves to the pool and the op's `_pool` form is emitted instead."""
    row = _row(op)
    if len(operands) != len(row.operands):
        raise ValidationError(f"{row.name} takes {len(row.operands)} operand(s), got {len(operands)}")
    if pool is not None and row.pool_variant and not _fits_all(row, operands):
        field = OPS[row.pool_variant].pool_field
        at = row.names.index(field)
        value = operands[at]
        others_ok = all(K.fits(o.kind, v, o.limit)
                        for i, (o, v) in enumerate(zip(row.operands, operands)) if i != at)
        if others_ok and type(value) is int and 0 <= value <= K.MASK64:
            operands = operands[:at] + (pool.add(value),) + operands[at + 1:]
            row = OPS[row.pool_variant]
    out = bytearray(row.prefix)
    for o, v in zip(row.operands, operands):
        K.check(o.kind, v, o.limit, f"{row.name} operand {o.name}")
        K.put(o.kind, v, out)
    return bytes(out)


def decode_op(code, pc: int) -> tuple[Op, int]:
    """The op starting at `pc` and the offset of its first operand."""
    if not 0 <= pc < len(code):
        raise DecodeError("bytecode ends before an op", pc)
    b = code[pc]
    if b == ESCAPE:
        if pc + 3 > len(code):
            raise DecodeError("truncated extended opcode", pc)
        ext = code[pc + 1] | code[pc + 2] << 8
        if ext >= len(EXTENDED):
            raise DecodeError(f"unknown extended opcode 0x{ext:04x}", pc)
        return EXTENDED[ext], pc + 3
    row = PRIMARY[b]
    if row is None:
        raise DecodeError(f"unknown opcode 0x{b:02x}", pc)
    return row, pc + 1


def decode(code, pc: int) -> tuple[Op, tuple, int]:
    """(op, operand values, offset of the next op) of the op at `pc`."""
    row, at = decode_op(code, pc)
    values = []
    for o in row.operands:
        v, at = K.get(o.kind, code, at)
        if o.limit and v >= o.limit:
            raise DecodeError(f"{row.name}: {o.kind.name} {v} out of range", at)
        values.append(v)
    return row, tuple(values), at


def decode_all(code, start: int = 0, end: int | None = None):
    """Yield (pc, op, operands) for every op in code[start:end]."""
    end = len(code) if end is None else end
    pc = start
    while pc < end:
        row, values, nxt = decode(code, pc)
        yield pc, row, values
        pc = nxt


# --- serialized code ---------------------------------------------------------------------------
def pack_code(code: bytes, pool: ConstPool | list = ()) -> bytes:
    """Serialize a function's code and constant pool, tagged with FORMAT_VERSION."""
    values = pool.values if isinstance(pool, ConstPool) else list(pool)
    return (MAGIC + struct.pack("<HII", FORMAT_VERSION, len(values), len(code))
            + struct.pack(f"<{len(values)}Q", *values) + bytes(code))


def unpack_code(blob: bytes) -> tuple[bytes, ConstPool]:
    """Inverse of `pack_code`; DecodeError for foreign, truncated or other-version data."""
    head = len(MAGIC) + 10
    if len(blob) < head or blob[:len(MAGIC)] != MAGIC:
        raise DecodeError("not deadeye bytecode (bad magic)", 0)
    version, npool, ncode = struct.unpack_from("<HII", blob, len(MAGIC))
    if version != FORMAT_VERSION:
        raise DecodeError(f"bytecode format version {version}, this build reads {FORMAT_VERSION}", 0)
    if len(blob) != head + 8 * npool + ncode:
        raise DecodeError("truncated or oversized bytecode blob", head)
    pool = ConstPool()
    pool.values = list(struct.unpack_from(f"<{npool}Q", blob, head))
    pool._index = {v: i for i, v in enumerate(pool.values)}
    return blob[head + 8 * npool:], pool


def layout_description() -> str:
    """The encoding layout as text: one line per op (opcode bytes, name, operand kinds in
    order). Operand names are left out: renaming one changes no byte."""
    lines = [f"format {FORMAT_VERSION}"]
    for row in OP_LIST:
        kinds = " ".join(o.kind.name + (f"<{o.limit}" if o.limit else "") for o in row.operands)
        lines.append(f"{row.prefix.hex()} {row.name} {kinds}")
    return "\n".join(lines)


def layout_hash() -> str:
    """sha256 of `layout_description()`: changes whenever any op's encoding changes."""
    return hashlib.sha256(layout_description().encode()).hexdigest()
