"""The binary decoder (frontend/decoder.py, leb.py, opcodes.py)."""

from __future__ import annotations

import pytest
import wasmtime
from frontend_spec_util import assertions, spec_files

from deadeye.frontend import leb
from deadeye.frontend.decoder import decode_body, decode_module
from deadeye.frontend.module import Features, parse_module
from deadeye.frontend.opcodes import BY_CODE, OPS, PREFIXED, SINGLE, encode_opcode
from deadeye.ir.errors import DecodeError, ValidationError
from deadeye.ir.types import FuncType, ValType

HEADER = b"\0asm\x01\0\0\0"
CORE = Features(multi_memory=False, tail_call=False, extended_const=False)  # the core scripts predate them


def section(sec_id: int, payload: bytes) -> bytes:
    return bytes([sec_id]) + leb.encode_u(len(payload)) + payload


def vec(items: list[bytes]) -> bytes:
    return leb.encode_u(len(items)) + b"".join(items)


def name(s: str) -> bytes:
    b = s.encode()
    return leb.encode_u(len(b)) + b


def one_func(body: bytes, locals_: bytes = b"\0", extra: bytes = b"", type_: bytes = b"\x60\0\0") -> bytes:
    """A module with one function of type `type_` whose body is `locals_ + body`."""
    code = locals_ + body
    return (
        HEADER
        + section(1, vec([type_]))
        + section(3, vec([b"\0"]))
        + extra
        + section(10, vec([leb.encode_u(len(code)) + code]))
    )


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def malformed(data: bytes, features: Features | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as ei:
        parse_module(data, features=features)
    return ei.value


# -- LEB128 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reader, raw, value",
    [
        (leb.read_u32, b"\x00", 0),
        (leb.read_u32, b"\x7f", 127),
        (leb.read_u32, b"\x80\x01", 128),
        (leb.read_u32, b"\xff\xff\xff\xff\x0f", 0xFFFFFFFF),
        (leb.read_u32, b"\x80\x80\x80\x80\x00", 0),  # overlong but within 5 bytes
        (leb.read_s32, b"\x7f", -1),
        (leb.read_s32, b"\x40", -64),
        (leb.read_s32, b"\x3f", 63),
        (leb.read_s32, b"\xff\xff\xff\xff\x07", 0x7FFFFFFF),
        (leb.read_s32, b"\x80\x80\x80\x80\x78", -(2**31)),
        (leb.read_s32, b"\xff\xff\xff\xff\x7f", -1),
        (leb.read_s64, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00", 2**63 - 1),
        (leb.read_s64, b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x7f", -(2**63)),
        (leb.read_u64, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 2**64 - 1),
        (leb.read_s33, b"\xff\xff\xff\xff\x0f", 2**32 - 1),
        (leb.read_s33, b"\x80\x80\x80\x80\x70", -(2**32)),
    ],
)
def test_leb_values(reader, raw, value):
    assert reader(raw, 0, len(raw)) == (value, len(raw))


@pytest.mark.parametrize(
    "reader, raw, message",
    [
        (leb.read_u32, b"\xff\xff\xff\xff\x1f", "integer too large"),  # bit 32 set
        (leb.read_u32, b"\x80\x80\x80\x80\x80\x00", "integer representation too long"),
        (leb.read_u32, b"\x80\x80", "unexpected end"),
        (leb.read_u32, b"", "unexpected end"),
        (leb.read_s32, b"\xff\xff\xff\xff\x0f", "integer too large"),  # sign bits disagree
        (leb.read_s32, b"\x80\x80\x80\x80\x70", "integer too large"),
        (leb.read_s32, b"\xff\xff\xff\xff\xff\x7f", "integer representation too long"),
        (leb.read_s64, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "integer too large"),
        (leb.read_s64, b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", "integer representation too long"),
        (leb.read_s33, b"\xff\xff\xff\xff\x1f", "integer too large"),
        (leb.read_u64, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", "integer too large"),
    ],
)
def test_leb_errors(reader, raw, message):
    with pytest.raises(DecodeError) as ei:
        reader(raw, 0, len(raw))
    assert ei.value.message == message
    assert ei.value.offset is not None


def test_leb_end_inside_section_vs_file():
    data = b"\x80\x80\x00"
    with pytest.raises(DecodeError, match="unexpected end of section or function"):
        leb.read_u32(data, 0, 2)  # stops at a section boundary before the data's end
    with pytest.raises(DecodeError) as ei:
        leb.read_u32(data[:2], 0, 2)
    assert ei.value.message == "unexpected end"


@pytest.mark.parametrize("value", [0, 1, 63, 64, 127, 128, 2**31 - 1, 2**32 - 1])
def test_leb_roundtrip_unsigned(value):
    raw = leb.encode_u(value)
    assert leb.read_u32(raw, 0, len(raw)) == (value, len(raw))


@pytest.mark.parametrize("value", [0, -1, 63, -64, 64, -65, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)])
def test_leb_roundtrip_signed(value):
    raw = leb.encode_s(value)
    assert leb.read_s64(raw, 0, len(raw)) == (value, len(raw))


# -- the opcode table --------------------------------------------------------------------------


def test_opcode_table_is_consistent():
    assert len(PREFIXED[0xFD]) == 236  # every SIMD op of Wasm 2.0 (no relaxed SIMD)
    assert len(PREFIXED[0xFC]) == 18
    for name_, info in OPS.items():
        assert BY_CODE[info.code] is info
        raw = encode_opcode(info)
        if isinstance(info.code, int):
            assert SINGLE[raw[0]] is info
        else:
            sub, n = leb.read_u32(raw, 1, len(raw))
            assert PREFIXED[raw[0]][sub] is info and n == len(raw)
        if info.imm.startswith("memarg"):
            assert info.size == 1 << info.align
        if "lane" in info.imm:
            assert info.lanes > 0


def test_opcode_table_samples():
    assert OPS["i32.add"].params == (ValType.I32, ValType.I32) and OPS["i32.add"].results == (ValType.I32,)
    assert OPS["i64.load32_u"].align == 2 and OPS["i64.load32_u"].results == (ValType.I64,)
    assert OPS["v128.load32_lane"].code == (0xFD, 86) and OPS["v128.load32_lane"].lanes == 4
    assert OPS["i8x16.shuffle"].imm == "shuffle16"
    assert OPS["f64.convert_i64_u"].params == (ValType.I64,)
    assert OPS["i32.trunc_sat_f64_u"].code == (0xFC, 3)
    assert OPS["memory.init"].imm == "dataidx+memidx"
    assert OPS["f64x2.convert_low_i32x4_u"].code == (0xFD, 255)
    assert OPS["i16x8.extract_lane_u"].results == (ValType.I32,)
    assert OPS["return_call_indirect"].code == 0x13
    assert {n for n, i in OPS.items() if i.const} >= {"i32.add", "i64.mul", "global.get", "v128.const"}


def test_every_opcode_decodes_from_wat():
    """A module using a broad sample of instructions decodes into the names we expect."""
    data = wat(
        """(module (memory 1) (memory 1) (table 2 funcref) (elem declare func 0)
        (func (param i32 v128) (result v128)
          (drop (i32.load8_u offset=3 (local.get 0)))
          (drop (i64.load 1 offset=8 align=4 (local.get 0)))
          (drop (v128.load32_lane 1 offset=4 2 (local.get 0) (local.get 1)))
          (drop (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 31 (local.get 1) (local.get 1)))
          (memory.copy 1 0 (i32.const 0) (i32.const 0) (i32.const 0))
          (drop (ref.func 0))
          (drop (i64.const -1)) (drop (f32.const -0.0)) (drop (i32.const -2))
          (v128.const i32x4 1 2 3 4)))"""
    )
    m = parse_module(data)
    locals_, instrs = decode_body(m, 0)
    assert locals_ == []
    by_name = {}
    for ins in instrs:
        by_name.setdefault(ins.op, ins)
    assert by_name["i32.load8_u"].imm == (0, 3, 0)
    assert by_name["i64.load"].imm == (2, 8, 1)
    assert by_name["v128.load32_lane"].imm == (2, 4, 1, 2)
    assert by_name["i8x16.shuffle"].imm == (tuple(range(15)) + (31,),)
    assert by_name["memory.copy"].imm == (1, 0)
    assert by_name["i64.const"].imm == (2**64 - 1,)
    assert by_name["f32.const"].imm == (0x80000000,)
    assert (2**32 - 2,) in [i.imm for i in instrs if i.op == "i32.const"]
    assert by_name["v128.const"].imm == ((4 << 96) | (3 << 64) | (2 << 32) | 1,)
    assert instrs[-1].op == "end"
    offsets = [i.offset for i in instrs]
    assert offsets == sorted(offsets) and m.body_start[0] < offsets[0] < m.body_end[0]


# -- header and sections ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "unexpected end"),
        (b"\0as", "unexpected end"),
        (b"asm\0", "magic header not detected"),
        (b"\0asm\x01\0\0", "unexpected end"),
        (b"\0asm\x02\0\0\0", "unknown binary version"),
        (HEADER + b"\x0d\x00", "malformed section id"),
        (HEADER + b"\x01\x05\x00", "unexpected end"),
        (HEADER + section(1, b"\x05\x60\x00\x00"), "length out of bounds"),
        (HEADER + section(1, b"\x00\x00"), "section size mismatch"),
        (HEADER + section(3, b"\0") + section(1, b"\0"), "unexpected content after last section"),
        (HEADER + section(1, b"\0") + section(1, b"\0"), "unexpected content after last section"),
        (HEADER + section(2, vec([name("a") + name("b") + b"\x04\0"])), "malformed import kind"),
        (HEADER + section(6, vec([b"\x7f\x02\x41\0\x0b"])), "malformed mutability"),
        (HEADER + section(4, vec([b"\x7b\0\0"])), "malformed reference type"),
        (HEADER + section(7, vec([b"\x02\xff\xfe\x00\x00"])), "malformed UTF-8 encoding"),
        (HEADER + section(3, vec([b"\0"])), "function and code section have inconsistent lengths"),
        (HEADER + section(12, b"\x01"), "data count and data section have inconsistent lengths"),
        (HEADER + section(0, b"\x02\xc0\x80"), "malformed UTF-8 encoding"),
    ],
)
def test_module_errors(data, message):
    e = malformed(data)
    assert e.message.startswith(message), e
    assert e.offset is not None


def test_error_offsets_point_at_the_problem():
    bad_section_at = len(HEADER) + 3
    e = malformed(HEADER + section(1, b"\0") + b"\x0e\x00")
    assert e.message == "malformed section id" and e.offset == bad_section_at
    data = one_func(b"\x41\x00\xff\x0b")  # 0xff is no opcode
    e = malformed(data)
    assert e.message == "illegal opcode" and e.func_index == 0
    assert data[e.offset] == 0xFF
    assert "offset 0x" in str(e) and "func 0" in str(e)


def test_sections_decode():
    data = wat(
        """(module $mod
          (type $t (func (param i32 i64) (result f32)))
          (import "env" "f" (func $imp (type $t)))
          (import "env" "tab" (table 1 10 funcref))
          (import "env" "mem" (memory 1 2))
          (import "env" "g" (global $g i32))
          (func $own (local $a i32) (local $b f64) (local i32 i32) nop)
          (table 3 externref)
          (memory 0 65536)
          (memory 2)
          (global (mut i64) (i64.const 7))
          (global i32 (i32.add (global.get $g) (i32.const 1)))
          (export "own" (func $own))
          (export "m2" (memory 2))
          (start $own)
          (elem (table 0) (i32.const 0) func $own)
          (elem funcref (ref.null func))
          (elem declare func $imp)
          (data (memory 1) (i32.const 8) "hi")
          (data "passive"))"""
    )
    m = parse_module(data)
    assert m.types[0] == FuncType((ValType.I32, ValType.I64), (ValType.F32,))
    assert [i.kind for i in m.imports] == ["func", "table", "memory", "global"]
    assert (m.num_imported_funcs, m.num_imported_tables, m.num_imported_memories, m.num_imported_globals) == (
        1, 1, 1, 1)
    assert m.imports[1].desc.limits.max == 10 and m.imports[2].desc.limits.min == 1
    assert len(m.func_types) == 1 and m.func_type(1) == FuncType((), ())
    assert m.tables[0].elem == ValType.EXTERNREF and m.tables[0].limits.min == 3
    assert [mm.limits for mm in m.memories] == [type(m.memories[0].limits)(0, 65536), type(m.memories[0].limits)(2)]
    assert m.globals[0].type.mutable and m.globals[0].init.instrs[0].imm == (7,)
    assert [i.op for i in m.globals[1].init.instrs] == ["global.get", "i32.const", "i32.add"]
    assert [(e.name, e.kind, e.index) for e in m.exports] == [("own", "func", 1), ("m2", "memory", 2)]
    assert m.start == 1
    assert [e.mode for e in m.elems] == ["active", "passive", "declarative"]
    assert m.elems[0].items[0].instrs[0].op == "ref.func" and m.elems[0].items[0].instrs[0].imm == (1,)
    assert m.elems[1].items[0].instrs[0].op == "ref.null"
    d0, d1 = m.datas
    assert d0.mode == "active" and d0.memory == 1 and m.data[d0.start : d0.end] == b"hi"
    assert d1.mode == "passive" and m.data[d1.start : d1.end] == b"passive"
    locals_, instrs = decode_body(m, 0)
    assert locals_ == [ValType.I32, ValType.F64, ValType.I32, ValType.I32]
    assert [i.op for i in instrs] == ["nop", "end"]
    assert m.names.module == "mod"
    assert m.names.funcs == {0: "imp", 1: "own"}
    assert m.names.locals[1] == {0: "a", 1: "b"}
    assert any(n == "name" for n, _ in m.customs)


def test_all_element_encodings():
    """The eight element segment encodings (flags 0-7), built by hand."""
    funcs = vec([b"\0"])
    exprs = vec([b"\xd2\x00\x0b"])
    off = b"\x41\x00\x0b"
    segs = [
        b"\x00" + off + funcs,
        b"\x01\x00" + funcs,
        b"\x02\x00" + off + b"\x00" + funcs,
        b"\x03\x00" + funcs,
        b"\x04" + off + exprs,
        b"\x05\x70" + exprs,
        b"\x06\x00" + off + b"\x70" + exprs,
        b"\x07\x70" + exprs,
    ]
    data = (
        HEADER + section(1, vec([b"\x60\0\0"])) + section(3, vec([b"\0"])) + section(4, vec([b"\x70\x00\x01"]))
        + section(9, vec(segs)) + section(10, vec([b"\x02\x00\x0b"]))
    )
    m = parse_module(data)
    assert [e.mode for e in m.elems] == ["active", "passive", "active", "declarative"] * 2
    for e in m.elems:
        assert e.elem_type == ValType.FUNCREF
        assert [(i.op, i.imm) for i in e.items[0].instrs] == [("ref.func", (0,))]
    bad = HEADER + section(9, vec([b"\x08"]))
    assert malformed(bad).message == "malformed elements segment kind"
    bad = HEADER + section(9, vec([b"\x01\x01" + funcs]))
    assert malformed(bad).message == "malformed element kind"


def test_data_count_rules():
    mem = section(5, vec([b"\x00\x01"]))
    init = b"\x41\0\x41\0\x41\0\xfc\x08\x00\x00\x0b"
    datas = section(11, vec([b"\x01\x00"]))
    code = section(10, vec([leb.encode_u(len(init) + 1) + b"\0" + init]))
    base = HEADER + section(1, vec([b"\x60\0\0"])) + section(3, vec([b"\0"])) + mem
    assert parse_module(base + section(12, b"\x01") + code + datas).data_count == 1
    e = malformed(base + code + datas)
    assert e.message == "data count section required" and e.func_index == 0
    assert malformed(base + section(12, b"\x02") + code + datas).message.startswith("data count and data")
    with pytest.raises(ValidationError, match="unknown data segment"):
        parse_module(base + section(12, b"\x00") + code + section(11, vec([])))


def test_too_many_locals_and_limits():
    assert malformed(one_func(b"\x0b", b"\x02\xff\xff\xff\xff\x0f\x7f\x02\x7e")).message == "too many locals"
    assert malformed(one_func(b"\x0b", b"\x01\x80\x80\x80\x80\x10\x7f")).message == "integer too large"
    locals_, _ = decode_body(parse_module(one_func(b"\x0b", b"\x02\x03\x7f\x01\x7b")), 0)
    assert locals_ == [ValType.I32] * 3 + [ValType.V128]


def test_body_end_errors():
    assert malformed(one_func(b"\x01")).message == "END opcode expected"
    e = malformed(one_func(b"\x0b\x01"))
    assert e.message.startswith("operators remaining") and e.func_index == 0


def test_name_section_malformed_is_ignored():
    good = one_func(b"\x0b")
    sub = b"\x01" + leb.encode_u(5) + vec([b"\x00" + name("f")])[:-1] + b"\xff"  # bad UTF-8 name
    m = parse_module(good + section(0, name("name") + sub))
    assert m.names.funcs == {} and m.customs[-1][0] == "name"
    ok = b"\x01" + leb.encode_u(5) + vec([b"\x00" + name("fn")])
    m = parse_module(good + section(0, name("name") + ok))
    assert m.names.funcs == {0: "fn"}
    assert m.func_name(0) == "fn"


def test_custom_sections_kept_anywhere():
    data = HEADER + section(0, name("a") + b"xyz") + section(1, vec([])) + section(0, name("b"))
    m = parse_module(data)
    assert m.customs == [("a", b"xyz"), ("b", b"")]


def test_lazy_bodies_are_not_decoded_at_load():
    data = one_func(b"\xff\x0b")
    m = parse_module(data, validate="lazy")  # the bad opcode is only seen on first use
    from deadeye.frontend.module import validate_function

    with pytest.raises(DecodeError, match="illegal opcode"):
        validate_function(m, 0)
    with pytest.raises(DecodeError):
        decode_body(m, 0)
    assert decode_module(data).body_end[0] == len(data)


def test_features_gate_proposals():
    tail = one_func(b"\x12\x00\x0b")
    parse_module(tail)
    assert malformed(tail, Features(tail_call=False)).message == "illegal opcode"
    grow = one_func(b"\x41\x00\x40\x01\x1a\x0b", extra=section(5, vec([b"\x00\x01"])))
    with pytest.raises(ValidationError, match="unknown memory 1"):
        parse_module(grow)  # with multi-memory the byte is a memory index
    assert malformed(grow, CORE).message == "zero byte expected"
    # memarg bit 6 selects a memory with multi-memory; before it, flags >= 32 are malformed
    load = one_func(b"\x41\x00\x28\x42\x01\x00\x1a\x0b", extra=section(5, vec([b"\x00\x01", b"\x00\x01"])))
    _, instrs = decode_body(parse_module(load), 0)
    assert instrs[1].imm == (2, 0, 1)
    with pytest.raises(DecodeError, match="malformed memop flags"):
        decode_body(decode_module(load, CORE), 0)


# -- the spec suite's malformed binaries -----------------------------------------------------


def _features_for(path) -> Features | None:
    return CORE if "core" in path.parts else None


def test_spec_binary_assert_malformed():
    """Every `(module binary ...)` in an assert_malformed of the vendored suite raises
    DecodeError (core scripts with the pre-multi-memory feature set)."""
    checked = 0
    for path in spec_files("core/*.wast", "proposals/*/*.wast"):
        for line, kind, payload, msg in assertions(path, "assert_malformed"):
            if kind != "binary":
                continue  # text-level malformations are the text parser's business
            with pytest.raises(DecodeError) as ei:
                parse_module(payload, features=_features_for(path))
                pytest.fail(f"{path.name}:{line}: accepted, expected {msg!r}")
            assert ei.value.offset is not None, (path.name, line)
            checked += 1
    assert checked >= 800  # binary*.wast, custom.wast, utf8 and the proposals' copies


def test_spec_binary_modules_decode():
    """The suite's valid binary modules (`(module binary ...)` outside assertions)."""
    from frontend_spec_util import children, module_payload, top_forms

    checked = 0
    for path in spec_files("core/binary*.wast", "core/custom.wast", "proposals/*/binary*.wast"):
        for line, form in top_forms(path.read_text(encoding="utf-8")):
            if form.startswith("(module") and children(form)[1:2] != [] and "binary" in children(form)[1:3]:
                _, payload = module_payload(form)
                parse_module(payload, features=_features_for(path))
                checked += 1
    assert checked >= 50
