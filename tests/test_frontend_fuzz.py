"""Robustness of the decoder and validator: whatever the bytes, `parse_module` either
succeeds or raises DecodeError / ValidationError, quickly (no IndexError, struct.error,
UnicodeDecodeError, RecursionError, MemoryError or hang)."""

from __future__ import annotations

import time

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.frontend.decoder import decode_body
from deadeye.frontend.leb import encode_u
from deadeye.frontend.opcodes import OPS, encode_opcode
from deadeye.frontend.module import Features, parse_module, validate_function
from deadeye.ir.errors import DecodeError, ValidationError
from deadeye.ir.types import ValType

SOURCES = [
    # control flow, calls, tables, globals, names
    """(module $m
      (type $bin (func (param i32 i32) (result i32)))
      (import "env" "f" (func $f (param i32)))
      (import "env" "g" (global $g i32))
      (table $t 4 funcref)
      (global $count (mut i32) (i32.const 0))
      (elem (table $t) (i32.const 0) func $add $fac)
      (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
      (func $fac (export "fac") (param $n i32) (result i32) (local $acc i32)
        (local.set $acc (i32.const 1))
        (block $done (loop $top
          (br_if $done (i32.eqz (local.get $n)))
          (local.set $acc (i32.mul (local.get $acc) (local.get $n)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $top)))
        (br_table 0 0 (local.get $acc) (i32.const 0)))
      (func (export "ind") (param i32) (result i32)
        (call_indirect (type $bin) (i32.const 1) (i32.const 2) (local.get 0)))
      (func (result i32) (return_call $fac (global.get $g))))""",
    # memory, bulk memory, data, multi-value, select
    """(module
      (memory 1 2)
      (data (i32.const 16) "hello")
      (data $p "passive")
      (func (export "m") (param i32) (result i64 f64)
        (memory.init $p (i32.const 0) (i32.const 0) (i32.const 3))
        (data.drop $p)
        (memory.fill (i32.const 0) (i32.const 1) (i32.const 2))
        (memory.copy (i32.const 0) (i32.const 8) (i32.const 4))
        (i64.store offset=8 (local.get 0) (i64.load8_s (i32.const 3)))
        (drop (memory.grow (i32.const 1)))
        (i64.extend_i32_u (memory.size))
        (select (f64.const 1.5) (f64.const -0.0) (local.get 0))))""",
    # SIMD
    """(module (memory 1)
      (func (export "s") (param i32) (result i32)
        (v128.store (i32.const 0)
          (i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31
            (v128.load (local.get 0)) (v128.const i32x4 1 2 3 4)))
        (drop (v128.load16_lane 3 (i32.const 0) (v128.const i64x2 0 0)))
        (drop (f32x4.add (f32x4.splat (f32.const 1)) (v128.load32_splat (i32.const 4))))
        (drop (i16x8.extract_lane_u 7 (i16x8.narrow_i32x4_s (v128.const i64x2 5 6) (v128.const i64x2 7 8))))
        (i32x4.extract_lane 2 (i32x4.dot_i16x8_s (v128.const i64x2 1 2) (v128.const i64x2 3 4)))))""",
    # multi-memory, extended-const, references
    """(module
      (memory $a 1) (memory $b 2)
      (global $base i32 (i32.const 8))
      (table 2 externref)
      (data (memory $b) (i32.add (i32.const 1) (i32.mul (i32.const 2) (i32.const 3))) "xy")
      (func $r (export "r") (param externref) (result i32)
        (table.set 0 (i32.const 0) (local.get 0))
        (drop (table.grow 0 (ref.null extern) (i32.const 1)))
        (i32.store $b (i32.const 0) (i32.load $a (i32.const 4)))
        (memory.copy $a $b (i32.const 0) (i32.const 0) (i32.const 1))
        (drop (ref.func $r))
        (i32.add (memory.size $b) (ref.is_null (table.get 0 (i32.const 1))))))""",
]
SEEDS = [bytes(wasmtime.wat2wasm(s)) for s in SOURCES]
FEATURE_SETS = [None, Features(multi_memory=False, tail_call=False, extended_const=False)]


def check(data: bytes, features: Features | None = None) -> None:
    t0 = time.perf_counter()
    for mode in ("eager", "lazy"):
        try:
            m = parse_module(data, validate=mode, features=features)
        except (DecodeError, ValidationError):
            continue
        if mode == "lazy":
            # decoding and validating every body of a lazily loaded module is also safe
            for i in range(len(m.func_types)):
                try:
                    decode_body(m, i)
                    validate_function(m, i)
                except (DecodeError, ValidationError):
                    pass
    assert time.perf_counter() - t0 < 2.0


def test_seeds_are_valid():
    for data in SEEDS:
        m = parse_module(data)
        assert m.validated == set(range(len(m.func_types)))


@pytest.mark.parametrize("seed", range(len(SOURCES)))
def test_every_truncation(seed):
    data = SEEDS[seed]
    accepted = 0
    for n in range(len(data)):
        try:
            parse_module(data[:n])
            accepted += 1  # cut at a section boundary: a smaller module, maybe valid
        except (DecodeError, ValidationError):
            pass
    assert accepted <= 13  # at most once per section kind (plus the bare header)


@pytest.mark.parametrize("seed", range(len(SOURCES)))
def test_every_single_bit_flip(seed):
    data = SEEDS[seed]
    for i in range(8, len(data)):
        for bit in (0, 3, 6, 7):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            check(bytes(mutated))


_SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.binary(max_size=200), st.sampled_from(FEATURE_SETS), st.booleans())
def test_random_bytes(raw, features, with_header):
    check((b"\0asm\x01\0\0\0" if with_header else b"") + raw, features)


@st.composite
def mutated_modules(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0B, 0x40, 0xFC, 0xFD]))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[i:]
        else:  # copy a chunk of another seed in
            other = draw(st.sampled_from(SEEDS))
            j = draw(st.integers(0, len(other) - 1))
            data[i : i + 4] = other[j : j + draw(st.integers(1, 16))]
    return bytes(data)


@_SETTINGS
@given(mutated_modules(), st.sampled_from(FEATURE_SETS))
def test_mutated_modules(data, features):
    check(data, features)


@pytest.mark.parametrize(
    "data",
    [
        # huge declared counts must not preallocate
        b"\0asm\x01\0\0\0\x01\x05\xff\xff\xff\xff\x0f",
        b"\0asm\x01\0\0\0\x03\x05\xff\xff\xff\xff\x0f",
        b"\0asm\x01\0\0\0\x0b\x05\xff\xff\xff\xff\x0f",
        # a body declaring 2**32-1 locals of one type, and a br_table with a huge count
        b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x0a\x0a\x01\x08\x01\xff\xff\xff\xff\x0f\x7f\x0b",
        b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x0a\x0b\x01\x09\x00\x41\x00\x0e\xff\xff\xff\xff\x0f",
    ],
)
def test_huge_counts(data):
    with pytest.raises(DecodeError):
        parse_module(data)


def test_deep_nesting_is_not_recursive():
    depth = 20000
    body = b"\x00" + b"\x02\x40" * depth + b"\x0b" * (depth + 1)
    code = encode_u(len(body)) + body
    sec = encode_u(1) + code
    data = (b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x0a" + encode_u(len(sec)) + sec)
    parse_module(data)


def _wasmtime_engine() -> wasmtime.Engine:
    """wasmtime with the same proposals as ours (its newer ones switched off)."""
    config = wasmtime.Config()
    for flag in ("wasm_gc", "wasm_function_references", "wasm_exceptions", "wasm_memory64", "wasm_threads",
                 "wasm_relaxed_simd", "wasm_custom_page_sizes", "wasm_wide_arithmetic", "wasm_stack_switching"):
        setattr(config, flag, False)
    config.wasm_tail_call = True
    config.wasm_multi_memory = True
    return wasmtime.Engine(config)


_ENGINE = _wasmtime_engine()


@_SETTINGS
@given(mutated_modules())
def test_verdict_matches_wasmtime(data):
    """Differential check: a mutated module is accepted by us iff wasmtime accepts it."""
    try:
        parse_module(data)
        ours = "valid"
    except (DecodeError, ValidationError) as e:
        ours = f"rejected: {e}"
    try:
        wasmtime.Module.validate(_ENGINE, data)
        theirs = "valid"
    except wasmtime.WasmtimeError as e:
        theirs = f"rejected: {str(e).strip().splitlines()[0]}"
    assert (ours == "valid") == (theirs == "valid"), (ours, theirs)


# -- type-directed generation: mostly valid bodies, half of them then corrupted ------------

_CONST = {
    ValType.I32: b"\x41\x00", ValType.I64: b"\x42\x00", ValType.F32: b"\x43" + bytes(4),
    ValType.F64: b"\x44" + bytes(8), ValType.V128: b"\xfd\x0c" + bytes(16),
    ValType.FUNCREF: b"\xd0\x70", ValType.EXTERNREF: b"\xd0\x6f",
}
_PLAIN = [i for i in OPS.values() if i.is_plain and i.imm not in ("i32", "i64", "f32bits", "f64bits", "v128")]


def _plain_imm(rng, info) -> bytes:
    if info.imm == "memarg":
        align, offset = rng.randrange(info.align + 2), encode_u(rng.randrange(50))  # align may be 1 too big
        if rng.random() < 0.3:  # an explicit memory index (0, 1 exist; 2 does not)
            return encode_u(align | 0x40) + encode_u(rng.randrange(3)) + offset
        return encode_u(align) + offset
    if info.imm == "memarg+lane":
        return encode_u(rng.randrange(info.align + 1)) + b"\x00" + bytes([rng.randrange(info.lanes + 1)])
    if info.imm == "lane":
        return bytes([rng.randrange(info.lanes + 1)])
    if info.imm == "shuffle16":
        return bytes(rng.randrange(33) for _ in range(16))
    assert not info.imm, info
    return b""


def _generate_body(rng) -> bytes:
    """A body for type [i32] -> [i32] with locals (i32, v128), built by tracking the
    operand stack so that it is usually valid."""
    out = bytearray(b"\x02\x01\x7f\x01\x7b")
    frames = [0]  # operand stack height of each open block
    stack: list = []
    for _ in range(rng.randint(1, 25)):
        r = rng.random()
        if r < 0.25:
            t = rng.choice(list(_CONST))
            out += _CONST[t]
            stack.append(t)
        elif r < 0.32:
            out += b"\x02\x40"  # block [] -> []
            frames.append(len(stack))
        elif r < 0.38 and len(frames) > 1:
            out += b"\x1a" * (len(stack) - frames[-1]) + b"\x0b"
            del stack[frames.pop():]
        elif r < 0.42:
            out += b"\x20\x02"  # local.get of the v128 local
            stack.append(ValType.V128)
        elif r < 0.46 and len(frames) > 1 and len(stack) > frames[-1] and stack[-1] == ValType.I32:
            out += b"\x0d" + encode_u(rng.randrange(len(frames) - 1))  # br_if to a [] label
            stack.pop()
        else:
            top = stack[frames[-1]:]
            fits = [i for i in _PLAIN if len(i.params) <= len(top) and tuple(top[len(top) - len(i.params):]) == i.params]
            if fits:
                info = rng.choice(fits)
                out += encode_opcode(info) + _plain_imm(rng, info)
                del stack[len(stack) - len(info.params):]
                stack.extend(info.results)
    while len(frames) > 1:
        out += b"\x1a" * (len(stack) - frames[-1]) + b"\x0b"
        del stack[frames.pop():]
    out += b"\x1a" * len(stack) + b"\x20\x00\x0b"
    if rng.random() < 0.5:  # corrupt it a little
        i = rng.randrange(5, len(out) - 1)
        if rng.random() < 0.5:
            out[i] = rng.choice([0x1A, 0x0B, 0x20, 0x6A, 0x7C, 0x45, 0x41, 0x00, 0x0F, 0x1B])
        else:
            out[i:i] = rng.choice([b"\x1a", b"\x41\x00", b"\x42\x00", b"\x0b", b"\x02\x40", b"\xd0\x70"])
    return bytes(out)


def _module_with_body(body: bytes) -> bytes:
    def sec(i, items):
        payload = encode_u(len(items)) + b"".join(items)
        return bytes([i]) + encode_u(len(payload)) + payload

    return (
        b"\0asm\x01\0\0\0" + sec(1, [b"\x60\x01\x7f\x01\x7f"]) + sec(3, [b"\x00"]) + sec(4, [b"\x70\x00\x01"])
        + sec(5, [b"\x00\x01", b"\x00\x01"]) + sec(6, [b"\x7f\x01\x41\x00\x0b"])
        + sec(10, [encode_u(len(body)) + body])
    )


@settings(max_examples=300, deadline=None, database=None)
@given(st.randoms(use_true_random=False))
def test_generated_bodies_match_wasmtime(rng):
    data = _module_with_body(_generate_body(rng))
    try:
        parse_module(data)
        ours = "valid"
    except ValidationError as e:
        ours = f"invalid: {e}"
    except DecodeError as e:
        ours = f"malformed: {e}"
    try:
        wasmtime.Module.validate(_ENGINE, data)
        theirs = "valid"
    except wasmtime.WasmtimeError as e:
        theirs = f"rejected: {str(e).strip().splitlines()[0]}"
    assert (ours == "valid") == (theirs == "valid"), (ours, theirs)


def test_generator_covers_both_verdicts():
    """The generator above is not vacuous: it yields valid and invalid modules alike."""
    import random

    verdicts = []
    for seed in range(100):
        try:
            parse_module(_module_with_body(_generate_body(random.Random(seed))))
            verdicts.append(True)
        except (DecodeError, ValidationError):
            verdicts.append(False)
    assert 20 <= sum(verdicts) <= 80
