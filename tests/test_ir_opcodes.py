"""The IR opcode table: derived signatures, effects, immediates, and agreement with the
binary-format table and the numerics by name."""

import pytest

from deadeye.ir import opcodes
from deadeye.ir.errors import ValidationError
from deadeye.ir.opcodes import OPS, Effect, signature
from deadeye.ir.types import ValType

from ir_testlib import make_env

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF


@pytest.mark.parametrize("name, params, results", [
    ("i32.add", (I32, I32), (I32,)),
    ("i64.eqz", (I64,), (I32,)),
    ("f64.lt", (F64, F64), (I32,)),
    ("i64.extend32_s", (I64,), (I64,)),
    ("i32.wrap_i64", (I64,), (I32,)),
    ("f32.demote_f64", (F64,), (F32,)),
    ("i64.reinterpret_f64", (F64,), (I64,)),
    ("i64.trunc_sat_f32_u", (F32,), (I64,)),
    ("f64.convert_i64_s", (I64,), (F64,)),
    ("i64.load32_u", (I32,), (I64,)),
    ("f32.store", (I32, F32), ()),
    ("v128.load16_lane", (I32, V128), (V128,)),
    ("v128.store64_lane", (I32, V128), ()),
    ("i8x16.shuffle", (V128, V128), (V128,)),
    ("i16x8.extract_lane_u", (V128,), (I32,)),
    ("i64x2.replace_lane", (V128, I64), (V128,)),
    ("f64x2.splat", (F64,), (V128,)),
    ("i32x4.shl", (V128, I32), (V128,)),
    ("i8x16.bitmask", (V128,), (I32,)),
    ("v128.bitselect", (V128, V128, V128), (V128,)),
    ("memory.grow", (I32,), (I32,)),
    ("table.copy", (I32, I32, I32), ()),
])
def test_derived_signatures(name, params, results):
    info = OPS[name]
    assert (info.params, info.results) == (params, results)
    assert signature(info, (), params) == (params, results)


def test_effect_classification():
    assert OPS["i32.add"].is_pure and OPS["f32x4.sqrt"].is_pure
    assert OPS["i32.div_s"].effects == Effect.MAY_TRAP
    assert OPS["i64.trunc_f64_u"].effects == Effect.MAY_TRAP
    assert OPS["i32.trunc_sat_f32_s"].is_pure
    assert OPS["i32.load8_u"].effects == Effect.READS_MEM | Effect.MAY_TRAP
    assert OPS["i64.store"].effects == Effect.WRITES_MEM | Effect.MAY_TRAP
    assert OPS["memory.grow"].effects == Effect.READS_MEM | Effect.WRITES_MEM
    assert Effect.CALL in OPS["call_indirect"].effects
    assert OPS["global.get"].resource == "global" and OPS["table.size"].resource == "table"
    for info in opcodes.OP_LIST:
        assert info.terminator == bool(info.effects & Effect.CONTROL), info.name
        assert bool(info.resource) == bool(info.effects & (Effect.READS_MEM | Effect.WRITES_MEM)) \
            or info.effects & Effect.CALL, info.name


def test_table_is_consistent():
    assert [i.code for i in opcodes.OP_LIST] == list(range(len(opcodes.OP_LIST)))
    assert all(OPS[i.name] is i for i in opcodes.OP_LIST)
    for info in opcodes.OP_LIST:
        if info.results is None:  # result types come from operands or the module
            assert info.needs_env or info.name in ("select", "ref.null"), info.name
        if info.params is None:
            assert info.rule is not None, info.name
    assert set(opcodes.TARGET_COUNT) == {i.name for i in opcodes.OP_LIST if i.terminator}


def test_every_wasm_value_op_is_in_the_ir_table():
    # The binary-format table is written independently; plain operators must agree.
    from deadeye.frontend import opcodes as wasm

    structured = {"nop", "block", "loop", "if", "else", "end", "br", "drop", "select_t",
                  "local.get", "local.set", "local.tee"}
    for name, w in wasm.OPS.items():
        if name in structured:
            continue
        assert name in OPS, name
        if w.params is not None:
            assert (OPS[name].params, OPS[name].results) == (w.params, w.results), name


def test_pure_value_ops_have_numerics_by_name():
    from deadeye.ir.numerics import OPS as NUMERICS

    for info in opcodes.OP_LIST:
        if (info.is_pure and info.rule is None and not info.name.endswith(".const")
                and info.name != "ref.func"):
            assert info.name in NUMERICS, info.name


def test_module_dependent_rules():
    env = make_env()
    assert signature(OPS["call"], (2,), (), env) == ((F64,), (F32, I64))
    assert signature(OPS["call"], (2,), ()) is None  # needs an env
    assert signature(OPS["call_indirect"], (1, 0), (), env) == ((I32, I64, I32), (I32,))
    assert signature(OPS["return_call"], (1,), (), env) == ((I32, I64), ())
    assert signature(OPS["global.get"], (2,), (), env) == ((), (F64,))
    assert signature(OPS["table.get"], (1,), (), env) == ((I32,), (EXTERNREF,))
    assert signature(OPS["table.grow"], (0,), (), env) == ((FUNCREF, I32), (I32,))
    assert signature(OPS["table.fill"], (1,), (), env) == ((I32, EXTERNREF, I32), ())
    assert signature(OPS["select"], (), (V128, V128, I32)) == ((V128, V128, I32), (V128,))
    assert signature(OPS["ref.null"], (EXTERNREF,), ()) == ((), (EXTERNREF,))
    with pytest.raises(ValidationError, match="immutable"):
        signature(OPS["global.set"], (1,), (I64,), env)
    with pytest.raises(ValidationError, match="function index 9 out of range"):
        signature(OPS["call"], (9,), (), env)
    with pytest.raises(ValidationError, match="needs a reference"):
        signature(OPS["ref.is_null"], (), (I32,))
    with pytest.raises(ValidationError, match="unknown IR op"):
        opcodes.op("i32.nope")


def test_immediate_checks():
    env = make_env()
    check = opcodes.check_imm
    assert check(OPS["i32.const"], (2**32 - 1,)) == []
    assert check(OPS["i32.const"], (2**32,)) != []
    assert check(OPS["i8x16.extract_lane_s"], (15,)) == []
    assert check(OPS["i8x16.extract_lane_s"], (16,)) != []
    assert check(OPS["f64x2.replace_lane"], (2,)) != []
    assert check(OPS["i8x16.shuffle"], (tuple(range(16)),)) == []
    assert check(OPS["i8x16.shuffle"], (tuple(range(15)) + (32,),)) != []
    assert check(OPS["ref.null"], (I32,)) != []
    assert check(OPS["trap"], ("msg",)) == []
    assert check(OPS["memory.copy"], (1, 0), env) == []
    assert "mem 2 out of range (module has 2)" in check(OPS["memory.copy"], (2, 0), env)[0]
    assert check(OPS["i32.load"], (0,)) == ["i32.load takes 2 immediate(s), got 1"]
