"""Emission: allocated VCode -> encoded bytecode.

Blocks go out in layout order (reverse postorder, chosen before allocation); a jump to
the next block vanishes, and a conditional branch whose taken side is the next block is
inverted when the inverse exists (integer compares; float compares are not invertible
because of NaN). Edges that carry block arguments become parallel moves: inline before
a jump or on a fall-through, or in a *stub* (moves + jump, placed after the blocks) for
a conditional or `br_table` edge. Each block starts with `fuel N` (N = the wasm
instructions its IR block accounts for), stubs charge nothing, so every path charges
exactly what the IR charges.

Ops of a block are held back until the block ends (or a label is placed) so that adjacent
ops matching a chain of the ISA's `FUSED_CHAINS` go out as one fused op (longest chain
first; a linked operand must name the register the previous op wrote, a commutative op's
operands are swapped to make it so). Ops are encoded with zero branch offsets first; once
every label's position is known the offsets (relative to the branching op's first byte)
are patched in place. Immediates that
do not fit their field go to the module's constant pool (the encoder picks the `_pool`
form).
"""

from __future__ import annotations

import struct
from collections import Counter

from deadeye.interp.isa.encoding import ConstPool, decode, encode
from deadeye.interp.isa.table import OP_LIST, Flag, Op

from .isel import COMMUTATIVE
from .moves import parallel_move
from .regalloc import Allocation
from .vcode import CallSite, Edge, VFunc, VInst, VReg

_NEG = {"eq": "ne", "ne": "eq", "lt_s": "ge_s", "ge_s": "lt_s", "gt_s": "le_s", "le_s": "gt_s",
        "lt_u": "ge_u", "ge_u": "lt_u", "gt_u": "le_u", "le_u": "gt_u"}


def invert(op: str, operands: list):
    """(op, operands) branching exactly when `op` does not, or None."""
    if op == "br_if":
        return "br_if_not", operands
    if op == "br_if_not":
        return "br_if", operands
    if op == "br_i32_eqz":
        return "br_if", operands
    if op == "br_i64_eqz":
        return "br_i64_ne_imm", operands + [0]
    parts = op.split("_")
    if op.startswith("br_i") and len(parts) >= 3:
        t = parts[1]
        imm = parts[-1] == "imm"
        cmp = "_".join(parts[2:-1] if imm else parts[2:])
        if cmp in _NEG:
            return f"br_{t}_{_NEG[cmp]}" + ("_imm" if imm else ""), operands
    return None


def _chains() -> dict[str, list[Op]]:
    """First part's name -> the fused ops starting with it, longest first."""
    out: dict[str, list[Op]] = {}
    for row in OP_LIST:
        if row.parts:
            out.setdefault(row.parts[0][0].name, []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: -len(r.parts))
    return out


CHAINS = _chains()


def _match(fused: Op, pending: list, i: int):
    """The operand values of `fused` for pending[i:i + its length], or None."""
    parts = fused.parts
    if i + len(parts) > len(pending):
        return None
    vals: dict[str, int] = {}
    prev_dst = None
    for (row, names), link, (prow, pvals, *_rest) in zip(parts, fused.links, pending[i:]):
        if prow is not row:
            return None
        got = dict(zip(row.names, pvals))
        if link is not None and got[link] != prev_dst:
            if row.name.split(".")[-1] in COMMUTATIVE and link == "a" and got["b"] == prev_dst:
                got["a"], got["b"] = got["b"], got["a"]
            else:
                return None
        for n, f in names.items():
            if n != link:
                vals[f] = got[n]
        prev_dst = got.get("dst")
    return [vals[n] for n in fused.names]


class Emitter:
    def __init__(self, vfunc: VFunc, alloc: Allocation, pool: ConstPool):
        self.vf = vfunc
        self.alloc = alloc
        self.pool = pool
        self.buf = bytearray()
        self.labels: dict = {}
        self.fixups: list[tuple[int, int, object]] = []  # (op start, field position, label)
        self.srcmap: list[tuple[int, int]] = []
        self.ops = Counter()  # ops written (a fused op counts once: one dispatch)
        self.parts = Counter()  # the same with fused ops counted part by part
        self.stubs: list[tuple[object, Edge]] = []
        self.pending: list = []  # (row, operand values, labels, wasm offset, bytes) not yet written
        self.used = set()
        for b in vfunc.blocks:
            for ins in b.insts:
                self.used.update(u.id for u in ins.uses())

    def slot(self, r: VReg) -> int:
        return self.alloc.slot[r.id]

    # -- raw output --------------------------------------------------------------------------
    def put(self, op: str, operands: list, labels=(), offset: int | None = None) -> None:
        """Queue one op; `labels` = [(operand index, label or list of labels)]."""
        b = encode(op, *operands, pool=self.pool)
        row, vals, _ = decode(b, 0)
        self.pending.append((row, vals, labels, offset, b))
        if row.flags & Flag.TERMINATOR:
            self.flush()

    def label(self, key) -> None:
        self.flush()
        self.labels[key] = len(self.buf)

    def flush(self) -> None:
        """Write the queued ops, fusing the chains that match."""
        pending, i = self.pending, 0
        while i < len(pending):
            for fused in CHAINS.get(pending[i][0].name, ()):
                vals = _match(fused, pending, i)
                if vals is not None:
                    group = pending[i:i + len(fused.parts)]
                    k = len(group) - 1
                    labels = [(fused.names.index(f"{group[-1][0].names[idx]}_{k}"), lab)
                              for idx, lab in group[-1][2]]
                    offset = next((o for r, _v, _l, o, _b in group if r.flags & Flag.TRAP), None)
                    self.write(fused, encode(fused, *vals), labels, offset)
                    i += len(group)
                    break
            else:
                row, _vals, labels, offset, b = pending[i]
                self.write(row, b, labels, offset)
                i += 1
        pending.clear()

    def write(self, row: Op, b: bytes, labels, offset: int | None) -> None:
        """Append one encoded op, its label fixups and its srcmap entry."""
        start = len(self.buf)
        self.buf += b
        self.ops[row.name] += 1
        self.parts.update([p.name for p, _names in row.parts] or [row.name])
        if labels:
            lay = row.layout
            for idx, lab in labels:
                at = start + lay[idx][2]
                if isinstance(lab, list):
                    for k, one in enumerate(lab):
                        self.fixups.append((start, at + 4 + 4 * k, one))
                else:
                    self.fixups.append((start, at, lab))
        if offset is not None and row.flags & (Flag.TRAP | Flag.CALL):
            self.srcmap.append((start, offset))

    def moves(self, triples) -> None:
        for op, d, s in parallel_move(triples, self.alloc.scratch):
            self.put(op, [d, s])

    def edge_moves(self, e: Edge) -> list:
        return [(self.slot(p), self.slot(a), p.width) for a, p in zip(e.args, e.block.params)
                if self.slot(p) != self.slot(a)]

    def target(self, e: Edge):
        """The label an edge branches to: its block, or a stub doing its moves first."""
        if not self.edge_moves(e):
            return e.block.id
        key = ("stub", len(self.stubs))
        self.stubs.append((key, e))
        return key

    # -- ops -----------------------------------------------------------------------------------
    def operands(self, ins: VInst):
        """Encoded operand values of a non-branch op (call sites give their window base)."""
        out = []
        for a in ins.args:
            if isinstance(a, VReg):
                out.append(self.slot(a))
            elif isinstance(a, CallSite):
                out.append(self.alloc.base[id(a)])
            elif isinstance(a, list):
                out.append(tuple(s + k for r in a for s in [self.slot(r)] for k in range(r.width)))
            else:
                out.append(a)
        return out

    def inst(self, ins: VInst) -> None:
        site = next((a for a in ins.args if isinstance(a, CallSite)), None)
        if site is None:
            self.put(ins.op, self.operands(ins), offset=ins.offset)
            return
        b = self.alloc.base[id(site)]
        at, mv = b, []
        for a in site.args:
            mv.append((at, self.slot(a), a.width))
            at += a.width
        self.moves(mv)
        self.put(ins.op, self.operands(ins), offset=ins.offset)
        at, mv = b, []
        for r in site.results:
            if r.id in self.used:
                mv.append((self.slot(r), at, r.width))
            at += r.width
        self.moves(mv)

    def terminator(self, ins: VInst, nxt) -> None:
        op = ins.op
        if op == "jump":
            e = ins.args[0]
            self.moves(self.edge_moves(e))
            if e.block is not nxt:
                self.put("jump", [0], [(0, e.block.id)])
            return
        if op == "br_table":
            targets = [self.target(e) for e in ins.args[1]]
            self.put("br_table", [self.slot(ins.args[0]), (0,) * len(targets)], [(1, targets)])
            return
        if ins.else_edge is None:
            self.put(op, self.operands(ins), offset=ins.offset)
            return
        then, els = ins.args[-1], ins.else_edge
        conds = [self.slot(a) if isinstance(a, VReg) else a for a in ins.args[:-1]]
        if then.block is nxt and not self.edge_moves(then):
            inv = invert(op, conds)
            if inv is not None:
                self.put(inv[0], inv[1] + [0], [(len(inv[1]), self.target(els))])
                return
        self.put(op, conds + [0], [(len(conds), self.target(then))])
        self.moves(self.edge_moves(els))
        if els.block is not nxt:
            self.put("jump", [0], [(0, els.block.id)])

    def run(self) -> bytes:
        blocks = self.vf.blocks
        for i, b in enumerate(blocks):
            self.label(b.id)
            if b.fuel:
                self.put("fuel", [b.fuel])
            for ins in b.insts[:-1]:
                self.inst(ins)
            self.terminator(b.insts[-1], blocks[i + 1] if i + 1 < len(blocks) else None)
        for key, e in self.stubs:
            self.label(key)
            self.moves(self.edge_moves(e))
            self.put("jump", [0], [(0, e.block.id)])
        self.flush()
        for start, at, lab in self.fixups:
            struct.pack_into("<i", self.buf, at, self.labels[lab] - start)
        return bytes(self.buf)
