"""Constant folding, through `ir.numerics` only (so a folded result is exactly what
execution would give).

- An op of `numerics.OPS` whose operands are all constants becomes the constant of its
  result; an op that would trap on those operands (i32.div_s by 0, i32.trunc_f32_s of a
  NaN...) is left in place so the trap still happens where it did.
- `select` on a constant condition, or with two identical operands, becomes that operand.
- `ref.is_null` of `ref.null`/`ref.func` becomes 1/0.
- `br_if` and `br_table` on a constant become a `jump` to the target taken (the other
  edges disappear; blocks left unreachable are removed by simplify_cfg).
"""

from __future__ import annotations

from deadeye.ir import numerics
from deadeye.ir.errors import Trap
from deadeye.ir.function import Function, Instruction, Value
from deadeye.opt.manager import PassContext, register_pass
from deadeye.opt.util import const_bits, make_const, make_jump, reachable, set_terminator


def fold_branch(block) -> bool:
    """Replace a `br_if`/`br_table` of `block` on a constant (or a `br_if` whose two edges
    are identical) by a `jump`. True when it did."""
    term = block.terminator
    if term is None or term.op.name not in ("br_if", "br_table"):
        return False
    bits = const_bits(term.args[0])
    if term.op.name == "br_if":
        if bits is not None:
            taken = term.targets[0] if bits else term.targets[1]
        else:
            a, b = term.targets
            if a.block is not b.block or a.args != b.args:
                return False
            taken = a
    else:
        if bits is None:
            if any(t.block is not term.targets[0].block or t.args != term.targets[0].args
                   for t in term.targets):
                return False
            taken = term.targets[0]
        else:
            taken = term.targets[bits] if bits < len(term.targets) - 1 else term.targets[-1]
    set_terminator(block, make_jump(taken, term.offset))
    return True


def _fold_value(ins: Instruction, ctx: PassContext) -> int | None:
    """The constant `ins` computes, or None (not foldable or it would trap)."""
    name = ins.op.name
    fn = numerics.OPS.get(name)
    if fn is None or len(ins.results) != 1:
        return None
    operands = []
    for a in ins.args:
        bits = const_bits(a)
        if bits is None:
            return None
        operands.append(bits)
    if name in numerics.IMMEDIATE:
        operands.append(ins.imm[0])
    try:
        result = fn(*operands)
    except Trap:
        return None  # keep the trapping op: the trap must still happen here
    if ctx.nan_canonicalization and name in numerics.NAN_CANONICALIZE:
        result = numerics.NAN_CANONICALIZE[name](result)
    return result


def run(func: Function, ctx: PassContext) -> bool:
    mapping: dict[Value, Value] = {}

    def resolve(v):
        while v in mapping:
            v = mapping[v]
        return v

    changed = False
    for block in reachable(func):
        if not ctx.budget.charge(len(block.instrs) + 1):
            break
        keep = []
        for ins in block.instrs:
            ins.args = [resolve(a) for a in ins.args]
            for call in ins.targets:
                call.args = [resolve(a) for a in call.args]
            name = ins.op.name
            if name == "select":
                x, y, c = ins.args
                bits = const_bits(c)
                if bits is not None or x is y:
                    mapping[ins.results[0]] = x if (x is y or bits) else y
                    ctx.removed += 1
                    changed = True
                    continue
            elif name == "ref.is_null":
                d = ins.args[0].defn
                if isinstance(d, Instruction) and d.op.name in ("ref.null", "ref.func"):
                    make_const(ins, 1 if d.op.name == "ref.null" else 0)
                    ctx.rewritten += 1
                    changed = True
            elif not ins.op.terminator and ins.args:
                value = _fold_value(ins, ctx)
                if value is not None:
                    make_const(ins, value)
                    ctx.rewritten += 1
                    changed = True
            keep.append(ins)
        block.instrs = keep
        if fold_branch(block):
            ctx.rewritten += 1
            changed = True
    if mapping:
        func.replace_uses(mapping)
    return changed


register_pass("fold", run)
