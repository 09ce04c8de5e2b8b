"""Strict LEB128 readers and writers.

The readers take `(data, pos, end)` and return `(value, new_pos)`; they raise
`DecodeError` with the spec's wording on an encoding longer than the type allows
("integer representation too long"), on unused bits of the last byte that are not a
zero/sign extension ("integer too large"), and on running past `end` ("unexpected end")."""

from __future__ import annotations

from deadeye.ir.errors import DecodeError


def unexpected_end(data, pos: int, end: int) -> DecodeError:
    # Inside a section or body the spec calls it "unexpected end of section or function";
    # at the end of the whole binary just "unexpected end".
    if end < len(data):
        return DecodeError("unexpected end of section or function", pos)
    return DecodeError("unexpected end", pos)


def _make_unsigned(bits: int):
    nbytes = (bits + 6) // 7
    last_shift = 7 * (nbytes - 1)
    last_mask = 0x7F & ~((1 << (bits - last_shift)) - 1)  # bits of the last byte beyond N

    def read(data, pos: int, end: int) -> tuple[int, int]:
        start = pos
        if pos < end:
            b = data[pos]
            if b < 0x80:  # the common one-byte case
                return b, pos + 1
        result = 0
        shift = 0
        while True:
            if pos >= end:
                raise unexpected_end(data, pos, end)
            b = data[pos]
            pos += 1
            if shift == last_shift:
                if b & 0x80:
                    raise DecodeError("integer representation too long", start)
                if b & last_mask:
                    raise DecodeError("integer too large", start)
                return result | (b << shift), pos
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result, pos
            shift += 7

    read.__name__ = f"read_u{bits}"
    return read


def _make_signed(bits: int):
    nbytes = (bits + 6) // 7
    last_shift = 7 * (nbytes - 1)
    value_bits = bits - last_shift  # bits of the value carried by the last byte
    ext_mask = (0x7F >> (value_bits - 1)) << (value_bits - 1)  # sign bit and the rest

    def read(data, pos: int, end: int) -> tuple[int, int]:
        start = pos
        result = 0
        shift = 0
        while True:
            if pos >= end:
                raise unexpected_end(data, pos, end)
            b = data[pos]
            pos += 1
            if shift == last_shift:
                if b & 0x80:
                    raise DecodeError("integer representation too long", start)
                if (b & ext_mask) not in (0, ext_mask):
                    raise DecodeError("integer too large", start)
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result, pos

    read.__name__ = f"read_s{bits}"
    return read


read_u32 = _make_unsigned(32)
read_u64 = _make_unsigned(64)
read_s32 = _make_signed(32)
read_s33 = _make_signed(33)
read_s64 = _make_signed(64)


def encode_u(value: int) -> bytes:
    """Minimal unsigned LEB128 encoding."""
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_s(value: int) -> bytes:
    """Minimal signed LEB128 encoding."""
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if (value == 0 and not b & 0x40) or (value == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)
