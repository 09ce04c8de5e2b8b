"""Every op of the ISA table run by the native handlers (all three dispatch modes) against
the reference executor, whose numeric semantics are `ir.numerics`: hypothesis inputs with
edge values (NaN payloads, signed zeros, infinities, conversion bounds, memory ends)."""

import pytest
from hypothesis import HealthCheck, given, settings

from deadeye.interp.isa.table import OP_LIST

import jit_testlib as T

GENERIC = T.generic_ops()

# Ops that need a module around them (functions, tables, globals, segments, other
# memories, calls): each is exercised by name in tests/test_jit_programs.py.
PROGRAM_TESTED = {
    "jump", "br_if", "br_if_not", "br_table", "return", "call", "call_indirect", "call_host",
    "return_call", "return_call_indirect", "unreachable", "trap", "fuel",
    "memory.size", "memory.grow", "memory.copy", "memory.fill", "memory.init", "data.drop",
    "global.get", "global.set", "global.get128", "global.set128",
    "table.get", "table.set", "table.size", "table.grow", "table.fill", "table.copy",
    "table.init", "elem.drop", "ref.null", "ref.is_null", "ref.func",
}


def test_every_op_is_tested():
    names = {op.name for op in OP_LIST}
    assert set(GENERIC) | PROGRAM_TESTED == names
    assert not set(GENERIC) & PROGRAM_TESTED
    src = open(__file__.replace("test_jit_ops.py", "test_jit_programs.py")).read()
    missing = [n for n in PROGRAM_TESTED if f'("{n}"' not in src]
    assert not missing, f"ops without a program test: {missing}"


@pytest.mark.parametrize("name", GENERIC)
def test_op_matches_reference(name):
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(T.case_strategy(name))
    def check(case):
        T.check_op(name, *case)

    check()


@pytest.mark.parametrize("name, slots", [
    ("f32.min", (0, 0x80000000, 0)), ("f32.max", (0, 0x80000000, 0)),
    ("f64.min", (0, 1 << 63, 0)), ("f64.max", (0, 0, 1 << 63)),
    ("f32.add", (0, 0x7F800001, 0xFFC00001)), ("f64.sub", (0, 0x7FF0000000000000, 0x7FF0000000000000)),
    ("f32.nearest", (0, 0x40200000)), ("f64.nearest", (0, 0xC004000000000000)),
    ("i32.trunc_f64_s", (0, 0xC1E00000001FFFFF)), ("i32.trunc_f64_s", (0, 0xC1E0000000200000)),
    ("i64.trunc_f32_u", (0, 0xBF7FFFFF)), ("i32.trunc_sat_f32_u", (0, 0x7FC00000)),
    ("f32.demote_f64", (0, 0xFFF4000000000001)), ("f64.promote_f32", (0, 0x7FA00001)),
    ("i64.rem_s", (0, 1 << 63, (1 << 64) - 1)), ("i32.div_s", (0, 0x80000000, 0xFFFFFFFF)),
    ("f32.convert_i64_u", (0, (1 << 64) - 1)), ("f32.convert_i64_s", (0, 0x20000020000001)),
])
def test_edge_cases(name, slots):
    T.check_op(name, {}, slots, 0)
