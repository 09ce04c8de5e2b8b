"""Register allocation and emission details: calling-convention slots, call windows above
every live value, v128 pairs, block-parameter coalescing, layout, fuel accounting, the
65536-slot limit, and the error on bad input."""

import pytest
import wasmtime

from deadeye.frontend.lift import ModuleLifter
from deadeye.frontend.module import parse_module
from deadeye.interp.isa.encoding import decode_all
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.table import expand
from deadeye.ir.errors import ValidationError
from deadeye.ir.types import ValType
from deadeye.lower.compile import compile_function, lower_function
from deadeye.lower.emit import invert
from deadeye.lower.regalloc import MAX_SLOTS, allocate
from deadeye.lower.vcode import VBlock, VFunc, VInst


def lowered(wat: str, index: int = 0):
    module = parse_module(wasmtime.wat2wasm(wat))
    lifter = ModuleLifter(module)
    code = CompiledCode(len(module.func_types))
    for i in range(len(module.func_types)):
        compile_function(lifter.function(i), lifter.env, code, i)
    ops = [(row.name, vals) for _, row, vals in decode_all(code.code, code.entry[index], code.end[index])]
    return module, lifter, code, ops


def test_counting_loop_has_no_moves_and_one_branch():
    _, _, code, ops = lowered("""(module (func (param i32) (result i32) (local i32)
      (loop $l (local.set 1 (i32.add (local.get 1) (i32.const 3)))
               (br_if $l (i32.lt_u (local.get 1) (local.get 0))))
      (local.get 1)))""")
    names = [n for n, _ in ops]
    assert "mov" not in names and "jump" not in names
    assert "br_i32_lt_u" in names and "i32.add_imm" in names
    assert names.count("fuel") == 3


def test_params_fixed_and_results_returned_from_their_slots():
    _, _, code, ops = lowered("""(module (func (param i64 v128 i32) (result i32 v128)
      (local.get 2) (local.get 1)))""")
    # v128 param in slots 1-2, i32 param in slot 3: returned as [r3, r1, r2].
    assert ops[-1] == ("return", ((3, 1, 2),))
    assert code.frame_size[0] >= 4


def test_call_window_is_above_values_live_across_the_call():
    _, _, code, ops = lowered("""(module
      (func $f (param i32 v128) (result i32) (local.get 0))
      (func (param i32 i32) (result i32) (local v128)
        (local.set 2 (v128.const i32x4 1 2 3 4))
        (i32.add (local.get 1) (call $f (local.get 0) (local.get 2)))))""", 1)
    call = next(v for n, v in ops if n == "call")
    base = call[1]
    # r1 (param 1) is read after the call: the window starts above it.
    assert base >= 2
    # The arguments (i32, then a v128 in two slots) are written to base.. before the call.
    before = ops[:[n for n, _ in ops].index("call")]
    written = {v[0] + k for n, v in before if n in ("mov", "mov128", "const128")
               for k in range(1 if n == "mov" else 2)}
    assert {base, base + 1, base + 2} <= written
    assert code.frame_size[1] >= base + 3


def test_call_indirect_index_survives_the_argument_moves():
    _, _, code, ops = lowered("""(module (type $t (func (param i32 i32) (result i32)))
      (table 1 funcref)
      (func (param i32 i32 i32) (result i32)
        (call_indirect (type $t) (local.get 2) (local.get 1) (local.get 0))))""")
    ci = next(v for n, v in ops if n == "call_indirect")
    index_reg, base = ci[2], ci[3]
    assert index_reg < base


def test_conditional_edge_with_moves_goes_through_a_stub():
    from deadeye.ir.builder import FunctionBuilder
    from deadeye.ir.function import IRModule
    from deadeye.ir.types import FuncType
    from deadeye.interp.isa.refexec import RefMachine, run

    I32 = ValType.I32
    env = IRModule(types=[FuncType((I32, I32), (I32,))], func_types=[0])
    fb = FunctionBuilder("f", FuncType((I32, I32), (I32,)), env)
    a, b = fb.params
    other, join = fb.create_block(fuel=2), fb.create_block(fuel=3)
    p = fb.append_param(join, I32)
    fb.br_if(a, join, [b], other, [])
    fb.switch_to(other)
    fb.jump(join, [fb.ins("i32.mul", a, b)])
    fb.switch_to(join)
    fb.ret(fb.ins("i32.add", fb.ins("i32.add", p, a), b))
    func = fb.finish()
    code = CompiledCode(1)
    compile_function(func, env, code, 0)
    ops = [part.name for _, row, vals in decode_all(code.code, code.entry[0], code.end[0])
           for part, _v in expand(row, vals)]
    # p shares the product's slot; the taken edge's move (p <- b) lives in a stub after
    # the blocks (fused with its jump), so the fall-through path runs no move.
    assert ops[-2:] == ["mov", "jump"] and ops.count("mov") == 1
    for x, y in ((0, 7), (3, 7), (1 << 31, 5)):
        m = RefMachine(code.frame_size[0])
        m.regs[0], m.regs[1] = x, y
        run(m, code.code, code.entry[0], code.end[0])
        want = ((y if x else x * y) + x + y) & 0xFFFFFFFF
        assert m.regs[0] == want


def test_fuel_per_block_equals_ir():
    wat = """(module (func (param i32) (result i32)
      (if (result i32) (local.get 0) (then (i32.const 1)) (else (i32.const 2)))))"""
    module, lifter, code, ops = lowered(wat)
    ir_fuel = sorted(b.fuel for b in lifter.function(0).blocks if b.fuel)
    assert sorted(v[0] for n, v in ops if n == "fuel") == ir_fuel


def test_branch_inversion_table():
    assert invert("br_i32_lt_s", [1, 2]) == ("br_i32_ge_s", [1, 2])
    assert invert("br_i64_gt_u_imm", [1, 5]) == ("br_i64_le_u_imm", [1, 5])
    assert invert("br_i64_eqz", [3]) == ("br_i64_ne_imm", [3, 0])
    assert invert("br_if", [3]) == ("br_if_not", [3])
    assert invert("br_f32_lt", [1, 2]) is None  # NaN: not(a < b) is not a >= b


def _wide(n_v128: int) -> VFunc:
    """n v128 constants all live at once (returned together)."""
    vf = VFunc("wide")
    b = VBlock(0)
    vf.blocks.append(b)
    regs = [vf.new_vreg("v") for _ in range(n_v128)]
    b.insts = [VInst("const128", [r, i]) for i, r in enumerate(regs)]
    b.insts.append(VInst("return", [regs]))
    return vf


def test_v128_take_two_consecutive_distinct_slots():
    vf = _wide(10)
    alloc = allocate(vf)
    slots = sorted(alloc.slot[r.id] for r in vf.vregs)
    used = {s + k for s in slots for k in (0, 1)}
    assert len(used) == 20 and alloc.frame_size == 21  # + the scratch slot


def test_frame_past_65536_slots_is_a_clean_error():
    with pytest.raises(ValidationError, match="slots"):
        allocate(_wide(MAX_SLOTS // 2 + 1))


def test_entry_block_params_at_slot_zero():
    module, lifter, code, ops = lowered("""(module (func (param f64 i32) (result i32)
      (i32.add (local.get 1) (local.get 1))))""")
    vf = lower_function(lifter.function(0), lifter.env, 0)
    alloc = allocate(vf)
    assert [alloc.slot[p.id] for p in vf.params] == [0, 1]
    assert ops[-2][0] == "i32.add" and ops[-2][1][1:] == (1, 1)


def test_unknown_function_index_is_an_error():
    module, lifter, code, _ = lowered("(module (func))")
    with pytest.raises(ValidationError):
        compile_function(lifter.function(0), lifter.env, CompiledCode(1), 5)


def test_tail_call_with_repeated_argument_fits_the_frame():
    """return_call writes its arguments to slots 0..: five copies of one value need five
    slots even though only one value is live."""
    _, _, code, ops = lowered("""(module
      (func $g (param i32 i32 i32 i32 i32) (result i32) (local.get 4))
      (func (param i32) (result i32)
        (return_call $g (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0))))""", 1)
    assert ops[-1] == ("return_call", (0, (0, 0, 0, 0, 0)))
    assert code.frame_size[1] >= 5
