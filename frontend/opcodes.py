"""The one table of every Wasm instruction (2.0 core with SIMD, plus tail calls,
extended constant expressions and multi-memory).

Each row gives the text-format name, the binary encoding (a byte, or `(prefix, sub)` for
the 0xFC/0xFD prefixed ops), the immediate kind, and for the plain operators their stack
signature, so the decoder's dispatch and most of the validator are derived from data.

Immediate kinds and the shape of `Instr.imm` they produce:

    ""                  ()
    "blocktype"         (bt,)  bt is None ([] -> []), a ValType ([] -> [t]) or a plain int
                               type index (test with `type(bt) is int`)
    "labelidx"          (depth,)
    "br_table"          (targets: tuple[int, ...], default: int)
    "funcidx"           (funcidx,)
    "typeidx+tableidx"  (typeidx, tableidx)
    "localidx"          (localidx,)
    "globalidx"         (globalidx,)
    "tableidx"          (tableidx,)
    "tableidx+tableidx" (dst, src)
    "elemidx"           (elemidx,)
    "elemidx+tableidx"  (elemidx, tableidx)
    "dataidx"           (dataidx,)
    "dataidx+memidx"    (dataidx, memidx)
    "memidx"            (memidx,)
    "memidx+memidx"     (dst, src)
    "memarg"            (align_log2, offset, memidx)
    "memarg+lane"       (align_log2, offset, memidx, lane)
    "lane"              (lane,)
    "shuffle16"         (lanes: tuple of 16 ints,)
    "i32" / "i64"       (value as an unsigned bit pattern,)
    "f32bits"/"f64bits" (IEEE bits,)
    "v128"              (128-bit unsigned int, lane 0 in the low bits,)
    "reftype"           (ValType,)
    "select_types"      (types: tuple[ValType, ...],)
"""

from __future__ import annotations

from dataclasses import dataclass

from deadeye.ir.types import ValType

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF

PREFIX_MISC = 0xFC
PREFIX_SIMD = 0xFD


@dataclass(frozen=True, slots=True)
class OpInfo:
    name: str
    code: int | tuple[int, int]
    imm: str = ""
    # Stack signature of the plain operators (loads, stores, arithmetic, SIMD lanes...);
    # None for the ops whose typing depends on the context (control, locals, calls...).
    params: tuple[ValType, ...] | None = None
    results: tuple[ValType, ...] | None = None
    align: int = -1  # memory access: natural (maximum) alignment, log2 bytes
    size: int = 0  # memory access: bytes accessed
    lanes: int = 0  # lane immediates must be < lanes
    const: bool = False  # allowed in a constant expression
    feature: str | None = None  # proposal that introduced it ("tail_call", "extended_const")

    @property
    def is_plain(self) -> bool:
        return self.params is not None


_TYPES = {"i32": I32, "i64": I64, "f32": F32, "f64": F64, "v128": V128}
_ROWS: list[OpInfo] = []


def _sig(text: str | None) -> tuple:
    if text is None:
        return None, None
    left, right = text.split("->")
    return tuple(_TYPES[t] for t in left.split()), tuple(_TYPES[t] for t in right.split())


def _op(name: str, code, imm: str = "", sig: str | None = None, **kw) -> None:
    params, results = _sig(sig)
    _ROWS.append(OpInfo(name, code, imm, params, results, **kw))


# -- control and parametric ----------------------------------------------------------
for _name, _code, _imm in [
    ("unreachable", 0x00, ""), ("nop", 0x01, ""), ("block", 0x02, "blocktype"),
    ("loop", 0x03, "blocktype"), ("if", 0x04, "blocktype"), ("else", 0x05, ""),
    ("end", 0x0B, ""), ("br", 0x0C, "labelidx"), ("br_if", 0x0D, "labelidx"),
    ("br_table", 0x0E, "br_table"), ("return", 0x0F, ""), ("call", 0x10, "funcidx"),
    ("call_indirect", 0x11, "typeidx+tableidx"), ("drop", 0x1A, ""), ("select", 0x1B, ""),
    ("select_t", 0x1C, "select_types"),
    ("local.get", 0x20, "localidx"), ("local.set", 0x21, "localidx"),
    ("local.tee", 0x22, "localidx"), ("global.get", 0x23, "globalidx"),
    ("global.set", 0x24, "globalidx"), ("table.get", 0x25, "tableidx"),
    ("table.set", 0x26, "tableidx"),
    ("memory.size", 0x3F, "memidx"), ("memory.grow", 0x40, "memidx"),
    ("ref.null", 0xD0, "reftype"), ("ref.is_null", 0xD1, ""), ("ref.func", 0xD2, "funcidx"),
]:
    _op(_name, _code, _imm, const=_name in ("global.get", "ref.null", "ref.func"))
_op("return_call", 0x12, "funcidx", feature="tail_call")
_op("return_call_indirect", 0x13, "typeidx+tableidx", feature="tail_call")

# -- scalar memory access: (name, code, natural align log2) --------------------------
for _name, _code, _align in [
    ("i32.load", 0x28, 2), ("i64.load", 0x29, 3), ("f32.load", 0x2A, 2), ("f64.load", 0x2B, 3),
    ("i32.load8_s", 0x2C, 0), ("i32.load8_u", 0x2D, 0), ("i32.load16_s", 0x2E, 1),
    ("i32.load16_u", 0x2F, 1), ("i64.load8_s", 0x30, 0), ("i64.load8_u", 0x31, 0),
    ("i64.load16_s", 0x32, 1), ("i64.load16_u", 0x33, 1), ("i64.load32_s", 0x34, 2),
    ("i64.load32_u", 0x35, 2),
]:
    _op(_name, _code, "memarg", f"i32 -> {_name[:3]}", align=_align, size=1 << _align)
for _name, _code, _align in [
    ("i32.store", 0x36, 2), ("i64.store", 0x37, 3), ("f32.store", 0x38, 2), ("f64.store", 0x39, 3),
    ("i32.store8", 0x3A, 0), ("i32.store16", 0x3B, 1), ("i64.store8", 0x3C, 0),
    ("i64.store16", 0x3D, 1), ("i64.store32", 0x3E, 2),
]:
    _op(_name, _code, "memarg", f"i32 {_name[:3]} ->", align=_align, size=1 << _align)

# -- constants ----------------------------------------------------------------------------
_op("i32.const", 0x41, "i32", "-> i32", const=True)
_op("i64.const", 0x42, "i64", "-> i64", const=True)
_op("f32.const", 0x43, "f32bits", "-> f32", const=True)
_op("f64.const", 0x44, "f64bits", "-> f64", const=True)

# -- scalar numeric operators, generated from their families ------------------------------
_ICMP = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]
_FCMP = ["eq", "ne", "lt", "gt", "le", "ge"]
_IUN = ["clz", "ctz", "popcnt"]
_IBIN = ["add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u", "and", "or", "xor",
         "shl", "shr_s", "shr_u", "rotl", "rotr"]
_FUN = ["abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt"]
_FBIN = ["add", "sub", "mul", "div", "min", "max", "copysign"]
_EXTENDED_CONST = {"add", "sub", "mul"}


def _family(t: str, start: int, names: list[str], sig: str, **kw) -> int:
    for i, n in enumerate(names):
        extra = dict(kw)
        if t in ("i32", "i64") and n in _EXTENDED_CONST and sig.count("T") == 3:
            extra.update(const=True)
        _op(f"{t}.{n}", start + i, "", sig.replace("T", t), **extra)
    return start + len(names)


_op("i32.eqz", 0x45, "", "i32 -> i32")
_family("i32", 0x46, _ICMP, "T T -> i32")
_op("i64.eqz", 0x50, "", "i64 -> i32")
_family("i64", 0x51, _ICMP, "T T -> i32")
_family("f32", 0x5B, _FCMP, "T T -> i32")
_family("f64", 0x61, _FCMP, "T T -> i32")
_family("i32", 0x67, _IUN, "T -> T")
_family("i32", 0x6A, _IBIN, "T T -> T")
_family("i64", 0x79, _IUN, "T -> T")
_family("i64", 0x7C, _IBIN, "T T -> T")
_family("f32", 0x8B, _FUN, "T -> T")
_family("f32", 0x92, _FBIN, "T T -> T")
_family("f64", 0x99, _FUN, "T -> T")
_family("f64", 0xA0, _FBIN, "T T -> T")

# Conversions: the result type is the name's prefix, the operand type its suffix.
for _code, _name in enumerate([
    "i32.wrap_i64", "i32.trunc_f32_s", "i32.trunc_f32_u", "i32.trunc_f64_s", "i32.trunc_f64_u",
    "i64.extend_i32_s", "i64.extend_i32_u", "i64.trunc_f32_s", "i64.trunc_f32_u",
    "i64.trunc_f64_s", "i64.trunc_f64_u", "f32.convert_i32_s", "f32.convert_i32_u",
    "f32.convert_i64_s", "f32.convert_i64_u", "f32.demote_f64", "f64.convert_i32_s",
    "f64.convert_i32_u", "f64.convert_i64_s", "f64.convert_i64_u", "f64.promote_f32",
    "i32.reinterpret_f32", "i64.reinterpret_f64", "f32.reinterpret_i32", "f64.reinterpret_i64",
], start=0xA7):
    _src = _name.split("_")[1][-3:]
    _op(_name, _code, "", f"{_src} -> {_name[:3]}")
for _code, _name in enumerate(
    ["i32.extend8_s", "i32.extend16_s", "i64.extend8_s", "i64.extend16_s", "i64.extend32_s"],
    start=0xC0,
):
    _op(_name, _code, "", f"{_name[:3]} -> {_name[:3]}")

# -- 0xFC: saturating truncation, bulk memory and tables ---------------------------------
for _sub, _name in enumerate([
    "i32.trunc_sat_f32_s", "i32.trunc_sat_f32_u", "i32.trunc_sat_f64_s", "i32.trunc_sat_f64_u",
    "i64.trunc_sat_f32_s", "i64.trunc_sat_f32_u", "i64.trunc_sat_f64_s", "i64.trunc_sat_f64_u",
]):
    _op(_name, (PREFIX_MISC, _sub), "", f"{_name.split('_')[2]} -> {_name[:3]}")
for _sub, _name, _imm in [
    (8, "memory.init", "dataidx+memidx"), (9, "data.drop", "dataidx"),
    (10, "memory.copy", "memidx+memidx"), (11, "memory.fill", "memidx"),
    (12, "table.init", "elemidx+tableidx"), (13, "elem.drop", "elemidx"),
    (14, "table.copy", "tableidx+tableidx"), (15, "table.grow", "tableidx"),
    (16, "table.size", "tableidx"), (17, "table.fill", "tableidx"),
]:
    _op(_name, (PREFIX_MISC, _sub), _imm)

# -- 0xFD: SIMD -----------------------------------------------------------------------------


def _simd(sub: int, name: str, imm: str = "", sig: str | None = None, **kw) -> None:
    _op(name, (PREFIX_SIMD, sub), imm, sig, **kw)


_SHAPES = {"i8x16": ("i32", 16), "i16x8": ("i32", 8), "i32x4": ("i32", 4),
           "i64x2": ("i64", 2), "f32x4": ("f32", 4), "f64x2": ("f64", 2)}

for _sub, _name, _align in [
    (0, "v128.load", 4), (1, "v128.load8x8_s", 3), (2, "v128.load8x8_u", 3),
    (3, "v128.load16x4_s", 3), (4, "v128.load16x4_u", 3), (5, "v128.load32x2_s", 3),
    (6, "v128.load32x2_u", 3), (7, "v128.load8_splat", 0), (8, "v128.load16_splat", 1),
    (9, "v128.load32_splat", 2), (10, "v128.load64_splat", 3),
    (92, "v128.load32_zero", 2), (93, "v128.load64_zero", 3),
]:
    _simd(_sub, _name, "memarg", "i32 -> v128", align=_align, size=1 << _align)
_simd(11, "v128.store", "memarg", "i32 v128 ->", align=4, size=16)
_simd(12, "v128.const", "v128", "-> v128", const=True)
_simd(13, "i8x16.shuffle", "shuffle16", "v128 v128 -> v128", lanes=32)
_simd(14, "i8x16.swizzle", "", "v128 v128 -> v128")
for _i, _shape in enumerate(_SHAPES):
    _simd(15 + _i, f"{_shape}.splat", "", f"{_SHAPES[_shape][0]} -> v128")
_sub = 21
for _shape, (_lt, _n) in _SHAPES.items():
    for _ext in (["extract_lane_s", "extract_lane_u"] if _n > 4 else ["extract_lane"]):
        _simd(_sub, f"{_shape}.{_ext}", "lane", f"v128 -> {_lt}", lanes=_n)
        _sub += 1
    _simd(_sub, f"{_shape}.replace_lane", "lane", f"v128 {_lt} -> v128", lanes=_n)
    _sub += 1
_sub = 35
for _shape, _names in [("i8x16", _ICMP), ("i16x8", _ICMP), ("i32x4", _ICMP),
                       ("f32x4", _FCMP), ("f64x2", _FCMP)]:
    for _n in _names:
        _simd(_sub, f"{_shape}.{_n}", "", "v128 v128 -> v128")
        _sub += 1
_simd(77, "v128.not", "", "v128 -> v128")
for _sub, _n in [(78, "and"), (79, "andnot"), (80, "or"), (81, "xor")]:
    _simd(_sub, f"v128.{_n}", "", "v128 v128 -> v128")
_simd(82, "v128.bitselect", "", "v128 v128 v128 -> v128")
_simd(83, "v128.any_true", "", "v128 -> i32")
for _i, _bits in enumerate((8, 16, 32, 64)):
    _align = _i
    _simd(84 + _i, f"v128.load{_bits}_lane", "memarg+lane", "i32 v128 -> v128",
          align=_align, size=_bits // 8, lanes=128 // _bits)
    _simd(88 + _i, f"v128.store{_bits}_lane", "memarg+lane", "i32 v128 ->",
          align=_align, size=_bits // 8, lanes=128 // _bits)

# The rest of the SIMD space: every op here is a lane-wise [v128...] -> v128 operator
# except where its signature is given: (sub, name, signature or None for unary v128).
_UN, _BIN, _SHIFT, _TEST = "v128 -> v128", "v128 v128 -> v128", "v128 i32 -> v128", "v128 -> i32"
for _sub, _name, _s in [
    (94, "f32x4.demote_f64x2_zero", _UN), (95, "f64x2.promote_low_f32x4", _UN),
    (96, "i8x16.abs", _UN), (97, "i8x16.neg", _UN), (98, "i8x16.popcnt", _UN),
    (99, "i8x16.all_true", _TEST), (100, "i8x16.bitmask", _TEST),
    (101, "i8x16.narrow_i16x8_s", _BIN), (102, "i8x16.narrow_i16x8_u", _BIN),
    (103, "f32x4.ceil", _UN), (104, "f32x4.floor", _UN), (105, "f32x4.trunc", _UN),
    (106, "f32x4.nearest", _UN),
    (107, "i8x16.shl", _SHIFT), (108, "i8x16.shr_s", _SHIFT), (109, "i8x16.shr_u", _SHIFT),
    (110, "i8x16.add", _BIN), (111, "i8x16.add_sat_s", _BIN), (112, "i8x16.add_sat_u", _BIN),
    (113, "i8x16.sub", _BIN), (114, "i8x16.sub_sat_s", _BIN), (115, "i8x16.sub_sat_u", _BIN),
    (116, "f64x2.ceil", _UN), (117, "f64x2.floor", _UN),
    (118, "i8x16.min_s", _BIN), (119, "i8x16.min_u", _BIN), (120, "i8x16.max_s", _BIN),
    (121, "i8x16.max_u", _BIN), (122, "f64x2.trunc", _UN), (123, "i8x16.avgr_u", _BIN),
    (124, "i16x8.extadd_pairwise_i8x16_s", _UN), (125, "i16x8.extadd_pairwise_i8x16_u", _UN),
    (126, "i32x4.extadd_pairwise_i16x8_s", _UN), (127, "i32x4.extadd_pairwise_i16x8_u", _UN),
    (128, "i16x8.abs", _UN), (129, "i16x8.neg", _UN), (130, "i16x8.q15mulr_sat_s", _BIN),
    (131, "i16x8.all_true", _TEST), (132, "i16x8.bitmask", _TEST),
    (133, "i16x8.narrow_i32x4_s", _BIN), (134, "i16x8.narrow_i32x4_u", _BIN),
    (135, "i16x8.extend_low_i8x16_s", _UN), (136, "i16x8.extend_high_i8x16_s", _UN),
    (137, "i16x8.extend_low_i8x16_u", _UN), (138, "i16x8.extend_high_i8x16_u", _UN),
    (139, "i16x8.shl", _SHIFT), (140, "i16x8.shr_s", _SHIFT), (141, "i16x8.shr_u", _SHIFT),
    (142, "i16x8.add", _BIN), (143, "i16x8.add_sat_s", _BIN), (144, "i16x8.add_sat_u", _BIN),
    (145, "i16x8.sub", _BIN), (146, "i16x8.sub_sat_s", _BIN), (147, "i16x8.sub_sat_u", _BIN),
    (148, "f64x2.nearest", _UN), (149, "i16x8.mul", _BIN),
    (150, "i16x8.min_s", _BIN), (151, "i16x8.min_u", _BIN), (152, "i16x8.max_s", _BIN),
    (153, "i16x8.max_u", _BIN), (155, "i16x8.avgr_u", _BIN),
    (156, "i16x8.extmul_low_i8x16_s", _BIN), (157, "i16x8.extmul_high_i8x16_s", _BIN),
    (158, "i16x8.extmul_low_i8x16_u", _BIN), (159, "i16x8.extmul_high_i8x16_u", _BIN),
    (160, "i32x4.abs", _UN), (161, "i32x4.neg", _UN),
    (163, "i32x4.all_true", _TEST), (164, "i32x4.bitmask", _TEST),
    (167, "i32x4.extend_low_i16x8_s", _UN), (168, "i32x4.extend_high_i16x8_s", _UN),
    (169, "i32x4.extend_low_i16x8_u", _UN), (170, "i32x4.extend_high_i16x8_u", _UN),
    (171, "i32x4.shl", _SHIFT), (172, "i32x4.shr_s", _SHIFT), (173, "i32x4.shr_u", _SHIFT),
    (174, "i32x4.add", _BIN), (177, "i32x4.sub", _BIN), (181, "i32x4.mul", _BIN),
    (182, "i32x4.min_s", _BIN), (183, "i32x4.min_u", _BIN), (184, "i32x4.max_s", _BIN),
    (185, "i32x4.max_u", _BIN), (186, "i32x4.dot_i16x8_s", _BIN),
    (188, "i32x4.extmul_low_i16x8_s", _BIN), (189, "i32x4.extmul_high_i16x8_s", _BIN),
    (190, "i32x4.extmul_low_i16x8_u", _BIN), (191, "i32x4.extmul_high_i16x8_u", _BIN),
    (192, "i64x2.abs", _UN), (193, "i64x2.neg", _UN),
    (195, "i64x2.all_true", _TEST), (196, "i64x2.bitmask", _TEST),
    (199, "i64x2.extend_low_i32x4_s", _UN), (200, "i64x2.extend_high_i32x4_s", _UN),
    (201, "i64x2.extend_low_i32x4_u", _UN), (202, "i64x2.extend_high_i32x4_u", _UN),
    (203, "i64x2.shl", _SHIFT), (204, "i64x2.shr_s", _SHIFT), (205, "i64x2.shr_u", _SHIFT),
    (206, "i64x2.add", _BIN), (209, "i64x2.sub", _BIN), (213, "i64x2.mul", _BIN),
    (214, "i64x2.eq", _BIN), (215, "i64x2.ne", _BIN), (216, "i64x2.lt_s", _BIN),
    (217, "i64x2.gt_s", _BIN), (218, "i64x2.le_s", _BIN), (219, "i64x2.ge_s", _BIN),
    (220, "i64x2.extmul_low_i32x4_s", _BIN), (221, "i64x2.extmul_high_i32x4_s", _BIN),
    (222, "i64x2.extmul_low_i32x4_u", _BIN), (223, "i64x2.extmul_high_i32x4_u", _BIN),
    (224, "f32x4.abs", _UN), (225, "f32x4.neg", _UN), (227, "f32x4.sqrt", _UN),
    (228, "f32x4.add", _BIN), (229, "f32x4.sub", _BIN), (230, "f32x4.mul", _BIN),
    (231, "f32x4.div", _BIN), (232, "f32x4.min", _BIN), (233, "f32x4.max", _BIN),
    (234, "f32x4.pmin", _BIN), (235, "f32x4.pmax", _BIN),
    (236, "f64x2.abs", _UN), (237, "f64x2.neg", _UN), (239, "f64x2.sqrt", _UN),
    (240, "f64x2.add", _BIN), (241, "f64x2.sub", _BIN), (242, "f64x2.mul", _BIN),
    (243, "f64x2.div", _BIN), (244, "f64x2.min", _BIN), (245, "f64x2.max", _BIN),
    (246, "f64x2.pmin", _BIN), (247, "f64x2.pmax", _BIN),
    (248, "i32x4.trunc_sat_f32x4_s", _UN), (249, "i32x4.trunc_sat_f32x4_u", _UN),
    (250, "f32x4.convert_i32x4_s", _UN), (251, "f32x4.convert_i32x4_u", _UN),
    (252, "i32x4.trunc_sat_f64x2_s_zero", _UN), (253, "i32x4.trunc_sat_f64x2_u_zero", _UN),
    (254, "f64x2.convert_low_i32x4_s", _UN), (255, "f64x2.convert_low_i32x4_u", _UN),
]:
    _simd(_sub, _name, "", _s)

# -- the lookup tables everybody uses ------------------------------------------------------
OPS: dict[str, OpInfo] = {}
BY_CODE: dict[int | tuple[int, int], OpInfo] = {}
for _info in _ROWS:
    assert _info.name not in OPS and _info.code not in BY_CODE, _info
    OPS[_info.name] = _info
    BY_CODE[_info.code] = _info

# Byte-indexed dispatch for the single-byte ops (None where the byte is not an opcode).
SINGLE: list[OpInfo | None] = [BY_CODE.get(b) for b in range(256)]
# Sub-opcode dicts of the prefixed spaces.
PREFIXED: dict[int, dict[int, OpInfo]] = {PREFIX_MISC: {}, PREFIX_SIMD: {}}
for _code, _info in BY_CODE.items():
    if isinstance(_code, tuple):
        PREFIXED[_code[0]][_code[1]] = _info

# Text-format spelling of `select` with types is `select (result t)`; keep the plain name
# for display.
DISPLAY_NAME = {"select_t": "select"}


def block_signature(types, bt) -> tuple[tuple[ValType, ...], tuple[ValType, ...]]:
    """(params, results) of a `blocktype` immediate, given the module's type list."""
    if bt is None:
        return (), ()
    if type(bt) is int:
        t = types[bt]
        return t.params, t.results
    return (), (bt,)


def encode_opcode(info: OpInfo) -> bytes:
    """The opcode bytes (prefix + LEB128 sub-opcode) of an instruction."""
    if isinstance(info.code, int):
        return bytes([info.code])
    prefix, sub = info.code
    out = bytearray([prefix])
    while True:
        b = sub & 0x7F
        sub >>= 7
        out.append(b | (0x80 if sub else 0))
        if not sub:
            return bytes(out)
