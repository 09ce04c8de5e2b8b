"""CFG simplification, repeated until nothing changes:

1. fold branches on constants (`fold.fold_branch`: `br_if`/`br_table` on a constant, or
   whose edges are all identical, become a `jump`);
2. remove blocks unreachable from the entry;
3. merge a block into its predecessor when the predecessor ends in a `jump` to it and it
   has no other incoming edge: its parameters become the jump's arguments, its
   instructions move up, the fuels add (with `strict_fuel`, only when the predecessor's
   instructions can neither trap nor write nor call, or the block has no fuel);
4. thread jumps through empty blocks: a block holding only `jump T(args)` is bypassed by
   retargeting each incoming edge straight to T, with the arguments substituted (the
   block's parameters by the edge's arguments). A block with fuel is bypassed only when
   T's single incoming edge is from it (then the fuel moves to T; every path into T went
   through it); otherwise it stays so that its fuel is still charged.
"""

from __future__ import annotations

from deadeye.ir.function import Block, Function, Value
from deadeye.opt.fold import fold_branch
from deadeye.opt.manager import PassContext, register_pass
from deadeye.opt.util import incoming, reachable, removable


def remove_unreachable(func: Function) -> int:
    """Drop the blocks no path from the entry reaches; returns how many instructions
    went with them."""
    live = set(reachable(func))
    dead = sum(len(b.instrs) for b in func.blocks if b not in live)
    func.blocks = [b for b in func.blocks if b in live]
    return dead


def _merge(func: Function, ctx: PassContext) -> bool:
    counts: dict[Block, int] = {b: 0 for b in func.blocks}
    for b in func.blocks:
        term = b.terminator
        for call in (term.targets if term is not None else ()):
            counts[call.block] += 1
    mapping: dict[Value, Value] = {}
    gone: set[Block] = set()
    for block in func.blocks:
        if block in gone:
            continue
        while True:
            term = block.terminator
            if term is None or term.op.name != "jump":
                break
            succ = term.targets[0].block
            if succ is block or succ is func.entry or counts[succ] != 1 or succ in gone:
                break
            if ctx.strict_fuel and succ.fuel and not all(removable(i) for i in block.body):
                break  # succ's fuel would be charged before block's observable effects
            for p, a in zip(succ.params, term.targets[0].args):
                mapping[p] = a
            block.instrs.pop()
            for ins in succ.instrs:
                ins.block = block
            block.instrs.extend(succ.instrs)
            block.fuel += succ.fuel
            succ.instrs = []
            succ.params = []
            gone.add(succ)
            ctx.removed += 1  # the jump
            ctx.budget.charge(len(block.instrs))
    if not gone:
        return False
    func.blocks = [b for b in func.blocks if b not in gone]
    if mapping:
        func.replace_uses(mapping)
    return True


def _thread(func: Function, ctx: PassContext) -> bool:
    edges = incoming(func)
    uses = func.uses()
    changed = False
    for block in func.blocks:
        if block is func.entry or len(block.instrs) != 1:
            continue
        term = block.instrs[0]
        if term.op.name != "jump":
            continue
        if any(u is not term for p in block.params for u in uses.get(p, ())):
            continue  # a parameter is used below the block: it must keep existing
        out = term.targets[0]
        target = out.block
        if target is block or not edges[block]:
            continue
        if block.fuel:
            into_target = edges[target]
            if len(into_target) != 1 or into_target[0][0] is not block:
                continue
            target.fuel += block.fuel
            block.fuel = 0
        for src, call in edges[block]:
            subst = dict(zip(block.params, call.args))
            call.block = target
            call.args = [subst.get(a, a) for a in out.args]
            edges[target].append((src, call))
        edges[target] = [(s, c) for s, c in edges[target] if s is not block]
        edges[block] = []
        ctx.rewritten += 1
        changed = True
        ctx.budget.charge(len(edges[target]))
    return changed


def run(func: Function, ctx: PassContext) -> bool:
    changed = False
    while not ctx.budget.exhausted:
        # An iteration walks every block and (for the uses) every instruction.
        ctx.budget.charge(len(func.blocks) + sum(len(b.instrs) for b in func.blocks))
        step = False
        for block in func.blocks:
            if fold_branch(block):
                ctx.rewritten += 1
                step = True
        before = len(func.blocks)
        ctx.removed += remove_unreachable(func)
        step |= len(func.blocks) != before
        step |= _merge(func, ctx)
        if _thread(func, ctx):
            step = True
            ctx.removed += remove_unreachable(func)
        if not step:
            break
        changed = True
    return changed


register_pass("simplify_cfg", run)

