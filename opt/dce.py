"""Dead code elimination by liveness marking (so dead cycles through block parameters go
too).

Roots are the instructions that must stay: terminators and anything that may trap,
writes state or calls (`util.removable` is False). A live instruction makes its operands
live; a live block parameter makes the matching argument of every incoming edge live;
branch arguments are live only through the parameter they bind. Then every removable
instruction with no live result is deleted, and every dead parameter of a non-entry block
is dropped together with its argument on every incoming edge.
"""

from __future__ import annotations

from deadeye.ir.function import Function, Value
from deadeye.opt.manager import PassContext, register_pass
from deadeye.opt.util import incoming, removable


def run(func: Function, ctx: PassContext) -> bool:
    edges = incoming(func)
    ctx.budget.charge(sum(len(b.instrs) for b in func.blocks))
    live: set[Value] = set()
    work: list[Value] = []

    def mark(v: Value):
        if v not in live:
            live.add(v)
            work.append(v)

    for block in func.blocks:
        for ins in block.instrs:
            if not removable(ins):
                for a in ins.args:
                    mark(a)
    for p in func.entry.params:
        live.add(p)
    while work:
        v = work.pop()
        d = v.defn
        if v.is_param:
            block = d
            i = block.params.index(v)
            for _, call in edges.get(block, ()):
                mark(call.args[i])
        else:
            for a in d.args:
                mark(a)

    changed = False
    for block in func.blocks:
        before = len(block.instrs)
        block.instrs = [ins for ins in block.instrs
                        if not removable(ins) or any(r in live for r in ins.results)]
        if len(block.instrs) != before:
            ctx.removed += before - len(block.instrs)
            changed = True
        if block is func.entry:
            continue
        for i in range(len(block.params) - 1, -1, -1):
            if block.params[i] not in live:
                del block.params[i]
                for _, call in edges.get(block, ()):
                    del call.args[i]
                ctx.rewritten += 1
                changed = True
    return changed


register_pass("dce", run)
