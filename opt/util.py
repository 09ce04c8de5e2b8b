"""Small helpers the passes share: constants, effects, edges, block surgery."""

from __future__ import annotations

from deadeye.ir import opcodes
from deadeye.ir.function import Block, BlockCall, Function, Instruction, Value
from deadeye.ir.opcodes import Effect
from deadeye.ir.types import ValType

CONST_OPS = {f"{t}.const": ValType.from_name(t) for t in ("i32", "i64", "f32", "f64", "v128")}
CONST_OP_FOR = {t: opcodes.OPS[name] for name, t in CONST_OPS.items()}


def const_bits(v: Value):
    """The bit pattern of `v` when a constant instruction defines it, else None."""
    d = v.defn
    if isinstance(d, Instruction) and d.op.name in CONST_OPS:
        return d.imm[0]
    return None


def make_const(ins: Instruction, bits: int) -> None:
    """Turn `ins` (one result) into the constant of its result's type, in place: its
    result Value stays, so no use needs rewriting."""
    ins.op = CONST_OP_FOR[ins.results[0].type]
    ins.args = []
    ins.imm = (bits,)
    ins.targets = []


# Effect classifications per opcode (indexed by OpInfo.code): flag arithmetic on IntFlag
# is slow, and the passes ask for every instruction.
_NOT_REMOVABLE = Effect.MAY_TRAP | Effect.WRITES_MEM | Effect.CALL
REMOVABLE = [not i.terminator and not (i.effects & _NOT_REMOVABLE) for i in opcodes.OP_LIST]
PURE = [not i.terminator and i.effects == Effect.PURE for i in opcodes.OP_LIST]
# Pure, or whose only effect is a possible trap (GVN may merge those).
PURE_OR_TRAP = [not i.terminator and i.effects in (Effect.PURE, Effect.MAY_TRAP)
                for i in opcodes.OP_LIST]


def removable(ins: Instruction) -> bool:
    """An op that may be deleted when its results are unused: no trap, no write, no call
    (reads of instance state without a trap, such as global.get, qualify)."""
    return REMOVABLE[ins.op.code]


def is_pure(ins: Instruction) -> bool:
    return PURE[ins.op.code]


def set_terminator(block: Block, ins: Instruction) -> None:
    ins.block = block
    block.instrs[-1] = ins


def make_jump(call: BlockCall, offset=None) -> Instruction:
    return Instruction(opcodes.OPS["jump"], (), (), [BlockCall(call.block, call.args)], offset)


def incoming(func: Function) -> dict[Block, list[tuple[Block, BlockCall]]]:
    """Every edge into each block: (source block, the BlockCall), once per target entry
    (a br_if with both targets to one block gives two)."""
    out: dict[Block, list[tuple[Block, BlockCall]]] = {b: [] for b in func.blocks}
    for b in func.blocks:
        term = b.terminator
        if term is not None:
            for call in term.targets:
                out.setdefault(call.block, []).append((b, call))
    return out


def reachable(func: Function) -> list[Block]:
    """Blocks reachable from the entry, in depth-first preorder."""
    seen = {func.entry}
    order = [func.entry]
    stack = [func.entry]
    while stack:
        b = stack.pop()
        for s in b.successors():
            if s not in seen:
                seen.add(s)
                order.append(s)
                stack.append(s)
    return order
