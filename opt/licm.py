"""Loop-invariant code motion for pure, non-trapping ops.

Loops are the natural loops of `ir.cfg`, innermost first (so that what leaves an inner
loop can leave the outer one when its turn comes). In a loop's blocks, taken in reverse
post-order, an instruction is invariant when it is pure (no trap, no memory, no call) and
every operand is defined outside the loop or by an invariant instruction; invariant
instructions move, in order, to the end of the loop's preheader. Only pure ops move: they
cannot trap, so running them when the loop body would not have is harmless; a may-trap op
(division, trapping truncation, a load) stays where it is.

Preheader: the single predecessor outside the loop when it ends in a `jump` to the
header; otherwise a new block is created with the header's parameter types, every
outside edge into the header is redirected to it, and it jumps to the header passing its
parameters through (fuel 0: it accounts for no Wasm instruction).
"""

from __future__ import annotations

from deadeye.ir import opcodes
from deadeye.ir.cfg import CFG
from deadeye.ir.function import Block, BlockCall, Function, Instruction
from deadeye.opt.manager import PassContext, register_pass
from deadeye.opt.util import incoming, is_pure


def _preheader(func: Function, header: Block, loop_blocks: set[Block]) -> Block | None:
    outside = [(src, call) for src, call in incoming(func)[header] if src not in loop_blocks]
    if not outside:
        return None
    srcs = {src for src, _ in outside}
    if len(srcs) == 1 and len(outside) == 1:
        src = outside[0][0]
        if src.terminator.op.name == "jump":
            return src
    pre = Block(func.next_block)
    func.next_block += 1
    for p in header.params:
        pre.params.append(func.new_value(p.type, pre))
    jump = Instruction(opcodes.OPS["jump"], (), (), [BlockCall(header, list(pre.params))])
    jump.block = pre
    pre.instrs.append(jump)
    for _, call in outside:
        call.block = pre
    func.blocks.insert(func.blocks.index(header), pre)
    return pre


def _analyse(func: Function, ctx: PassContext) -> CFG:
    cfg = CFG(func)
    # Loop bodies can overlap heavily (deep nests): charge what the analysis walked.
    ctx.budget.charge(len(func.blocks) + sum(len(lp.blocks) for lp in cfg.loops()))
    return cfg


def run(func: Function, ctx: PassContext) -> bool:
    cfg = _analyse(func, ctx)
    if not cfg.loops():
        return False
    changed = False
    # Headers innermost first; the analysis is redone only after a preheader was created
    # (hoisting alone does not change the CFG or the loops' block sets).
    headers = [lp.header for lp in reversed(cfg.loops())]
    for header in headers:
        if ctx.budget.exhausted:
            break
        loop = next((lp for lp in cfg.loops() if lp.header is header), None)
        if loop is None:
            continue
        order = [b for b in cfg.reverse_postorder() if b in loop.blocks]
        invariant: list[Instruction] = []
        moved: set = set()
        for block in order:
            ctx.budget.charge(len(block.instrs))
            for ins in block.instrs:
                if not is_pure(ins) or not ins.results:
                    continue
                if all((a in moved) or (a.defn.block if not a.is_param else a.defn)
                       not in loop.blocks for a in ins.args):
                    invariant.append(ins)
                    moved.update(ins.results)
        if not invariant:
            continue
        blocks_before = len(func.blocks)
        pre = _preheader(func, header, loop.blocks)
        if pre is None:
            continue
        gone = set(invariant)
        for block in order:
            block.instrs = [i for i in block.instrs if i not in gone]
        term = pre.instrs.pop()
        for ins in invariant:
            ins.block = pre
            pre.instrs.append(ins)
        pre.instrs.append(term)
        ctx.rewritten += len(invariant)
        changed = True
        if len(func.blocks) != blocks_before:
            cfg = _analyse(func, ctx)
    return changed


register_pass("licm", run)
