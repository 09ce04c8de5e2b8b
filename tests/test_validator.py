"""The validator (frontend/validator.py) and `parse_module`'s validation modes."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import wasmtime
from frontend_spec_util import assertions, module_payload, spec_files, top_forms

from deadeye.frontend.decoder import decode_body
from deadeye.frontend.module import Features, parse_module, validate_function
from deadeye.ir.errors import DecodeError, ValidationError

SIGHTGLASS = sorted(Path("/work/shared/sightglass").glob("*.wasm"))
CORE = Features(multi_memory=False, tail_call=False, extended_const=False)


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def invalid(text: str, match: str | None = None, features: Features | None = None) -> ValidationError:
    with pytest.raises(ValidationError, match=match) as ei:
        parse_module(wat(text), features=features)
    return ei.value


def valid(text: str, features: Features | None = None):
    return parse_module(wat(text), features=features)


def _features_for(path: Path) -> Features | None:
    return CORE if "core" in path.parts else None  # core scripts predate the proposals


# -- the spec suite ----------------------------------------------------------------------


def test_spec_assert_invalid():
    """Every `assert_invalid` module of the vendored suite (text ones through wat2wasm,
    which does not validate) is rejected with ValidationError."""
    checked = skipped = 0
    for path in spec_files("core/*.wast", "proposals/*/*.wast"):
        features = _features_for(path)
        for line, kind, payload, msg in assertions(path, "assert_invalid"):
            if kind == "text":
                try:
                    payload = wat(payload)
                except wasmtime.WasmtimeError:
                    skipped += 1  # wat2wasm itself refuses it (e.g. an unknown name)
                    continue
            try:
                parse_module(payload, features=features)
            except ValidationError as e:
                assert e.offset is not None, (path.name, line, e)
                checked += 1
                continue
            pytest.fail(f"{path.name}:{line}: accepted, expected {msg!r}")
    print(f"assert_invalid: {checked} rejected, {skipped} skipped (wat2wasm refused them)")
    assert checked >= 2000, (checked, skipped)
    assert skipped < checked // 10


def test_spec_valid_modules():
    """Every top-level `(module ...)` of the suite decodes and validates."""
    checked = skipped = 0
    for path in spec_files("core/*.wast", "proposals/*/*.wast"):
        for _, form in top_forms(path.read_text(encoding="utf-8")):
            if not re.match(r"\(module\b", form):
                continue
            kind, payload = module_payload(form)
            if kind == "quote":
                continue
            if kind == "text":
                try:
                    payload = wat(payload)
                except wasmtime.WasmtimeError:
                    skipped += 1  # e.g. wat2wasm refuses bidi characters in names.wast
                    continue
            parse_module(payload, features=_features_for(path))
            checked += 1
    assert checked >= 1500 and skipped <= 5, (checked, skipped)


# -- real programs --------------------------------------------------------------------------


@pytest.mark.parametrize("path", SIGHTGLASS, ids=lambda p: p.stem)
def test_sightglass_validates_quickly(path):
    data = path.read_bytes()
    t0 = time.perf_counter()
    m = parse_module(data, validate="eager")
    elapsed = time.perf_counter() - t0
    assert m.validated == set(range(len(m.func_types)))
    assert elapsed < 5.0


def test_sightglass_present():
    assert len(SIGHTGLASS) >= 10


# -- the algorithm, case by case ----------------------------------------------------------


def test_stack_typing_basics():
    invalid("(module (func (result i32) (i64.const 0)))", "type mismatch")
    invalid("(module (func (i32.add (i32.const 0))))", "type mismatch")
    invalid("(module (func (i32.const 0)))", "type mismatch")  # value left over
    valid("(module (func (result i32) (unreachable) (i32.add)))")  # bottom type
    invalid("(module (func (result i32) (unreachable) (i64.const 0) (i32.add)))", "type mismatch")
    valid("(module (func (result i32) (return (i32.const 1)) (drop) (f32.const 0) (drop)))")


def test_blocks_and_multi_value():
    valid(
        """(module (type $t (func (param i32 i64) (result i64 i32)))
        (func (result i64 i32) (i32.const 1) (i64.const 2)
          (block (type $t) (drop) (drop) (i64.const 3) (i32.const 4))))"""
    )
    invalid("(module (func (result i32) (block (result i32) (i64.const 0))))", "type mismatch")
    invalid("(module (func (result i32) (if (result i32) (i32.const 1) (then (i32.const 0)))))", "type mismatch")
    valid("(module (func (param i32) (result i32) (local.get 0) (if (param i32) (result i32) (i32.const 1) (then))))")
    # a loop's label takes the loop's parameters, not its results
    loop = "(module (func (result i64) (i32.const 0) (loop (param i32) (result i64) (drop) (br 0 (CONST 0)))))"
    invalid(loop.replace("CONST", "i64.const"), "type mismatch")
    valid(loop.replace("CONST", "i32.const"))
    valid("(module (func (i32.const 0) (loop (param i32) (br 0))))")
    invalid("(module (func (block (br 1)) (br 2)))", "unknown label")


def test_block_type_index_must_exist():
    # Hand-patch the block's type index past the end of the type section.
    data = bytearray(wat("(module (type (func)) (func (block (type 0))))"))
    i = data.index(b"\x02\x00\x0b\x0b")
    data[i + 1] = 5
    with pytest.raises(ValidationError, match="unknown type 5"):
        parse_module(bytes(data))


def test_br_table_arity():
    invalid(
        "(module (func (param i32) (block (result i32) (block (br_table 0 1 (i32.const 0) (local.get 0))) (i32.const 1))"
        " (drop)))",
        "type mismatch",
    )
    valid(
        "(module (func (param i32) (result i32) (block (result i32) (block (result i32)"
        " (br_table 0 1 (i32.const 0) (local.get 0))))))"
    )
    # In unreachable code the operand is the bottom type, which suits labels of
    # different types of the same arity.
    valid(
        """(module (func (result f32)
          (block (result f32)
            (block (result i32) (unreachable) (br_table 0 1 (i32.const 0)))
            (drop) (f32.const 0))))"""
    )
    invalid(
        """(module (func (result f32)
          (block (result f32)
            (block (result i32) (i32.const 0) (br_table 0 1 (i32.const 0)))
            (drop) (f32.const 0))))""",
        "type mismatch",
    )


def test_select():
    valid("(module (func (result i32) (select (i32.const 1) (i32.const 2) (i32.const 0))))")
    invalid("(module (func (result i32) (select (i32.const 1) (i64.const 2) (i32.const 0))))", "type mismatch")
    invalid(
        "(module (func (drop (select (ref.null extern) (ref.null extern) (i32.const 0)))))", "type mismatch"
    )
    valid("(module (func (drop (select (result externref) (ref.null extern) (ref.null extern) (i32.const 0)))))")
    valid("(module (func (result v128) (select (v128.const i64x2 0 0) (v128.const i64x2 1 1) (i32.const 0))))")


def test_locals_globals():
    invalid("(module (func (local i32) (drop (local.get 1))))", "unknown local")
    invalid("(module (global i32 (i32.const 0)) (func (global.set 0 (i32.const 1))))", "global is immutable")
    valid("(module (global (mut i32) (i32.const 0)) (func (global.set 0 (i32.const 1))))")
    invalid("(module (func (global.get 0) (drop)))", "unknown global")


def test_memory_ops():
    invalid("(module (func (drop (i32.load (i32.const 0)))))", "unknown memory")
    invalid("(module (memory 1) (func (drop (i32.load align=8 (i32.const 0)))))", "alignment")
    valid("(module (memory 1) (func (drop (i64.load align=8 (i32.const 0)))))")
    valid("(module (memory 1) (memory 1) (func (drop (i32.load 1 (i32.const 0)))))")
    invalid("(module (memory 1) (func (drop (i32.load 1 (i32.const 0)))))", "unknown memory 1")
    invalid("(module (memory 1) (memory 1))", "multiple memories", features=CORE)
    invalid("(module (memory 65537))", "65536 pages")
    invalid("(module (memory 2 1))", "minimum")
    invalid("(module (table 2 1 funcref))", "minimum")
    invalid("(module (memory 1) (func (memory.copy 0 1 (i32.const 0) (i32.const 0) (i32.const 0))))", "unknown memory 1")


def test_simd_lanes():
    invalid("(module (func (result i32) (i8x16.extract_lane_s 16 (v128.const i64x2 0 0))))", "invalid lane index")
    valid("(module (func (result i32) (i8x16.extract_lane_s 15 (v128.const i64x2 0 0))))")
    invalid("(module (func (result i64) (i64x2.extract_lane 2 (v128.const i64x2 0 0))))", "invalid lane index")
    shuffle = wat(
        "(module (func (result v128) (i8x16.shuffle 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 31"
        " (v128.const i64x2 0 0) (v128.const i64x2 0 0))))"
    )
    parse_module(shuffle)
    bad = bytearray(shuffle)
    bad[bad.index(b"\xfd\x0d") + 2 + 15] = 32  # the last lane index of the shuffle
    with pytest.raises(ValidationError, match="invalid lane index"):
        parse_module(bytes(bad))
    invalid(
        "(module (memory 1) (func (result v128) (v128.load64_lane 2 (i32.const 0) (v128.const i64x2 0 0))))",
        "invalid lane index",
    )


def test_calls_and_tail_calls():
    invalid("(module (func (call 3)))", "unknown function")
    invalid("(module (func $f (param i32)) (func (call $f)))", "type mismatch")
    invalid("(module (type (func)) (table 1 externref) (func (call_indirect (type 0) (i32.const 0))))", "type mismatch")
    valid("(module (type (func)) (table 1 funcref) (func (call_indirect (type 0) (i32.const 0))))")
    valid("(module (func $f (result i32) (i32.const 1)) (func (result i32) (return_call $f)))")
    invalid("(module (func $f (result i64) (i64.const 1)) (func (result i32) (return_call $f)))", "type mismatch")
    invalid(
        "(module (type $t (func (result i64))) (table 1 funcref)"
        " (func (result i32) (return_call_indirect (type $t) (i32.const 0))))",
        "type mismatch",
    )
    with pytest.raises(DecodeError, match="illegal opcode"):
        valid("(module (func $f) (func (return_call $f)))", features=Features(tail_call=False))


def test_references():
    invalid("(module (func $f) (func (drop (ref.func $f))))", "undeclared function reference")
    valid("(module (func $f) (elem declare func $f) (func (drop (ref.func $f))))")
    valid("(module (func $f) (export \"f\" (func $f)) (func (drop (ref.func $f))))")
    valid("(module (func $f) (global funcref (ref.func $f)) (func (drop (ref.func $f))))")
    invalid("(module (func (drop (ref.is_null (i32.const 0)))))", "type mismatch")
    invalid(
        "(module (table 1 funcref) (table 1 externref) (func (table.copy 0 1 (i32.const 0) (i32.const 0) (i32.const 0))))",
        "type mismatch",
    )
    invalid("(module (table 1 funcref) (func (elem.drop 0)))", "unknown elem segment")
    invalid("(module (table 1 externref) (elem funcref) (func (table.init 0 0 (i32.const 0) (i32.const 0) (i32.const 0))))",
            "type mismatch")


def test_constant_expressions():
    valid("(module (global i32 (i32.add (i32.const 1) (i32.mul (i32.const 2) (i32.const 3)))))")
    invalid("(module (global i32 (i32.add (i32.const 1) (i32.const 2))))", "constant expression required",
            features=Features(extended_const=False))
    invalid("(module (global i32 (i32.div_s (i32.const 1) (i32.const 2))))", "constant expression required")
    invalid("(module (global i64 (i32.const 0)))", "type mismatch")
    invalid("(module (global (import \"a\" \"b\") (mut i32)) (global i32 (global.get 0)))", "constant expression")
    valid("(module (global (import \"a\" \"b\") i32) (global i32 (global.get 0)))")
    invalid("(module (global i32 (i32.const 0)) (global i32 (global.get 0)))", "unknown global")
    invalid("(module (memory 1) (data (i64.const 0) \"\"))", "type mismatch")
    invalid("(module (table 1 funcref) (elem (i32.const 0) externref (ref.null extern)))", "type mismatch")


def test_module_level_rules():
    invalid("(module (func $f (param i32)) (start $f))", "start function")
    invalid("(module (func $f) (export \"a\" (func $f)) (export \"a\" (func $f)))", "duplicate export name")
    invalid("(module (export \"a\" (global 0)))", "unknown global")
    invalid("(module (memory 1) (data (memory 1) (i32.const 0) \"\"))", "unknown memory")


def test_error_carries_function_index_and_offset():
    data = wat("(module (func) (func (result i32) (i64.const 0)))")
    with pytest.raises(ValidationError) as ei:
        parse_module(data)
    e = ei.value
    assert e.func_index == 1 and e.offset is not None
    assert data[e.offset] == 0x0B  # the `end` where the mismatch shows
    assert "func 1" in str(e)


def test_lazy_validation():
    data = wat("(module (func (result i32) (i32.const 0)) (func (result i32) (i64.const 0)))")
    with pytest.raises(ValidationError):
        parse_module(data, validate="eager")
    m = parse_module(data, validate="lazy")
    assert m.validated == set()
    validate_function(m, 0)
    assert m.validated == {0}
    with pytest.raises(ValidationError) as ei:
        validate_function(m, 1)
    assert ei.value.func_index == 1 and m.validated == {0}
    m = parse_module(data, validate="none")
    assert len(decode_body(m, 1)[1]) == 2
    # validating a body after validate="none" checks the module-level rules first
    m = parse_module(wat("(module (func) (export \"a\" (func 0)) (export \"a\" (func 0)))"), validate="none")
    with pytest.raises(ValidationError, match="duplicate export name"):
        validate_function(m, 0)
    with pytest.raises(ValidationError):  # module-level problems are found in lazy mode too
        parse_module(wat("(module (func $f (param i32)) (start $f))"), validate="lazy")
