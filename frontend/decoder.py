"""The Wasm binary decoder.

`decode_module` reads every section into a `Module` but leaves function bodies as byte
ranges; `decode_body` decodes one body on demand (for the validator and the lifter).
Everything wrong with the bytes raises `DecodeError` with the spec's wording and the
byte offset; nothing else escapes, whatever the input (counts are never trusted for
preallocation: every vector is read item by item against the bytes that remain)."""

from __future__ import annotations

import functools
from array import array

from deadeye.ir.errors import DecodeError
from deadeye.ir.types import FuncType, ValType

from .leb import read_s32, read_s33, read_s64, read_u32, unexpected_end
from .module import (
    ConstExpr,
    DataSegment,
    ElemSegment,
    Export,
    Features,
    Global,
    GlobalType,
    Import,
    Instr,
    Limits,
    MemoryType,
    Module,
    Names,
    TableType,
)
from .opcodes import OPS, PREFIXED, SINGLE, OpInfo

MAGIC = b"\0asm"
VERSION = b"\x01\0\0\0"

VALTYPES: dict[int, ValType] = {int(t): t for t in ValType}
REFTYPES: dict[int, ValType] = {0x70: ValType.FUNCREF, 0x6F: ValType.EXTERNREF}
_EXTERN_KINDS = ("func", "table", "memory", "global")
# Canonical order of the non-custom sections (datacount, id 12, sits before code).
_SECTION_RANK = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 12: 10, 10: 11, 11: 12}
# An implementation limit, like wasmtime's: locals are materialised as a list.
MAX_LOCALS = 50_000
U32_MAX = 0xFFFFFFFF
_M32, _M64 = (1 << 32) - 1, (1 << 64) - 1

_END = OPS["end"]


# -- immediate readers: (data, pos, end) -> (imm tuple, pos) ------------------------------


def _rd_index(data, pos, end):
    v, pos = read_u32(data, pos, end)
    return (v,), pos


def _rd_two_indices(data, pos, end):
    a, pos = read_u32(data, pos, end)
    b, pos = read_u32(data, pos, end)
    return (a, b), pos


def _rd_blocktype(data, pos, end):
    if pos >= end:
        raise unexpected_end(data, pos, end)
    b = data[pos]
    if b == 0x40:
        return (None,), pos + 1
    t = VALTYPES.get(b)
    if t is not None:
        return (t,), pos + 1
    start = pos
    v, pos = read_s33(data, pos, end)
    if v < 0:
        raise DecodeError("malformed block type", start)
    return (v,), pos


def _rd_br_table(data, pos, end):
    n, pos = read_u32(data, pos, end)
    if n > end - pos:  # every target takes at least one byte
        raise unexpected_end(data, end, end)
    targets = []
    for _ in range(n):
        t, pos = read_u32(data, pos, end)
        targets.append(t)
    default, pos = read_u32(data, pos, end)
    return (tuple(targets), default), pos


def _rd_i32(data, pos, end):
    v, pos = read_s32(data, pos, end)
    return (v & _M32,), pos


def _rd_i64(data, pos, end):
    v, pos = read_s64(data, pos, end)
    return (v & _M64,), pos


def _fixed_bytes(n: int):
    def read(data, pos, end):
        if pos + n > end:
            raise unexpected_end(data, end, end)
        return (int.from_bytes(data[pos : pos + n], "little"),), pos + n

    return read


def _rd_lane(data, pos, end):
    if pos >= end:
        raise unexpected_end(data, pos, end)
    return (data[pos],), pos + 1


def _rd_shuffle(data, pos, end):
    if pos + 16 > end:
        raise unexpected_end(data, end, end)
    return (tuple(data[pos : pos + 16]),), pos + 16


def _rd_reftype(data, pos, end):
    if pos >= end:
        raise unexpected_end(data, pos, end)
    t = REFTYPES.get(data[pos])
    if t is None:
        raise DecodeError("malformed reference type", pos)
    return (t,), pos + 1


def _rd_select_types(data, pos, end):
    n, pos = read_u32(data, pos, end)
    if n > end - pos:
        raise unexpected_end(data, end, end)
    types = []
    for _ in range(n):
        t, pos = _valtype(data, pos, end)
        types.append(t)
    return (tuple(types),), pos


def _rd_memarg_multi(data, pos, end):
    start = pos
    flags, pos = read_u32(data, pos, end)
    if flags >= 128:
        raise DecodeError("malformed memop flags", start)
    mem = 0
    if flags & 0x40:  # multi-memory: an explicit memory index follows
        mem, pos = read_u32(data, pos, end)
    offset, pos = read_u32(data, pos, end)
    # An alignment above natural (up to 2**63) is the validator's to reject.
    return (flags & 0x3F, offset, mem), pos


def _rd_memarg_single(data, pos, end):
    start = pos
    flags, pos = read_u32(data, pos, end)
    if flags >= 32:
        raise DecodeError("malformed memop flags", start)
    offset, pos = read_u32(data, pos, end)
    return (flags, offset, 0), pos


def _with_lane(memarg_reader):
    def read(data, pos, end):
        (align, offset, mem), pos = memarg_reader(data, pos, end)
        if pos >= end:
            raise unexpected_end(data, pos, end)
        return (align, offset, mem, data[pos]), pos + 1

    return read


def _zero_byte(data, pos, end):
    """Before multi-memory a memory index was a reserved single 0x00 byte."""
    if pos >= end:
        raise unexpected_end(data, pos, end)
    if data[pos] != 0:
        raise DecodeError("zero byte expected", pos)
    return 0, pos + 1


def _rd_memidx_single(data, pos, end):
    _, pos = _zero_byte(data, pos, end)
    return (0,), pos


def _rd_data_memidx_single(data, pos, end):
    d, pos = read_u32(data, pos, end)
    _, pos = _zero_byte(data, pos, end)
    return (d, 0), pos


def _rd_two_memidx_single(data, pos, end):
    _, pos = _zero_byte(data, pos, end)
    _, pos = _zero_byte(data, pos, end)
    return (0, 0), pos


_COMMON_READERS = {
    "blocktype": _rd_blocktype,
    "labelidx": _rd_index,
    "br_table": _rd_br_table,
    "funcidx": _rd_index,
    "typeidx+tableidx": _rd_two_indices,
    "localidx": _rd_index,
    "globalidx": _rd_index,
    "tableidx": _rd_index,
    "tableidx+tableidx": _rd_two_indices,
    "elemidx": _rd_index,
    "elemidx+tableidx": _rd_two_indices,
    "dataidx": _rd_index,
    "lane": _rd_lane,
    "shuffle16": _rd_shuffle,
    "i32": _rd_i32,
    "i64": _rd_i64,
    "f32bits": _fixed_bytes(4),
    "f64bits": _fixed_bytes(8),
    "v128": _fixed_bytes(16),
    "reftype": _rd_reftype,
    "select_types": _rd_select_types,
}
READERS_MULTI_MEMORY = dict(
    _COMMON_READERS,
    **{
        "memarg": _rd_memarg_multi,
        "memarg+lane": _with_lane(_rd_memarg_multi),
        "memidx": _rd_index,
        "memidx+memidx": _rd_two_indices,
        "dataidx+memidx": _rd_two_indices,
    },
)
READERS_SINGLE_MEMORY = dict(
    _COMMON_READERS,
    **{
        "memarg": _rd_memarg_single,
        "memarg+lane": _with_lane(_rd_memarg_single),
        "memidx": _rd_memidx_single,
        "memidx+memidx": _rd_two_memidx_single,
        "dataidx+memidx": _rd_data_memidx_single,
    },
)
assert {i.imm for i in OPS.values()} - {""} == set(READERS_MULTI_MEMORY)


def _valtype(data, pos, end):
    if pos >= end:
        raise unexpected_end(data, pos, end)
    t = VALTYPES.get(data[pos])
    if t is None:
        raise DecodeError("malformed value type", pos)
    return t, pos + 1


# -- instruction sequences ---------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _disabled_features(features: Features) -> frozenset[str]:
    return frozenset(
        info.feature for info in OPS.values() if info.feature is not None and not getattr(features, info.feature)
    )


def decode_instrs(
    data, pos: int, end: int, features: Features, in_body: bool
) -> tuple[list[tuple[OpInfo, tuple, int]], int]:
    """Decode instructions from `pos` up to the `end` that closes the outermost block.
    Returns raw `(OpInfo, imm, offset)` tuples (the final `end` included for a function
    body, left out for a constant expression) and the position after it."""
    readers = READERS_MULTI_MEMORY if features.multi_memory else READERS_SINGLE_MEMORY
    disabled = _disabled_features(features)
    single = SINGLE
    prefixed = PREFIXED
    end_op = _END
    out: list = []
    append = out.append
    depth = 1
    while True:
        if pos >= end:
            if in_body:
                raise DecodeError("END opcode expected", pos)
            raise unexpected_end(data, pos, end)
        off = pos
        b = data[pos]
        pos += 1
        info = single[b]
        if info is None:
            if b == 0xFC or b == 0xFD:
                sub, pos = read_u32(data, pos, end)
                info = prefixed[b].get(sub)
            if info is None:
                raise DecodeError("illegal opcode", off)
        if info.feature is not None and info.feature in disabled:
            raise DecodeError("illegal opcode", off)
        kind = info.imm
        if kind:
            imm, pos = readers[kind](data, pos, end)
            if kind == "blocktype":
                depth += 1
        else:
            imm = ()
            if info is end_op:
                depth -= 1
                if depth == 0:
                    if in_body:
                        append((info, imm, off))
                    return out, pos
        append((info, imm, off))


def decode_locals(data, pos: int, end: int) -> tuple[list[ValType], int]:
    n, pos = read_u32(data, pos, end)
    if n > end - pos:
        raise unexpected_end(data, end, end)
    groups = []
    total = 0
    for _ in range(n):
        start = pos
        count, pos = read_u32(data, pos, end)
        t, pos = _valtype(data, pos, end)
        total += count
        if total > MAX_LOCALS:
            # Above 2**32-1 the spec calls the body malformed; above our
            # implementation limit we refuse it the same way.
            raise DecodeError("too many locals", start)
        groups.append((count, t))
    locals_: list[ValType] = []
    for count, t in groups:
        locals_.extend([t] * count)
    return locals_, pos


def decode_body_raw(module: Module, defined_index: int):
    """`(locals, [(OpInfo, imm, offset), ...])` of defined function `defined_index`."""
    data = module.data
    pos, end = module.body_start[defined_index], module.body_end[defined_index]
    try:
        locals_, pos = decode_locals(data, pos, end)
        instrs, pos = decode_instrs(data, pos, end, module.features, in_body=True)
        if pos != end:
            raise DecodeError("operators remaining after end of function", pos)
    except DecodeError as e:
        raise DecodeError(e.message, e.offset, module.num_imported_funcs + defined_index) from None
    return locals_, instrs


def decode_body(module: Module, defined_index: int) -> tuple[list[ValType], list[Instr]]:
    """The declared locals (without the parameters) and the instructions of a defined
    function, ending with its final `end`."""
    locals_, raw = decode_body_raw(module, defined_index)
    return locals_, [Instr(info.name, imm, off) for info, imm, off in raw]


# -- module-level reading ------------------------------------------------------------------


class _Reader:
    """A cursor over one section of the module."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data, pos: int, end: int):
        self.data = data
        self.pos = pos
        self.end = end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise unexpected_end(self.data, self.pos, self.end)
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u32(self) -> int:
        v, self.pos = read_u32(self.data, self.pos, self.end)
        return v

    def count(self) -> int:
        """A vector length; each item takes at least one byte, so a count larger than
        the remaining bytes is malformed before reading any item."""
        at = self.pos
        n = self.u32()
        if n > self.end - self.pos:
            raise DecodeError("length out of bounds", at)
        return n

    def bytes_(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise unexpected_end(self.data, self.end, self.end)
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(b)

    def name(self) -> str:
        at = self.pos
        n = self.u32()
        if n > self.end - self.pos:
            raise DecodeError("length out of bounds", at)
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("malformed UTF-8 encoding", at) from None

    def valtype(self) -> ValType:
        t, self.pos = _valtype(self.data, self.pos, self.end)
        return t

    def reftype(self) -> ValType:
        (t,), self.pos = _rd_reftype(self.data, self.pos, self.end)
        return t

    def limits(self) -> Limits:
        at = self.pos
        flags = self.byte()
        if flags == 0:
            return Limits(self.u32())
        if flags == 1:
            lo = self.u32()
            return Limits(lo, self.u32())
        raise DecodeError("integer too large" if flags & 0x80 else "malformed limits flags", at)

    def table_type(self) -> TableType:
        t = self.reftype()
        return TableType(t, self.limits())

    def global_type(self) -> GlobalType:
        t = self.valtype()
        at = self.pos
        m = self.byte()
        if m > 1:
            raise DecodeError("malformed mutability", at)
        return GlobalType(t, bool(m))

    def const_expr(self, features: Features) -> ConstExpr:
        at = self.pos
        raw, self.pos = decode_instrs(self.data, self.pos, self.end, features, in_body=False)
        return ConstExpr(tuple(Instr(info.name, imm, off) for info, imm, off in raw), at)


def decode_module(data: bytes, features: Features | None = None) -> Module:
    """Decode the module structure (bodies stay as byte ranges). Raises DecodeError."""
    data = bytes(data)
    features = features or Features()
    if len(data) < 4:
        raise DecodeError("unexpected end", len(data))
    if data[:4] != MAGIC:
        raise DecodeError("magic header not detected", 0)
    if len(data) < 8:
        raise DecodeError("unexpected end", len(data))
    if data[4:8] != VERSION:
        raise DecodeError("unknown binary version", 4)

    m = Module(data=data, features=features)
    offsets = m.entity_offsets = {k: array("I") for k in ("import", "func", "table", "memory",
                                                          "export", "start")}
    func_count: int | None = None  # from the function section
    code_seen = False
    last_rank = 0
    pos = 8
    n = len(data)
    while pos < n:
        sec_at = pos
        sec_id = data[pos]
        pos += 1
        size, pos = read_u32(data, pos, n)
        if size > n - pos:
            raise DecodeError("unexpected end", pos)  # the section runs past the module's end
        end = pos + size
        r = _Reader(data, pos, end)
        if sec_id != 0:
            rank = _SECTION_RANK.get(sec_id)
            if rank is None:
                raise DecodeError("malformed section id", sec_at)
            if rank <= last_rank:
                raise DecodeError("unexpected content after last section", sec_at)
            last_rank = rank
        if sec_id == 0:
            _custom_section(m, r)
            r.pos = end
        elif sec_id == 1:
            for _ in range(r.count()):
                at = r.pos
                if r.byte() != 0x60:
                    raise DecodeError("malformed function type", at)
                params = tuple(r.valtype() for _ in range(r.count()))
                results = tuple(r.valtype() for _ in range(r.count()))
                m.types.append(FuncType(params, results))
        elif sec_id == 2:
            _import_section(m, r)
        elif sec_id == 3:
            func_count = r.count()
            for _ in range(func_count):
                offsets["func"].append(r.pos)
                m.func_types.append(r.u32())
        elif sec_id == 4:
            for _ in range(r.count()):
                offsets["table"].append(r.pos)
                m.tables.append(r.table_type())
        elif sec_id == 5:
            for _ in range(r.count()):
                offsets["memory"].append(r.pos)
                m.memories.append(MemoryType(r.limits()))
        elif sec_id == 6:
            for _ in range(r.count()):
                gt = r.global_type()
                m.globals.append(Global(gt, r.const_expr(features)))
        elif sec_id == 7:
            for _ in range(r.count()):
                offsets["export"].append(r.pos)
                name = r.name()
                at = r.pos
                kind = r.byte()
                if kind > 3:
                    raise DecodeError("malformed export kind", at)
                m.exports.append(Export(name, _EXTERN_KINDS[kind], r.u32()))
        elif sec_id == 8:
            offsets["start"].append(r.pos)
            m.start = r.u32()
        elif sec_id == 9:
            for _ in range(r.count()):
                m.elems.append(_elem_segment(r, features))
        elif sec_id == 12:
            m.data_count = r.u32()
        elif sec_id == 10:
            code_seen = True
            count = r.count()
            if count != (func_count or 0):
                raise DecodeError("function and code section have inconsistent lengths", sec_at)
            for _ in range(count):
                body_size = r.u32()
                if body_size > r.end - r.pos:
                    raise unexpected_end(data, r.end, r.end)
                m.body_start.append(r.pos)
                r.pos += body_size
                m.body_end.append(r.pos)
        elif sec_id == 11:
            count = r.count()
            if m.data_count is not None and count != m.data_count:
                raise DecodeError("data count and data section have inconsistent lengths", sec_at)
            for _ in range(count):
                m.datas.append(_data_segment(r, features))
        if r.pos != end:
            raise DecodeError("section size mismatch", r.pos)
        pos = end

    if not code_seen and func_count:
        raise DecodeError("function and code section have inconsistent lengths", n)
    if m.data_count is not None and m.data_count != len(m.datas):
        raise DecodeError("data count and data section have inconsistent lengths", n)
    if m.data_count is None:
        _require_data_count_free(m)
    return m


def _require_data_count_free(m: Module) -> None:
    """`memory.init` and `data.drop` need the data count section; scanning the bodies
    for them is cheap compared to decoding (the byte pair 0xFC 0x08/0x09 is rare) and we
    only decode the bodies where the pair occurs."""
    data = m.data
    for i in range(len(m.body_start)):
        start, end = m.body_start[i], m.body_end[i]
        if data.find(b"\xfc\x08", start, end) < 0 and data.find(b"\xfc\x09", start, end) < 0:
            continue
        try:
            _, instrs = decode_body_raw(m, i)
        except DecodeError:
            continue  # reported when the body is validated
        for info, _, off in instrs:
            if info.imm in ("dataidx", "dataidx+memidx"):
                raise DecodeError("data count section required", off, m.num_imported_funcs + i)


def _import_section(m: Module, r: _Reader) -> None:
    for _ in range(r.count()):
        m.entity_offsets["import"].append(r.pos)
        module = r.name()
        name = r.name()
        at = r.pos
        kind = r.byte()
        if kind == 0:
            desc = r.u32()
            m.num_imported_funcs += 1
        elif kind == 1:
            desc = r.table_type()
            m.num_imported_tables += 1
        elif kind == 2:
            desc = MemoryType(r.limits())
            m.num_imported_memories += 1
        elif kind == 3:
            desc = r.global_type()
            m.num_imported_globals += 1
        else:
            raise DecodeError("malformed import kind", at)
        m.imports.append(Import(module, name, _EXTERN_KINDS[kind], desc))


def _elem_segment(r: _Reader, features: Features) -> ElemSegment:
    at = r.pos
    flags = r.u32()
    if flags > 7:
        raise DecodeError("malformed elements segment kind", at)
    # bit 0: passive or declarative (else active); bit 1: explicit table index (active)
    # or declarative (passive); bit 2: items are expressions, not function indices.
    passive = flags & 1
    explicit = flags & 2
    exprs = flags & 4
    table = 0
    offset = None
    if not passive:
        mode = "active"
        if explicit:
            table = r.u32()
        offset = r.const_expr(features)
    else:
        mode = "declarative" if explicit else "passive"
    if passive or explicit:
        if exprs:
            elem_type = r.reftype()
        else:
            kat = r.pos
            if r.byte() != 0x00:
                raise DecodeError("malformed element kind", kat)
            elem_type = ValType.FUNCREF
    else:
        elem_type = ValType.FUNCREF
    items = []
    for _ in range(r.count()):
        if exprs:
            items.append(r.const_expr(features))
        else:
            iat = r.pos
            idx = r.u32()
            items.append(ConstExpr((Instr("ref.func", (idx,), iat),), iat))
    return ElemSegment(mode, elem_type, tuple(items), table, offset)


def _data_segment(r: _Reader, features: Features) -> DataSegment:
    at = r.pos
    flags = r.u32()
    memory = 0
    offset = None
    if flags == 1:
        mode = "passive"
    elif flags in (0, 2):
        mode = "active"
        if flags == 2:
            memory = r.u32()
        offset = r.const_expr(features)
    else:
        raise DecodeError("malformed data segment kind", at)
    n = r.u32()
    if n > r.end - r.pos:
        raise unexpected_end(r.data, r.end, r.end)
    start = r.pos
    r.pos += n
    return DataSegment(mode, start, r.pos, memory, offset)


def _custom_section(m: Module, r: _Reader) -> None:
    name = r.name()
    content = r.data[r.pos : r.end]
    if name == "name":
        try:
            m.names = _name_section(r)
        except DecodeError:
            m.names = Names()  # a bad name section is ignored, not an error
    m.customs.append((name, bytes(content)))


def _name_map(r: _Reader) -> dict[int, str]:
    out = {}
    for _ in range(r.count()):
        idx = r.u32()
        out[idx] = r.name()
    return out


def _name_section(r: _Reader) -> Names:
    names = Names()
    last_id = -1
    while r.pos < r.end:
        sub_id = r.byte()
        size = r.u32()
        if size > r.end - r.pos or sub_id <= last_id:
            raise DecodeError("malformed name section", r.pos)
        last_id = sub_id
        sub = _Reader(r.data, r.pos, r.pos + size)
        if sub_id == 0:
            names.module = sub.name()
        elif sub_id == 1:
            names.funcs = _name_map(sub)
        elif sub_id == 2:
            for _ in range(sub.count()):
                idx = sub.u32()
                names.locals[idx] = _name_map(sub)
        else:
            sub.pos = sub.end  # other subsections (labels, types...) are not kept
        if sub.pos != sub.end:
            raise DecodeError("malformed name section", sub.pos)
        r.pos = sub.end
    return names
