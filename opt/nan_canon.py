"""NaN canonicalization as an IR pass (the idea of Cranelift's `nan_canonicalization`).

After every float-producing arithmetic op listed in `ir.numerics.NAN_CANONICALIZE` (add,
sqrt, min, demote, ... and their SIMD forms; not abs/neg/copysign/reinterpret/pmin/pmax,
loads or stores, which only move bits) the pass inserts explicit IR ops that replace a NaN
result by the canonical NaN (f32 `0x7fc00000`, f64 `0x7ff8000000000000`, per lane for
SIMD), and redirects every use of the original result to the canonical one:

    scalar:  c = fNN.const CANON;  m = fNN.ne r r;  r' = select c r m
    SIMD:    c = v128.const CANON-in-every-lane;  m = fNNxK.ne r r;  r' = v128.bitselect c r m

Only ordinary IR ops are added, so every executor (IR evaluator, bytecode interpreter,
native handlers) gives identical, deterministic NaN bits without engine support. Blocks,
edges and fuel are untouched; the new ops carry the offset of the op they follow.

The pass is idempotent: an op already followed by its canonicalization sequence is
skipped. Run it after the optimizer (`deadeye.pipeline` does when the config asks) so the
optimizer does not see the sequences; `optimize(..., nan_canonicalization=True)` on its
own only makes constant folding produce canonical NaNs.

    canonicalize_nans(func) -> int     # number of ops canonicalized
    registered as the pass "nan_canon" (`optimize(func, passes="nan_canon")`)."""

from __future__ import annotations

from deadeye.ir import numerics
from deadeye.ir.function import Function, Instruction
from deadeye.ir.opcodes import OPS as IR_OPS
from deadeye.ir.types import ValType
from deadeye.opt.manager import PassContext, register_pass

__all__ = ["canonicalize_nans", "CANONICAL", "SHAPES"]

_F32_LANES = numerics.CANONICAL_NAN_F32 * sum(1 << (32 * i) for i in range(4))
_F64_LANES = numerics.CANONICAL_NAN_F64 * sum(1 << (64 * i) for i in range(2))

# Lane shape -> (const op, constant, NaN test op, selection op).
SHAPES: dict[str, tuple[str, int, str, str]] = {
    "f32": ("f32.const", numerics.CANONICAL_NAN_F32, "f32.ne", "select"),
    "f64": ("f64.const", numerics.CANONICAL_NAN_F64, "f64.ne", "select"),
    "f32x4": ("v128.const", _F32_LANES, "f32x4.ne", "v128.bitselect"),
    "f64x2": ("v128.const", _F64_LANES, "f64x2.ne", "v128.bitselect"),
}
# Op name -> its lane shape, for the ops whose NaN results follow the arithmetic NaN rule.
CANONICAL: dict[str, str] = {name: numerics.INFO[name].nan for name in numerics.NAN_CANONICALIZE}


def _sequence(ins: Instruction, shape: str, func: Function) -> list[Instruction]:
    """The instructions canonicalizing `ins`'s result (with fresh result values)."""
    const_op, bits, test_op, sel_op = SHAPES[shape]
    r = ins.results[0]
    c = Instruction(IR_OPS[const_op], imm=(bits,), offset=ins.offset)
    c.results = (func.new_value(r.type, c),)
    m = Instruction(IR_OPS[test_op], [r, r], offset=ins.offset)
    m.results = (func.new_value(ValType.I32 if sel_op == "select" else ValType.V128, m),)
    s = Instruction(IR_OPS[sel_op], [c.results[0], r, m.results[0]], offset=ins.offset)
    s.results = (func.new_value(r.type, s),)
    return [c, m, s]


def _already_canonical(instrs: list[Instruction], i: int, shape: str) -> bool:
    """Whether instrs[i] is followed by its own canonicalization sequence."""
    if i + 3 >= len(instrs):
        return False
    const_op, bits, test_op, sel_op = SHAPES[shape]
    r = instrs[i].results[0]
    c, m, s = instrs[i + 1:i + 4]
    return (c.op.name == const_op and c.imm == (bits,)
            and m.op.name == test_op and m.args == [r, r]
            and s.op.name == sel_op and s.args == [c.results[0], r, m.results[0]])


def canonicalize_nans(func: Function) -> int:
    """Insert the canonicalization after every NaN-producing float op of `func` (in
    place); returns how many ops were canonicalized."""
    mapping = {}
    inserted: set[int] = set()  # ids of the added instructions (they keep the raw result)
    count = 0
    for block in func.blocks:
        out: list[Instruction] = []
        instrs = block.instrs
        for i, ins in enumerate(instrs):
            out.append(ins)
            shape = CANONICAL.get(ins.op.name)
            if shape is None or not ins.results or _already_canonical(instrs, i, shape):
                continue
            seq = _sequence(ins, shape, func)
            for s in seq:
                s.block = block
                inserted.add(id(s))
            out.extend(seq)
            mapping[ins.results[0]] = seq[-1].results[0]
            count += 1
        block.instrs = out
    if not mapping:
        return 0
    # Every use outside the added sequences reads the canonical value.
    for ins in func.instructions():
        if id(ins) not in inserted:
            ins.args = [mapping.get(a, a) for a in ins.args]
        for call in ins.targets:
            call.args = [mapping.get(a, a) for a in call.args]
    return count


def _run(func: Function, ctx: PassContext) -> bool:
    n = canonicalize_nans(func)
    ctx.rewritten += n
    ctx.budget.charge(sum(len(b.instrs) for b in func.blocks))
    return n > 0


register_pass("nan_canon", _run)
