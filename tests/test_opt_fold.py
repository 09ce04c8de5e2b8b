"""Constant folding of every operator of `ir.numerics` (scalar and SIMD, with lane and
shuffle immediates): a folded result is exactly the numerics result, and an operation
that traps on its constant operands is left in place."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deadeye.ir import numerics, opcodes
from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.errors import Trap
from deadeye.ir.types import FuncType
from deadeye.opt import optimize

FOLDABLE = sorted(n for n in numerics.OPS if n in opcodes.OPS)
WIDTH = {"i32": 32, "i64": 64, "f32": 32, "f64": 64, "v128": 128}


def test_every_numerics_op_is_an_ir_op():
    assert len(FOLDABLE) == len(numerics.OPS)


def _bits(t, data):
    w = WIDTH[str(t)]
    special = [0, 1, (1 << w) - 1, 1 << (w - 1)]
    if str(t) == "f32":
        special += [0x7FC00000, 0x7FA00001, 0x7F800000, 0x4F000000]
    if str(t) == "f64":
        special += [0x7FF8000000000000, 0x7FF0000000000001, 0x43E0000000000000]
    return data.draw(st.one_of(st.sampled_from(special), st.integers(0, (1 << w) - 1)))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FOLDABLE), st.data())
def test_fold_matches_numerics(name, data):
    info = numerics.INFO[name]
    args = [_bits(t, data) for t in info.params]
    imm = ()
    if info.imm == "lane":
        imm = (data.draw(st.integers(0, info.imm_limit - 1)),)
    elif info.imm == "shuffle":
        imm = (tuple(data.draw(st.lists(st.integers(0, 31), min_size=16, max_size=16))),)
    fb = FunctionBuilder("f", FuncType((), info.results))
    operands = [fb.const(t, b) for t, b in zip(info.params, args)]
    result = fb.ins(name, *operands, imm=imm)
    fb.ret(result)
    func = fb.finish()
    optimize(func, passes="fold,dce", verify=True)
    try:
        expected = numerics.OPS[name](*args, *imm)
    except Trap:
        names = [i.op.name for i in func.instructions()]
        assert name in names  # a trapping op stays, with its constant operands
        return
    body = func.entry.instrs
    assert [i.op.name for i in body] == [f"{info.results[0]}.const", "return"]
    assert body[0].imm == (expected,)
