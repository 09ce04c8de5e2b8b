"""The deadeye bytecode: a register machine in the style of Pulley and wasmi.

Register model
--------------
All frames of a thread live in one big **register stack** of 64-bit slots. A frame is a
window of that stack; a register operand is a **frame-relative slot index**, encoded as a
u16, so a frame can have up to 65536 slots. (A u8 would cover most functions, but wasm
functions with hundreds of locals and deep expression stacks are common in compiled C/Rust,
and a second "wide register" encoding would double every op; two bytes per register keep one
operand layout and one load per operand in native handlers.) Registers print as `r12`.

- **i32, i64, f32, f64** values use one slot, as bit patterns; 32-bit values are written
  zero-extended, and readers of a 32-bit value look at the low 32 bits only.
- **v128** values use **two consecutive slots** of the same stack (low 64 bits in slot n,
  high in n+1) and print as `v12` (meaning slots 12 and 13). One slot class keeps frames a
  single array, calls and moves uniform and frame sizes a single number; a separate vector
  register file would need its own stack, its own windows on calls and its own spilling. A
  native handler moves a v128 with one unaligned 16-byte load/store.
- **References** (funcref, externref) use one slot holding the reference (Python: the object
  or None; native code: a handle the embedder maps to the object).

Calling convention
------------------
- `call func, @rB` runs the callee in a frame whose slot 0 is the caller's slot B (the
  callee's frame overlaps the caller's slots B, B+1, ...). The caller writes the arguments
  to rB.. in the order of the callee's parameters (a v128 parameter takes two slots), so
  arguments computed straight into place pass without copies. The register allocator picks
  B above every slot that is live across the call.
- The callee returns its **results in its own slots 0..**, which are the caller's slots
  B.., again in order (multi-value: consecutive slots, v128 taking two). `return rA, rB, ...`
  moves the listed slots to slots 0, 1, ... as a parallel move (all read before any write;
  a v128 result is listed as its two slots) and returns; `return` with an empty list
  returns when the results are already in place.
- `call_indirect type, table, rI, @rB` does the same after checking the table entry
  (undefined element, uninitialized element, indirect call type mismatch).
- `return_call func, rA, rB, ...` reuses the current frame: the listed argument slots move
  (in parallel) to slots 0.. of the **current** frame, and the callee runs in that frame (it
  may extend it: the stack grows to the callee's frame size). Its results land in slots 0..
  and become the current function's results, so the caller's caller finds them where a
  plain `return` would put them. `return_call_indirect` reads its index register first.
- `call_host func, @rB` calls an imported function (a host function or another instance's
  export). Arguments and results use the same slots as `call`. A native executor does not
  call Python itself: it saves pc and frame pointer and returns a **status** to the
  embedder, which performs the call through the store (instance switching, host-exception
  conversion) and resumes at the next op.
- The frame size (slots used by the function including its outgoing call windows) and the
  constant pool belong to the compiled function's header, not to the code stream.

Executors
---------
Both executors keep pc, frame pointer (address of slot 0) and the base address of memory 0
in machine registers; every operand is at a fixed offset from the op's first byte except the
trailing variable-length lists (`br_table` targets, `return`/`return_call` slot lists).
Native handlers return a `Status` to Python for everything they cannot finish inline: traps
(with a `TRAP_MESSAGES` code), host calls, memory/table growth, fuel exhaustion, a full call
stack, and the final return. Fuel is charged per input wasm instruction, carried as
per-block costs: the lowering emits one `fuel N` at the start of each block (N = the wasm
instructions of that block), so a trap inside a block has charged the whole block.

Op families
-----------
Every pure numeric/SIMD operator of `ir.numerics` is a 3-address op named like the wasm
instruction (`i32.add dst, a, b`). Superinstructions are generated from the base ops by
family rules, never written one by one: register+immediate forms (`i32.add_imm dst, a,
imm`), compare-and-branch (`br_i32_lt_s a, b, off`, `br_i32_lt_s_imm a, imm, off`,
`br_i32_eqz a, off`), `select` fused with a compare (`select_i32_lt_s dst, a, b, x, y` is
`dst = x < y ? a : b`), memory-0 forms of every load/store (`i32.load_m0 dst, addr,
offset`), and constant-pool forms (`*_pool`) of every op whose immediate may not fit.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Callable

from deadeye.ir import numerics
from deadeye.ir.errors import ValidationError
from deadeye.ir.types import ValType

from . import semantics as S
from .kinds import KINDS, Kind

FORMAT_VERSION = 2
ESCAPE = 0xFF  # first byte of an extended-page opcode; the next two are the u16 code
PRIMARY_LIMIT = ESCAPE  # primary-page opcodes are 0x00..0xFE


class Flag(enum.IntFlag):
    NONE = 0
    TRAP = 1  # may trap
    BRANCH = 2  # may continue at a branch offset
    TERMINATOR = 4  # never falls through to the next op
    MEMORY = 8  # reads or writes linear memory
    STATE = 16  # reads or writes globals, tables or segments
    CALL = 32  # runs another function


class Status(enum.IntEnum):
    """What a native handler chain returns to Python."""

    RETURNED = 0  # the entry frame returned; results in its slots 0..
    TRAP = 1  # a trap; the code (index into TRAP_MESSAGES) is in the status payload
    HOST_CALL = 2  # `call_host`: perform the call through the store, then resume
    GROW = 3  # memory.grow/table.grow: service it in Python (buffers may move), resume
    OUT_OF_FUEL = 4  # the fuel counter would go negative
    STACK_EXHAUSTED = 5  # a call would exceed the register stack or the call depth


TRAP_MESSAGES: tuple[str, ...] = (
    "unreachable",
    numerics.DIV_BY_ZERO,
    numerics.INT_OVERFLOW,
    numerics.INVALID_CONVERSION,
    "out of bounds memory access",
    "out of bounds table access",
    "undefined element",
    "uninitialized element",
    "indirect call type mismatch",
    "call stack exhausted",
    "all fuel consumed",
    "null function reference",
)


def trap_code(message: str) -> int:
    """The `trap` op's code for a trap message (ValidationError for an unknown one)."""
    try:
        return TRAP_MESSAGES.index(message)
    except ValueError:
        raise ValidationError(f"no trap code for message {message!r}") from None


def _sem_trap(m, o):
    m.trap(TRAP_MESSAGES[o["code"]])  # the decoder admits only codes below len(TRAP_MESSAGES)


@dataclass(frozen=True, slots=True)
class Operand:
    name: str
    kind: Kind
    limit: int = 0  # exclusive bound of a LIMITED kind (lane count, trap code count)

    def __str__(self) -> str:
        return f"{self.name}:{self.kind.name}" + (f"<{self.limit}" if self.limit else "")


@dataclass(eq=False)
class Op:
    """One bytecode op (a row of the table).

    `sem(m, o)` is its reference semantics (see `semantics.py`); `numerics` names the
    `ir.numerics` operator it computes, when it is a (possibly fused) pure computation;
    `base` names the op it was derived from by a family rule. `index` is the dense row
    number (dispatch tables), `opcode` the code: < 0xFF on the primary page (1 byte), else
    the extended code that follows the escape byte as a u16. `prefix` is the encoded opcode."""

    name: str
    operands: tuple[Operand, ...]
    group: str
    flags: Flag
    sem: Callable
    numerics: str | None = None
    base: str | None = None
    common: bool = False
    doc: str = ""
    pool_variant: str | None = None  # name of the `_pool` form of this op
    pool_field: str | None = None  # in a `_pool` form: the operand it replaces
    index: int = -1
    opcode: int = -1
    extended: bool = False
    prefix: bytes = b""
    names: tuple[str, ...] = field(default=(), repr=False)
    # a fused op: ((part row, {part operand name: fused operand name}), ...) and, per part,
    # the operand that reads the previous part's `dst` (None: not linked)
    parts: tuple = field(default=(), repr=False)
    links: tuple = field(default=(), repr=False)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<isa op {self.name}>"

    @property
    def fixed_size(self) -> int | None:
        """Encoded size in bytes, or None when the op ends with a variable-length list."""
        n = len(self.prefix)
        for opd in self.operands:
            if opd.kind.width is None:
                return None
            n += opd.kind.width
        return n

    @property
    def layout(self) -> list[tuple[str, Kind, int]]:
        """(operand name, kind, byte offset from the op's first byte) for each operand;
        what a native handler generator needs to emit one load per operand."""
        out, at = [], len(self.prefix)
        for opd in self.operands:
            out.append((opd.name, opd.kind, at))
            at += opd.kind.width or 0
        return out

    def execute(self, m, operands: tuple) -> None:
        """Run the reference semantics on machine `m` with decoded operands."""
        self.sem(m, dict(zip(self.names, operands)))


OPS: dict[str, Op] = {}
OP_LIST: list[Op] = []


def _opd(spec) -> Operand:
    name, kind, *limit = spec
    return Operand(name, KINDS[kind], *limit)


def _add(name, operands, group, flags, sem, **kw) -> Op:
    if name in OPS:
        raise RuntimeError(f"duplicate ISA op {name}")
    opds = tuple(_opd(s) for s in operands)
    op = Op(name, opds, group, flags, sem, index=len(OP_LIST), names=tuple(o.name for o in opds),
            **kw)
    OPS[name] = op
    OP_LIST.append(op)
    return op


def _reg(t: ValType, role: str) -> str:
    return ("v" if t == ValType.V128 else "x") + ("d" if role == "dst" else "s")


# --- control ---------------------------------------------------------------------------------
C, T, B, TERM = Flag.CALL, Flag.TRAP, Flag.BRANCH, Flag.TERMINATOR
for name, opds, flags, sem, doc in (
    ("jump", [("off", "off")], B | TERM, S.sem_jump, "continue at the branch target"),
    ("br_if", [("cond", "xs"), ("off", "off")], B, S.sem_br_if, "branch when the i32 `cond` is nonzero"),
    ("br_if_not", [("cond", "xs"), ("off", "off")], B, S.sem_br_if_not, "branch when the i32 `cond` is zero"),
    ("br_table", [("index", "xs"), ("targets", "brtable")], B | TERM, S.sem_br_table,
     "branch to targets[index], or the last (default) target when index is out of range"),
    ("return", [("results", "slots")], TERM, S.sem_return,
     "move the listed slots to slots 0.. (parallel move) and return"),
    ("call", [("func", "func"), ("frame", "frame")], C | T, S.sem_call,
     "call a function of this instance; callee slot 0 = caller slot `frame`"),
    ("call_indirect", [("type", "type"), ("table", "table"), ("index", "xs"), ("frame", "frame")],
     C | T, S.sem_call_indirect, "call table[index] after the element and signature checks"),
    ("call_host", [("func", "func"), ("frame", "frame")], C | T, S.sem_call,
     "call an imported function; native code returns HOST_CALL to the embedder"),
    ("return_call", [("func", "func"), ("args", "slots")], C | T | TERM, S.sem_return_call,
     "tail call: move args to slots 0.. and run the callee in this frame"),
    ("return_call_indirect", [("type", "type"), ("table", "table"), ("index", "xs"),
                              ("args", "slots")], C | T | TERM, S.sem_return_call_indirect,
     "tail call through a table"),
    ("unreachable", [], T | TERM, S.sem_unreachable, "trap: unreachable"),
    ("trap", [("code", "trap", len(TRAP_MESSAGES))], T | TERM, _sem_trap, "trap with message TRAP_MESSAGES[code]"),
    ("fuel", [("units", "u32")], T, S.sem_fuel,
     "charge `units` of fuel (the wasm instructions of the block it starts)"),
):
    _add(name, opds, "control", flags, sem, common=True, doc=doc)

# --- moves and constants -----------------------------------------------------------------------
_add("mov", [("dst", "xd"), ("src", "xs")], "move", Flag.NONE, S.sem_mov, common=True,
     doc="copy a 64-bit slot")
_add("mov128", [("dst", "vd"), ("src", "vs")], "move", Flag.NONE, S.sem_mov128, common=True,
     doc="copy a v128 (two slots)")
_add("const32", [("dst", "xd"), ("imm", "u32")], "move", Flag.NONE, S.sem_const, common=True,
     doc="dst = a 32-bit pattern (i32 or f32 constant)")
_add("const64", [("dst", "xd"), ("imm", "sx32")], "move", Flag.NONE, S.sem_const, common=True,
     doc="dst = a 64-bit pattern that is a sign-extended i32")
_add("constf32", [("dst", "xd"), ("imm", "f32")], "move", Flag.NONE, S.sem_const,
     doc="dst = an f32 constant (same as const32; prints as a float)")
_add("constf64", [("dst", "xd"), ("imm", "f64")], "move", Flag.NONE, S.sem_const,
     doc="dst = an f64 constant, inline (float bits rarely fit sx32)")
_add("const128", [("dst", "vd"), ("imm", "v128")], "move", Flag.NONE, S.sem_const128,
     doc="dst = a v128 constant")
_add("select", [("dst", "xd"), ("a", "xs"), ("b", "xs"), ("cond", "xs")], "move", Flag.NONE,
     S.sem_select, common=True, doc="dst = cond ? a : b (any one-slot type)")
_add("select128", [("dst", "vd"), ("a", "vs"), ("b", "vs"), ("cond", "xs")], "move",
     Flag.NONE, S.sem_select128, doc="dst = cond ? a : b (v128)")


# --- pure numeric and SIMD ops (ir.numerics) -------------------------------------------------------
_SCALAR_INT = (ValType.I32, ValType.I64)


def _numeric_operands(info) -> tuple[list, list, tuple]:
    """(operand specs, compute inputs, output) of the base form of a numerics operator."""
    rt = info.results[0]
    opds = [("dst", _reg(rt, "dst"))]
    inputs = []
    for i, t in enumerate(info.params):
        name = "abc"[i]
        opds.append((name, _reg(t, "src")))
        inputs.append((name, S.reg_read_kind(t)))
    if info.imm == "lane":
        opds.append(("lane", "lane", info.imm_limit))
        inputs.append(("lane", "imm"))
    elif info.imm == "shuffle":
        opds.append(("mask", "shuffle"))
        inputs.append(("mask", "imm"))
    return opds, inputs, ("dst", "v" if rt == ValType.V128 else "x")


for _name, _info in numerics.INFO.items():
    _opds, _inputs, _out = _numeric_operands(_info)
    _common = all(t in _SCALAR_INT for t in _info.params + _info.results)
    _add(_name, _opds, "numeric", T if _info.traps else Flag.NONE,
         S.compute(_info.fn, _inputs, "value", _out), numerics=_name, common=_common)


# --- linear memory --------------------------------------------------------------------------------
_FULL_BYTES = {"i32": 4, "i64": 8, "f32": 4, "f64": 8, "v128": 16}
_MEMOPS = {
    "i32": "load load8_s load8_u load16_s load16_u store store8 store16",
    "i64": "load load8_s load8_u load16_s load16_u load32_s load32_u store store8 store16 store32",
    "f32": "load store", "f64": "load store",
    "v128": "load load8x8_s load8x8_u load16x4_s load16x4_u load32x2_s load32x2_u "
            "load8_splat load16_splat load32_splat load64_splat load32_zero load64_zero store "
            "load8_lane load16_lane load32_lane load64_lane "
            "store8_lane store16_lane store32_lane store64_lane",
}


def _access_bytes(t: str, op: str) -> int:
    m = re.match(r"(?:load|store)(\d+)?(x\d+)?", op)
    if m.group(2):
        return 8  # load8x8, load16x4, load32x2: 64 bits widened
    return int(m.group(1)) // 8 if m.group(1) else _FULL_BYTES[t]


_MEM_TAIL = [("mem", "mem"), ("offset", "u32")]
_memory_rows = []
for _t, _ops in _MEMOPS.items():
    _vt = ValType.from_name(_t)
    for _op in _ops.split():
        _name = f"{_t}.{_op}"
        _n = _access_bytes(_t, _op)
        _fn = numerics.MEMORY_OPS.get(_name)
        if _op.endswith("_lane"):
            _lanes = 16 // _n
            _kind = "load_lane" if _op.startswith("load") else "store_lane"
            _opds = ([("dst", "vd")] if _kind == "load_lane" else []) + [
                ("addr", "xs"), ("src", "vs")] + _MEM_TAIL + [("lane", "lane", _lanes)]
            _vt_access = ValType.V128
        elif _op.startswith("load"):
            _kind = "load"
            _opds = [("dst", _reg(_vt, "dst")), ("addr", "xs")] + _MEM_TAIL
            _vt_access = _vt
        else:
            _kind = "store"
            _opds = [("addr", "xs"), ("src", _reg(_vt, "src"))] + _MEM_TAIL
            _vt_access = _vt
        _flags = Flag.TRAP | Flag.MEMORY
        _sem = S.memory_access(_kind, _n, _fn, _vt_access)
        _add(_name, _opds, "memory", _flags, _sem, numerics=_name if _fn else None,
             doc=f"{_kind.replace('_', ' ')} of {_n} byte(s) at addr + offset")
        _memory_rows.append((_name, _opds, _flags, _sem, _vt != ValType.V128))

# Memory-0 forms: the memory index is implied (native code keeps memory 0's base in a register).
for _name, _opds, _flags, _sem, _scalar in _memory_rows:
    _add(f"{_name}_m0", [o for o in _opds if o[0] != "mem"], "memory", _flags,
         S.with_fixed(_sem, mem=0), numerics=OPS[_name].numerics, base=_name, common=_scalar,
         doc=f"`{_name}` on memory 0")

_M = Flag.MEMORY
for name, opds, flags, sem, doc in (
    ("memory.size", [("dst", "xd"), ("mem", "mem")], _M, S.sem_memory_size, "dst = size in pages"),
    ("memory.grow", [("dst", "xd"), ("delta", "xs"), ("mem", "mem")], _M, S.sem_memory_grow,
     "dst = old size in pages, or 0xFFFFFFFF when growth fails"),
    ("memory.copy", [("d", "xs"), ("s", "xs"), ("n", "xs"), ("dst_mem", "mem"), ("src_mem", "mem")],
     _M | T, S.sem_memory_copy, "copy n bytes (ranges may overlap)"),
    ("memory.fill", [("d", "xs"), ("val", "xs"), ("n", "xs"), ("mem", "mem")], _M | T,
     S.sem_memory_fill, "fill n bytes with the low byte of val"),
    ("memory.init", [("d", "xs"), ("s", "xs"), ("n", "xs"), ("data", "data"), ("mem", "mem")],
     _M | T | Flag.STATE, S.sem_memory_init, "copy n bytes of a data segment into memory"),
    ("data.drop", [("data", "data")], Flag.STATE, S.sem_data_drop, "drop a data segment"),
):
    _add(name, opds, "memory", flags, sem, doc=doc)

# --- globals, tables, references ------------------------------------------------------------------
_ST = Flag.STATE
for name, opds, flags, sem, common, doc in (
    ("global.get", [("dst", "xd"), ("global", "global")], _ST, S.sem_global_get, True,
     "dst = a one-slot global"),
    ("global.set", [("src", "xs"), ("global", "global")], _ST, S.sem_global_set, True,
     "set a one-slot global"),
    ("global.get128", [("dst", "vd"), ("global", "global")], _ST, S.sem_global_get128, False,
     "dst = a v128 global"),
    ("global.set128", [("src", "vs"), ("global", "global")], _ST, S.sem_global_set128, False,
     "set a v128 global"),
    ("table.get", [("dst", "xd"), ("i", "xs"), ("table", "table")], _ST | T, S.sem_table_get,
     False, "dst = table[i]"),
    ("table.set", [("i", "xs"), ("val", "xs"), ("table", "table")], _ST | T, S.sem_table_set,
     False, "table[i] = val"),
    ("table.size", [("dst", "xd"), ("table", "table")], _ST, S.sem_table_size, False,
     "dst = number of elements"),
    ("table.grow", [("dst", "xd"), ("init", "xs"), ("delta", "xs"), ("table", "table")], _ST,
     S.sem_table_grow, False, "dst = old size, or 0xFFFFFFFF when growth fails"),
    ("table.fill", [("i", "xs"), ("val", "xs"), ("n", "xs"), ("table", "table")], _ST | T,
     S.sem_table_fill, False, "fill n elements with val"),
    ("table.copy", [("d", "xs"), ("s", "xs"), ("n", "xs"), ("dst_table", "table"),
                    ("src_table", "table")], _ST | T, S.sem_table_copy, False,
     "copy n elements (ranges may overlap)"),
    ("table.init", [("d", "xs"), ("s", "xs"), ("n", "xs"), ("elem", "elem"), ("table", "table")],
     _ST | T, S.sem_table_init, False, "copy n elements of an element segment into a table"),
    ("elem.drop", [("elem", "elem")], _ST, S.sem_elem_drop, False, "drop an element segment"),
    ("ref.null", [("dst", "xd")], Flag.NONE, S.sem_ref_null, False, "dst = null"),
    ("ref.is_null", [("dst", "xd"), ("src", "xs")], Flag.NONE, S.sem_ref_is_null, False,
     "dst = 1 if src is null else 0"),
    ("ref.func", [("dst", "xd"), ("func", "func")], Flag.NONE, S.sem_ref_func, False,
     "dst = a reference to function `func`"),
):
    _add(name, opds, "state", flags, sem, common=common, doc=doc)


# --- superinstruction families --------------------------------------------------------------------
_INT_BIN = "add sub mul and or xor shl shr_s shr_u rotl rotr"
_INT_CMP = "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u"
_FLT_CMP = "eq ne lt gt le ge"
_SHIFTS = frozenset("shl shr_s shr_u rotl rotr".split())


def _imm_kind(t: str, op: str) -> str:
    """The immediate field of the register+immediate form of `t.op`: a shift count is a u8
    (wasm masks it anyway), an i32 constant its u32 bit pattern, an i64 constant a
    sign-extended i32 (others go to the constant pool)."""
    if op in _SHIFTS:
        return "u8"
    return "u32" if t == "i32" else "sx32"


def _derive(name: str, base_name: str, form: str, *, imm: str | None = None,
            common: bool = False, doc: str = "") -> Op:
    """A fused form of the pure op `base_name`: form "value" (`_imm`: its last operand an
    immediate), "branch" (branch by `off` on a nonzero result) or "select" (`dst = result ?
    a : b`). The semantics wraps the same `ir.numerics` function."""
    info = numerics.INFO[base_name]
    opds, inputs, out = _numeric_operands(info)
    srcs = opds[1:]
    if imm is not None:
        # A u8 shift count needs no masking: the numerics function takes it modulo the width.
        srcs = srcs[:-1] + [("imm", imm)]
        inputs = inputs[:-1] + [("imm", "imm")]
    flags = T if info.traps else Flag.NONE
    if form == "select":  # the compare's operands become x, y: a and b are the choices
        rename = {"a": "x", "b": "y"}
        srcs = [(rename.get(s[0], s[0]), *s[1:]) for s in srcs]
        inputs = [(rename.get(n, n), how) for n, how in inputs]
    if form == "value":
        opds = [opds[0]] + srcs
    elif form == "branch":
        opds = srcs + [("off", "off")]
        flags |= B
    else:
        opds = [("dst", "xd"), ("a", "xs"), ("b", "xs")] + srcs
    op = _add(name, opds, "super", flags, S.compute(info.fn, inputs, form, out),
              numerics=base_name, base=base_name, common=common, doc=doc)
    if imm == "sx32":
        _pool_form(op, "imm")
    return op


def _pool_form(op: Op, field_name: str) -> None:
    """The `_pool` form of `op`: operand `field_name` comes from a constant pool entry."""
    opds = [(o.name, o.kind.name, *([o.limit] if o.limit else [])) if o.name != field_name
            else ("pool", "pool") for o in op.operands]
    pname = f"{op.name}_pool"
    _add(pname, opds, op.group, op.flags, S.via_pool(op.sem, field_name), numerics=op.numerics,
         base=op.name, pool_field=field_name, doc=f"`{op.name}` with `{field_name}` from the pool")
    op.pool_variant = pname


_pool_form(OPS["const64"], "imm")

for _t in ("i32", "i64"):
    for _op in (_INT_BIN + " " + _INT_CMP).split():
        _derive(f"{_t}.{_op}_imm", f"{_t}.{_op}", "value", imm=_imm_kind(_t, _op), common=True,
                doc=f"`{_t}.{_op}` with a constant right operand")
for _t in ("i32", "i64"):
    _derive(f"br_{_t}_eqz", f"{_t}.eqz", "branch", common=True,
            doc=f"branch when `{_t}.eqz a` holds")
    for _op in _INT_CMP.split():
        _derive(f"br_{_t}_{_op}", f"{_t}.{_op}", "branch", common=True,
                doc=f"branch when `{_t}.{_op} a b` holds")
        _derive(f"br_{_t}_{_op}_imm", f"{_t}.{_op}", "branch", imm=_imm_kind(_t, _op),
                common=True, doc=f"branch when `{_t}.{_op} a imm` holds")
# (A 64-bit "is nonzero" branch is `br_i64_ne_imm a, 0`: br_if reads only 32 bits.)
for _t in ("f32", "f64"):
    for _op in _FLT_CMP.split():
        _derive(f"br_{_t}_{_op}", f"{_t}.{_op}", "branch", doc=f"branch when `{_t}.{_op} a b` holds")
for _t, _cmps in (("i32", _INT_CMP), ("i64", _INT_CMP), ("f32", _FLT_CMP), ("f64", _FLT_CMP)):
    for _op in _cmps.split():
        _derive(f"select_{_t}_{_op}", f"{_t}.{_op}", "select",
                doc=f"dst = (`{_t}.{_op} x y`) ? a : b")


# --- fused sequences -----------------------------------------------------------------------------
# Ops that run back to back in hot loops, fused into one op so that native code dispatches
# once for the whole sequence. Chosen from the op-pair counts of `deadeye run --stats`
# over the Sightglass suite (the first 20-40 M wasm instructions of each program, each
# program's pairs as a fraction of its ops, summed): e.g. `i32.xor -> i32.rotl_imm` 52%,
# `i32.add -> i32.xor` 45%, `mov -> mov` 43%, `i64.xor -> i64.rotl_imm` 35% (ChaCha, BLAKE,
# SeaHash and keccak rounds), `i32.add -> i32.load_m0` 23% (array indexing). Each chain
# lists (op, link): `link` names the operand of that op that reads the `dst` the previous
# op wrote (the fused encoding leaves it out, and native code keeps the value in a
# machine register) or is None for ops that merely follow each other. The emitter
# (`lower/emit.py`) fuses adjacent ops of one block that match, longest chain first. At
# most one part may trap (a trap reports that part's wasm offset); only the last may branch.
FUSED_CHAINS: list[tuple[tuple[str, str | None], ...]] = []
for _t in ("i32", "i64"):
    FUSED_CHAINS += [
        # half a ChaCha/BLAKE quarter round: a += b; d ^= a; d <<<= k; c += d; b ^= c; b <<<= k'
        ((f"{_t}.add", None), (f"{_t}.xor", "a"), (f"{_t}.rotl_imm", "a"),
         (f"{_t}.add", "a"), (f"{_t}.xor", "a"), (f"{_t}.rotl_imm", "a")),
        ((f"{_t}.add", None), (f"{_t}.xor", "a"), (f"{_t}.rotl_imm", "a")),
        ((f"{_t}.xor", None), (f"{_t}.rotl_imm", "a")),
        ((f"{_t}.rotl_imm", None), (f"{_t}.add", "a")),
        ((f"{_t}.add", None), (f"{_t}.xor", "a")),
        ((f"{_t}.xor", None), (f"{_t}.xor", "a")),
        ((f"{_t}.xor_imm", None), (f"{_t}.and", "a"), (f"{_t}.xor", "a")),  # keccak chi
        ((f"{_t}.and", None), (f"{_t}.xor", "a")),
        ((f"{_t}.add", None), (f"{_t}.add", "a")),
        ((f"{_t}.mul", None), (f"{_t}.add", "a")),
        ((f"{_t}.shl_imm", None), (f"{_t}.xor", "a")),
        ((f"{_t}.and", None), (f"{_t}.shl_imm", "a")),
        ((f"{_t}.xor", None), (f"{_t}.xor", None)),
        ((f"{_t}.rotl_imm", None), (f"{_t}.rotl_imm", None)),
        ((f"{_t}.xor", None), (f"{_t}.add", "a")),
    ]
FUSED_CHAINS += [
    (("i64.mul", None), ("i64.add", "a"), ("i64.shr_u_imm", "a")),  # ed25519 limb products
    (("i64.xor", None), ("i64.shl_imm", "a")),
    (("i64.xor", None), ("i64.shr_u_imm", "a")),
    (("i64.add", None), ("i64.shr_u_imm", "a")),
    (("i32.add", None), ("i32.add_imm", "a")),
    (("i32.add_imm", None), ("i32.add", "a")),
    (("i32.add_imm", None), ("i32.and", "a")),
    (("i32.add_imm", None), ("i32.xor_imm", "a")),
    (("i32.xor_imm", None), ("i32.add_imm", "a")),
    (("i32.shr_u_imm", None), ("i32.and_imm", "a")),
    (("i32.add_imm", None), ("i32.lt_u_imm", "a")),
    (("i32.mul_imm", None), ("i32.add_imm", "a"), ("i32.rem_u", "a")),  # an LCG step
    (("i32.mul_imm", None), ("i32.add_imm", "a")),
    (("i32.add_imm", None), ("i32.rem_u", "a")),
    (("i32.shl_imm", None), ("i32.add", "a"), ("i32.load_m0", "addr")),  # base + i * size
    (("i32.shl_imm", None), ("i32.add", "a"), ("f64.load_m0", "addr")),
    (("i32.shl_imm", None), ("i32.add", "a")),
    (("i32.add", None), ("i32.load_m0", "addr")),
    (("i32.add", None), ("i32.load8_u_m0", "addr")),
    (("i32.add", None), ("f64.load_m0", "addr")),
    (("i32.add", None), ("i32.store_m0", "addr")),
    (("i32.load_m0", None), ("i32.add", "a")),
    (("i32.load_m0", None), ("i32.mul", "a"), ("i32.add", "a")),  # a dot product step
    (("i32.load_m0", None), ("i32.mul", "a")),
    (("i32.load8_u_m0", None), ("br_if_not", "cond")),
    (("i32.load8_u_m0", None), ("br_if", "cond")),
    (("i32.shl_imm", None), ("i32.add", "a"), ("f64.load_m0", "addr"), ("br_f64_lt", "b")),
    (("i32.shl_imm", None), ("i32.add", "a"), ("f64.store_m0", "addr")),
    (("f64.load_m0", None), ("br_f64_lt", "b")),
    (("i32.add", None), ("i32.store_m0", "src")),
    (("i32.xor", None), ("i32.store_m0", "src")),
    (("i32.add_imm", None), ("i32.store8_m0", "addr"), ("i32.add", None),
     ("br_i32_lt_u_imm", "a")),  # a sieve's inner loop
    (("i32.add_imm", None), ("i32.load8_u_m0", "addr"), ("br_if_not", "cond")),
    (("i32.store8_m0", None), ("i32.add", None), ("br_i32_lt_u_imm", "a")),
    (("i32.add", None), ("i32.add_imm", None), ("br_i32_gt_u_imm", "a")),
    (("i32.add", None), ("br_i32_lt_u_imm", "a")),
    (("i32.add_imm", None), ("br_if", "cond")),
    (("i32.add_imm", None), ("br_i32_ne_imm", "a")),
    (("i32.add_imm", None), ("br_i32_gt_u_imm", "a")),
    (("i32.add_imm", None), ("mov", "src")),
    (("i32.add_imm", None), ("mov", None)),  # argument set-up
    (("mov", None), ("mov", None), ("mov", None)),  # block arguments (parallel moves)
    (("mov", None), ("mov", None)),
    (("mov", None), ("jump", None)),
    (("const32", None), ("const32", None), ("br_i32_lt_u_imm", None)),
    (("const32", None), ("const32", None)),
    (("const32", None), ("br_i32_ge_u_imm", None)),
]


def fused_name(chain) -> str:
    """`i32.add+xor+rotl_imm`: the parts joined by `+` where a part reads the previous
    one's result (in its first source operand, else the operand is named: `+store_m0[src]`),
    by `&` where it just follows it; a repeated type prefix left out."""
    first = chain[0][0].split(".", 1)[0] + "."
    out = chain[0][0]
    for name, link in chain[1:]:
        out += ("+" if link else "&") + (name.removeprefix(first) if "." in chain[0][0] else name)
        if link is not None and link != next(o.name for o in OPS[name].operands
                                             if o.kind.role == "src"):
            out += f"[{link}]"
    return out


def _fused_sem(parts, mapping):
    def sem(m, o):
        for row, names in zip(parts, mapping):
            row.sem(m, {n: o[f] for n, f in names.items()})
    return sem


def _fuse(chain) -> Op:
    rows = [OPS[name] for name, _link in chain]
    opds, mapping, flags = [], [], Flag.NONE
    for k, (row, (_name, link)) in enumerate(zip(rows, chain)):
        names = {}
        if k and link is not None:
            prev = rows[k - 1]
            if prev.operands[0].name != "dst" or prev.operands[0].kind.name != "xd":
                raise RuntimeError(f"fused chain {chain}: {prev.name} has no x register dst")
            names[link] = f"dst_{k - 1}"
        for o in row.operands:
            if o.name != link or not k:
                opds.append((f"{o.name}_{k}", o.kind.name, *([o.limit] if o.limit else [])))
                names[o.name] = f"{o.name}_{k}"
        if row.flags & (Flag.CALL | Flag.STATE) or (k < len(rows) - 1 and row.flags & Flag.BRANCH):
            raise RuntimeError(f"fused chain {chain}: {row.name} cannot be fused there")
        if row.flags & flags & Flag.TRAP:
            raise RuntimeError(f"fused chain {chain}: more than one part may trap")
        flags |= row.flags
        mapping.append(names)
    name = fused_name(chain)
    # the primary page as far as it goes (one code stays unused), then the extended page
    room = sum(o.common for o in OP_LIST) < PRIMARY_LIMIT - 1
    op = _add(name, opds, "fused", flags, _fused_sem(rows, mapping), common=room,
              doc="fused: " + "; ".join(r.name for r in rows))
    op.parts = tuple(zip(rows, mapping))
    op.links = tuple(link for _name, link in chain)
    return op


for _chain in FUSED_CHAINS:
    _fuse(_chain)


def expand(row: Op, vals) -> list[tuple[Op, tuple]]:
    """The (row, operand values) of each part of a fused op (the op itself otherwise); a
    linked operand gets the register the previous part wrote."""
    if not row.parts:
        return [(row, tuple(vals))]
    by_name = dict(zip(row.names, vals))
    return [(part, tuple(by_name[names[n]] for n in part.names)) for part, names in row.parts]


# --- opcode assignment --------------------------------------------------------------------------------
def _assign_opcodes() -> None:
    """Primary page (one byte): the `common` ops in table order; extended page (ESCAPE + u16):
    all others in table order. Deterministic, so an unchanged table encodes identically."""
    primary = [op for op in OP_LIST if op.common]
    if len(primary) > PRIMARY_LIMIT:
        raise RuntimeError(f"{len(primary)} common ops do not fit the primary opcode page")
    for code, op in enumerate(primary):
        op.opcode, op.extended, op.prefix = code, False, bytes([code])
    for code, op in enumerate(o for o in OP_LIST if not o.common):
        op.opcode, op.extended = code, True
        op.prefix = bytes([ESCAPE]) + code.to_bytes(2, "little")


_assign_opcodes()
PRIMARY: list[Op | None] = [None] * 256
EXTENDED: list[Op] = []
for _o in OP_LIST:
    if _o.extended:
        EXTENDED.append(_o)
    else:
        PRIMARY[_o.opcode] = _o

GROUPS = {
    "control": "Control flow, calls, traps and fuel",
    "move": "Moves, constants and select",
    "numeric": "Pure numeric and SIMD operators (semantics: `ir.numerics`)",
    "memory": "Linear memory",
    "state": "Globals, tables and references",
    "super": "Superinstructions (generated families)",
    "fused": "Fused sequences (`FUSED_CHAINS`: ops that run back to back, one dispatch)",
}


def op(name: str) -> Op:
    """The row for `name` (ValidationError for an unknown op)."""
    row = OPS.get(name)
    if row is None:
        raise ValidationError(f"unknown bytecode op {name!r}")
    return row


def _ir_forms() -> dict[str, tuple[str, ...]]:
    """IR op name -> the base bytecode ops that implement it (before superinstruction
    selection); the lowering starts from these and the tests check every IR op has one."""
    forms = {o.name: (o.name,) for o in OP_LIST
             if o.base is None and o.group in ("control", "numeric", "memory", "state")
             and not o.name.startswith("global.")}
    forms.update({
        "i32.const": ("const32",), "f32.const": ("const32", "constf32"),
        "i64.const": ("const64", "const64_pool"), "f64.const": ("constf64", "const64"),
        "v128.const": ("const128",), "select": ("select", "select128"),
        "global.get": ("global.get", "global.get128"), "global.set": ("global.set", "global.set128"),
        "call": ("call", "call_host"),
    })
    return forms


IR_FORMS: dict[str, tuple[str, ...]] = _ir_forms()
