"""VCode: bytecode ops over virtual registers, before register allocation.

A `VFunc` is a list of `VBlock`s in layout order (the order emission places them in).
Each block has typed parameters (virtual registers the incoming edges write), a body of
`VInst`s and one terminator `VInst`. A `VInst` is an ISA op (a row of
`interp/isa/table.py`) with its operands in table order, except that

- register operands hold `VReg`s (class "x": one 64-bit slot, "v": a v128, two slots);
- branch-offset operands hold `Edge`s (target block + the VRegs passed to its params);
  a `br_table` holds a list of Edges; a conditional branch's fall-through successor is
  its `else_edge`;
- a call's `frame` operand holds a `CallSite` (argument and result VRegs): the register
  allocator picks the window base `@rB` and emission writes the moves into and out of it;
- `slots` lists (`return`, `return_call`) hold VRegs (a v128 expands to its two slots).

Emission turns edges into parallel moves plus branch offsets, call sites into window
bases, VRegs into slots.
"""

from __future__ import annotations

from deadeye.interp.isa.table import OPS, Op

REG_KINDS = ("xd", "xs", "vd", "vs")


class VReg:
    __slots__ = ("id", "cls")

    def __init__(self, id: int, cls: str):
        self.id = id
        self.cls = cls  # "x" or "v"

    @property
    def width(self) -> int:
        return 2 if self.cls == "v" else 1

    def __repr__(self) -> str:
        return f"%{self.cls}{self.id}"


class Edge:
    __slots__ = ("block", "args")

    def __init__(self, block: "VBlock", args=()):
        self.block = block
        self.args = list(args)

    def __repr__(self) -> str:
        return f"b{self.block.id}({', '.join(map(repr, self.args))})"


class CallSite:
    __slots__ = ("args", "results")

    def __init__(self, args, results):
        self.args = list(args)
        self.results = list(results)

    def __repr__(self) -> str:
        return f"@[{', '.join(map(repr, self.args))}] -> [{', '.join(map(repr, self.results))}]"


class VInst:
    __slots__ = ("op", "args", "else_edge", "offset")

    def __init__(self, op: str, args, else_edge: Edge | None = None, offset: int | None = None):
        if op not in OPS:
            raise KeyError(f"unknown bytecode op {op!r}")
        self.op = op
        self.args = list(args)
        self.else_edge = else_edge
        self.offset = offset  # wasm byte offset (srcmap), for ops that trap or call

    @property
    def row(self) -> Op:
        return OPS[self.op]

    def defs(self) -> list[VReg]:
        out = []
        for opd, a in zip(self.row.operands, self.args):
            if opd.kind.name in ("xd", "vd"):
                out.append(a)
            elif isinstance(a, CallSite):
                out.extend(a.results)
        return out

    def uses(self) -> list[VReg]:
        out = []
        for opd, a in zip(self.row.operands, self.args):
            k = opd.kind.name
            if k in ("xs", "vs"):
                out.append(a)
            elif k == "slots":
                out.extend(a)
            elif isinstance(a, CallSite):
                out.extend(a.args)
        for e in self.edges():
            out.extend(e.args)
        return out

    def edges(self) -> list[Edge]:
        out = []
        for a in self.args:
            if isinstance(a, Edge):
                out.append(a)
            elif isinstance(a, list) and a and isinstance(a[0], Edge):
                out.extend(a)
        if self.else_edge is not None:
            out.append(self.else_edge)
        return out

    def __repr__(self) -> str:
        s = f"{self.op} " + ", ".join(map(repr, self.args))
        if self.else_edge is not None:
            s += f" else {self.else_edge!r}"
        return s


class VBlock:
    __slots__ = ("id", "params", "insts", "fuel", "offset")

    def __init__(self, id: int, fuel: int = 0, offset: int | None = None):
        self.id = id
        self.params: list[VReg] = []
        self.insts: list[VInst] = []  # body, then the terminator last
        self.fuel = fuel
        self.offset = offset

    @property
    def terminator(self) -> VInst:
        return self.insts[-1]

    def successors(self) -> list["VBlock"]:
        out = []
        for e in self.terminator.edges():
            if e.block not in out:
                out.append(e.block)
        return out

    def __repr__(self) -> str:
        return f"b{self.id}"


class VFunc:
    """`blocks` in layout order (entry first); `params` are the entry block's params,
    fixed by the calling convention to slots 0.. ."""

    def __init__(self, name: str):
        self.name = name
        self.blocks: list[VBlock] = []
        self.vregs: list[VReg] = []

    def new_vreg(self, cls: str) -> VReg:
        r = VReg(len(self.vregs), cls)
        self.vregs.append(r)
        return r

    @property
    def params(self) -> list[VReg]:
        return self.blocks[0].params

    def __str__(self) -> str:
        lines = [f"vcode %{self.name}"]
        for b in self.blocks:
            lines.append(f"b{b.id}({', '.join(map(repr, b.params))}) fuel={b.fuel}:")
            lines.extend(f"    {i!r}" for i in b.insts)
        return "\n".join(lines)
