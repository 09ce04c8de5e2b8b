"""Block-parameter elimination: a parameter of a reachable, non-entry block that receives
one same value on every incoming edge (or itself, along a loop) is replaced by that value
and dropped with its arguments. Repeated to a fixpoint, since removing one parameter can
make another trivial (two loop parameters feeding each other).

The value reaching a trivial parameter dominates its block: the edge by which a path first
enters the block cannot carry the block's own parameter, so it carries that value, whose
definition therefore lies on every path into the block.
"""

from __future__ import annotations

from deadeye.ir.function import Function, Value
from deadeye.opt.manager import PassContext, register_pass
from deadeye.opt.util import incoming, reachable


def run(func: Function, ctx: PassContext) -> bool:
    edges = incoming(func)
    blocks = [b for b in reachable(func) if b is not func.entry]
    mapping: dict[Value, Value] = {}

    def resolve(v):
        while v in mapping:
            v = mapping[v]
        return v

    changed = False
    progress = True
    while progress and not ctx.budget.exhausted:
        progress = False
        for block in blocks:
            ins = edges[block]
            if not ins:
                continue
            ctx.budget.charge(len(block.params) * len(ins) + 1)
            for i in range(len(block.params) - 1, -1, -1):
                p = block.params[i]
                seen = {resolve(call.args[i]) for _, call in ins} - {p}
                if len(seen) != 1:
                    continue
                mapping[p] = seen.pop()
                del block.params[i]
                for _, call in ins:
                    del call.args[i]
                ctx.rewritten += 1  # a parameter (and its arguments) eliminated
                progress = changed = True
    if mapping:
        func.replace_uses(mapping)
    return changed


register_pass("blockparams", run)
