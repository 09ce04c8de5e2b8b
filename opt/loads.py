"""Redundant load elimination and store-to-load forwarding, within a block.

Walking a block, the pass remembers what the state it has seen holds:
- a load (same op, so same type and width, same memory, offset and address value, and
  lane operand for lane loads) that repeats an earlier one gives the earlier value;
- a full-width store `T.store mem=m offset=o a, x` makes a following `T.load mem=m
  offset=o a` give `x` (narrow stores are not forwarded: the load would need an extension);
- `global.get g` repeats give the first value, and `global.set g, x` forwards `x`.
The repeat cannot trap: the earlier access at that address succeeded and memories never
shrink. Anything that may write (a store, memory.fill/copy/init, memory.grow, a call)
forgets what it could change: a memory write forgets that memory's entries, a
`global.set` that global's, a call or a tail call everything.
"""

from __future__ import annotations

from deadeye.ir.function import Function, Value
from deadeye.ir.opcodes import OP_LIST, Effect
from deadeye.opt.manager import PassContext, register_pass

_FULL_STORES = {f"{t}.store": f"{t}.load" for t in ("i32", "i64", "f32", "f64", "v128")}


def _kind(info) -> str | None:
    e = info.effects
    if info.name in ("global.get", "global.set"):
        return info.name
    if e & Effect.CALL:
        return "call"
    if info.resource == "memory":
        if e & Effect.WRITES_MEM:
            return "write"
        if e & Effect.READS_MEM and info.params and info.results and len(info.results) == 1:
            return "load"
    return None


KIND = [_kind(info) for info in OP_LIST]  # by OpInfo.code


def run(func: Function, ctx: PassContext) -> bool:
    mapping: dict[Value, Value] = {}

    def resolve(v):
        while v in mapping:
            v = mapping[v]
        return v

    changed = False
    for block in func.blocks:
        if not ctx.budget.charge(len(block.instrs) + 1):
            break
        known: dict[tuple, Value] = {}  # (resource, index, op, imm, operands) -> value
        keep = []
        for ins in block.instrs:
            ins.args = [resolve(a) for a in ins.args]
            for call in ins.targets:
                call.args = [resolve(a) for a in call.args]
            op = ins.op
            kind = KIND[op.code]
            if kind == "load":
                key = ("memory", ins.imm[0], op.name, ins.imm, tuple(ins.args))
                prev = known.get(key)
                if prev is not None:
                    mapping[ins.results[0]] = prev
                    ctx.removed += 1
                    changed = True
                    continue
                known[key] = ins.results[0]
            elif kind == "global.get":
                key = ("global", ins.imm[0])
                prev = known.get(key)
                if prev is not None:
                    mapping[ins.results[0]] = prev
                    ctx.removed += 1
                    changed = True
                    continue
                known[key] = ins.results[0]
            elif kind == "global.set":
                known[("global", ins.imm[0])] = ins.args[0]
            elif kind == "call":
                known.clear()
            elif kind == "write":
                mems = {ins.imm[i] for i, f in enumerate(op.imm) if f.kind == "mem"}
                for k in [k for k in known if k[0] == "memory" and k[1] in mems]:
                    del known[k]
                load = _FULL_STORES.get(op.name)
                if load is not None:
                    known[("memory", ins.imm[0], load, ins.imm, (ins.args[0],))] = ins.args[1]
            keep.append(ins)
        block.instrs = keep
    if mapping:
        func.replace_uses(mapping)
    return changed


register_pass("loads", run)
