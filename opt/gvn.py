"""Global value numbering / common subexpression elimination for pure ops.

A preorder walk of the dominator tree carries a scoped hash table from
(op, immediates, operands) to the value that computes it: an instruction whose key is
already in scope (computed in a dominating position) is deleted and its result replaced by
the earlier one. Scopes end with the dominator subtree, so a value computed in one branch
is never reused in a sibling branch.

Keys: operands of commutative integer ops are ordered by value id (float add/mul are not
commutative here: which NaN operand propagates depends on the order). Besides pure ops,
ops whose only effect is a possible trap (integer division, trapping truncation) are
merged too: the dominating copy ran first, so a repeat with the same operands cannot trap.
"""

from __future__ import annotations

from deadeye.ir.cfg import CFG
from deadeye.ir.function import Function, Instruction, Value
from deadeye.opt.manager import PassContext, register_pass
from deadeye.opt.util import PURE_OR_TRAP

_INT_COMMUTATIVE = ("add", "mul", "and", "or", "xor", "eq", "ne")
_SIMD_COMMUTATIVE = ("add", "mul", "eq", "ne", "min_s", "min_u", "max_s", "max_u",
                     "add_sat_s", "add_sat_u", "avgr_u")
COMMUTATIVE = frozenset(
    [f"{t}.{o}" for t in ("i32", "i64") for o in _INT_COMMUTATIVE]
    + [f"{s}.{o}" for s in ("i8x16", "i16x8", "i32x4", "i64x2") for o in _SIMD_COMMUTATIVE]
    + ["v128.and", "v128.or", "v128.xor"])


def _numberable(ins) -> bool:
    return PURE_OR_TRAP[ins.op.code] and len(ins.results) >= 1


def run(func: Function, ctx: PassContext) -> bool:
    cfg = CFG(func)
    if func.entry not in cfg.idom:
        return False
    mapping: dict[Value, Value] = {}

    def resolve(v):
        while v in mapping:
            v = mapping[v]
        return v

    table: dict[tuple, Instruction] = {}
    removed_any = False
    # Iterative preorder walk; each stack entry is (block, keys added by it) to undo.
    stack = [(func.entry, None)]
    while stack:
        block, added = stack.pop()
        if added is not None:  # leaving this block's subtree: drop its scope
            for k in added:
                del table[k]
            continue
        if not ctx.budget.charge(len(block.instrs) + 1):
            break
        mine: list[tuple] = []
        keep = []
        for ins in block.instrs:
            ins.args = [resolve(a) for a in ins.args]
            for call in ins.targets:
                call.args = [resolve(a) for a in call.args]
            if _numberable(ins):
                args = tuple(a.id for a in ins.args)
                if ins.op.name in COMMUTATIVE:
                    args = tuple(sorted(args))
                key = (ins.op.code, ins.imm, args)
                prev = table.get(key)
                if prev is not None and len(prev.results) == len(ins.results):
                    for r, p in zip(ins.results, prev.results):
                        mapping[r] = p
                    ctx.removed += 1
                    removed_any = True
                    continue
                table[key] = ins
                mine.append(key)
            keep.append(ins)
        block.instrs = keep
        stack.append((block, mine))
        for child in reversed(cfg.dom_children(block)):
            stack.append((child, None))
    if mapping:
        func.replace_uses(mapping)
    return removed_any


register_pass("gvn", run)
