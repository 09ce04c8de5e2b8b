"""ISA encoding: round trips over every op, constant pool fallback, layout stability,
malformed input."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isa_testlib import extremes, operands_strategy

from deadeye.interp.isa import (FORMAT_VERSION, OP_LIST, OPS, TRAP_MESSAGES, ConstPool, decode, decode_all,
                                encode, layout_hash, pack_code, unpack_code)
from deadeye.interp.isa import encoding, kinds
from deadeye.interp.isa.table import ESCAPE, EXTENDED, PRIMARY
from deadeye.ir.errors import DecodeError, ValidationError

# The encoding layout of each format version. Changing any op's opcode or operands changes
# the hash: bump FORMAT_VERSION in interp/isa/table.py and add the new hash here.
GOLDEN_LAYOUTS = {
    1: "d7a9dbe5fbda1bf19def07fd7c6906ed689114a4a68cf03232de5c0545209483",
    2: "862e7441522f137ba9085f41deebc5b25c5bbc8aebfb5dbab5fc8094ab5bb116",  # fused ops
}


def test_layout_hash_pinned_to_format_version():
    assert FORMAT_VERSION in GOLDEN_LAYOUTS, "new format version: add its layout hash"
    assert layout_hash() == GOLDEN_LAYOUTS[FORMAT_VERSION], (
        "the encoding layout changed without a FORMAT_VERSION bump")


def test_layout_hash_sees_opcode_and_operand_changes(monkeypatch):
    before = layout_hash()
    row = OPS["i32.add"]
    monkeypatch.setattr(row, "prefix", bytes([row.opcode + 1]))
    assert layout_hash() != before
    monkeypatch.undo()
    monkeypatch.setattr(row, "operands", row.operands[:2])
    assert layout_hash() != before
    monkeypatch.undo()
    assert layout_hash() == before


def test_opcodes_unique_and_paged():
    prefixes = [op.prefix for op in OP_LIST]
    assert len(set(prefixes)) == len(prefixes)
    primary = [op for op in OP_LIST if not op.extended]
    assert 0 < len(primary) < ESCAPE
    assert all(len(op.prefix) == 1 and op.prefix[0] != ESCAPE for op in primary)
    assert all(op.prefix[0] == ESCAPE and len(op.prefix) == 3 for op in OP_LIST if op.extended)
    assert [op.opcode for op in primary] == list(range(len(primary)))
    assert [op.opcode for op in EXTENDED] == list(range(len(EXTENDED)))
    for op in primary:
        assert PRIMARY[op.opcode] is op
    # table order decides codes: common ops keep their relative order on the primary page
    assert [op.index for op in primary] == sorted(op.index for op in primary)


def test_every_op_round_trips_at_its_extremes():
    for row in OP_LIST:
        for pick in (0, -1):
            values = tuple(extremes(o)[pick] for o in row.operands)
            code = encode(row.name, *values)
            got, decoded, nxt = decode(code, 0)
            assert got is row and decoded == values and nxt == len(code), row.name
            if row.fixed_size is not None:
                assert len(code) == row.fixed_size
            # each fixed operand sits at the offset the layout promises (native handlers
            # load it from there)
            for (name, kind, at), v in zip(row.layout, values):
                if kind.width is not None and kind.fmt is not None and kind.name != "sx32":
                    assert struct.unpack_from(kind.fmt, code, at)[0] == v


@st.composite
def _op_stream(draw):
    rows = draw(st.lists(st.sampled_from(OP_LIST), min_size=1, max_size=8))
    return [(row, draw(operands_strategy(row))) for row in rows]


@settings(max_examples=150, deadline=None)
@given(_op_stream())
def test_round_trip_property(stream):
    code = b"".join(encode(row, *values) for row, values in stream)
    decoded = list(decode_all(code))
    assert [(row, values) for _, row, values in decoded] == stream
    # offsets are consistent: each op starts where the previous one ended
    pcs = [pc for pc, _, _ in decoded]
    for (pc, row, values), nxt in zip(decoded, pcs[1:] + [len(code)]):
        assert decode(code, pc)[2] == nxt


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([k for k in kinds.KINDS.values() if k.width and k.fmt]), st.data())
def test_every_kind_round_trips(kind, data):
    v = data.draw(st.one_of(st.integers(kind.lo, kind.hi), st.sampled_from([kind.lo, kind.hi]))
                  if kind.name != "sx32" else st.sampled_from([0, kinds.MASK64]))
    limit = kind.hi + 1 if kind.name in kinds.LIMITED else 0
    out = bytearray()
    assert kinds.fits(kind, v, limit)
    kinds.put(kind, v, out)
    assert len(out) == kind.width
    assert kinds.get(kind, bytes(out), 0) == (v, kind.width)
    assert not kinds.fits(kind, kind.hi + 1, limit) or kind.name == "sx32"
    assert not kinds.fits(kind, kind.lo - 1, limit)
    assert not kinds.fits(kind, True if kind.name != "sx32" else None, limit)


def test_out_of_range_operands_rejected():
    for row in OP_LIST:
        lows = [extremes(o)[0] for o in row.operands]
        for i, o in enumerate(row.operands):
            k = o.kind
            if k.width is None or k.name in ("shuffle", "v128", "sx32"):
                continue
            bad = o.limit or k.hi + 1
            with pytest.raises(ValidationError):
                encode(row.name, *lows[:i], bad, *lows[i + 1:])
    with pytest.raises(ValidationError):
        encode("i32.add", 1, 2)
    with pytest.raises(ValidationError):
        encode("no.such.op")
    with pytest.raises(ValidationError):
        encode("i8x16.shuffle", 0, 0, 0, (32,) * 16)
    with pytest.raises(ValidationError):
        encode("const64", 0, 1 << 40)  # no pool given


def test_pool_fallback():
    pool = ConstPool()
    big = 0x1234_5678_9ABC_DEF0
    small_neg = (-5) & kinds.MASK64
    # fits: inline form, pool untouched
    assert decode(encode("const64", 1, small_neg, pool=pool), 0)[:2] == (OPS["const64"], (1, small_neg))
    assert len(pool) == 0
    # does not fit: the _pool form names the entry
    row, values, _ = decode(encode("const64", 1, big, pool=pool), 0)
    assert row.name == "const64_pool" and pool[values[1]] == big
    # boundary: 2**31 does not sign-extend from i32
    row, values, _ = decode(encode("i64.add_imm", 2, 3, 1 << 31, pool=pool), 0)
    assert row.name == "i64.add_imm_pool" and values[:2] == (2, 3) and pool[values[2]] == 1 << 31
    # duplicates share an entry
    n = len(pool)
    encode("br_i64_lt_s_imm", 4, big, 100, pool=pool)
    assert len(pool) == n
    row, values, _ = decode(encode("br_i64_lt_s_imm", 4, big, 100, pool=pool), 0)
    assert row.name == "br_i64_lt_s_imm_pool" and values == (4, pool.values.index(big), 100)
    # a bad register is still an error, pool or not
    with pytest.raises(ValidationError):
        encode("i64.add_imm", 70000, 3, big, pool=pool)
    # every op with a sx32 immediate has a pool form with the same other operands (but
    # fused ops, which the emitter builds from parts already encoded)
    for r in OP_LIST:
        if any(o.kind.name == "sx32" for o in r.operands) and not r.parts:
            p = OPS[r.pool_variant]
            assert [o.kind.name for o in p.operands] == [
                "pool" if o.kind.name == "sx32" else o.kind.name for o in r.operands]


def test_pack_unpack_versioned():
    pool = ConstPool([1 << 63, 7])
    code = encode("const64_pool", 0, 0) + encode("return", (0,))
    blob = pack_code(code, pool)
    got_code, got_pool = unpack_code(blob)
    assert got_code == code and got_pool.values == pool.values
    assert struct.unpack_from("<H", blob, len(encoding.MAGIC))[0] == FORMAT_VERSION
    other = bytearray(blob)
    struct.pack_into("<H", other, len(encoding.MAGIC), FORMAT_VERSION + 1)
    with pytest.raises(DecodeError, match="version"):
        unpack_code(bytes(other))
    with pytest.raises(DecodeError):
        unpack_code(b"\0asm" + blob[4:])
    with pytest.raises(DecodeError):
        unpack_code(blob[:-1])
    with pytest.raises(DecodeError):
        unpack_code(b"")


def test_malformed_code_raises_decode_error():
    code = encode("v128.load16_lane", 1, 2, 3, 0, 99, 7)
    for cut in range(len(code)):
        with pytest.raises(DecodeError):
            decode(code[:cut], 0)
    unused = next(b for b in range(ESCAPE) if PRIMARY[b] is None)
    with pytest.raises(DecodeError, match="unknown opcode"):
        decode(bytes([unused]), 0)
    with pytest.raises(DecodeError, match="extended"):
        decode(bytes([ESCAPE]) + len(EXTENDED).to_bytes(2, "little"), 0)
    bad_lane = bytearray(code)
    bad_lane[-1] = 8  # v128.load16_lane has 8 lanes
    with pytest.raises(DecodeError, match="lane"):
        decode(bytes(bad_lane), 0)
    shuffle = bytearray(encode("i8x16.shuffle", 0, 2, 4, (0,) * 16))
    shuffle[-1] = 32
    with pytest.raises(DecodeError, match="shuffle"):
        decode(bytes(shuffle), 0)
    with pytest.raises(DecodeError):
        decode(b"", 0)
    with pytest.raises(DecodeError, match="trap"):
        decode(OPS["trap"].prefix + bytes([len(TRAP_MESSAGES)]), 0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error(data):
    try:
        for _ in decode_all(data):
            pass
    except DecodeError:
        pass
