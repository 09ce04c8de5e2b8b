"""SIMD numerics (deadeye.ir.numerics) against wasmtime: every operator of OPS with a v128
operand or result, and every SIMD load/store lane function of MEMORY_OPS."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.ir import numerics as nx
from deadeye.ir.types import ValType
from wasm_oracle import access_bytes, check_differential, edge_grid, operand_strategy, oracle_for

V = ValType.V128
SIMD_OPS = sorted(n for n, i in nx.INFO.items() if V in i.params or V in i.results)
SIMD_MEMORY_OPS = sorted(n for n in nx.MEMORY_INFO if n.startswith("v128."))

_settings = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))


def _run(data, name, info, memory):
    imms, oracles = oracle_for(name, info.params, info.results, info.imm, info.imm_limit, memory)
    args = data.draw(st.tuples(*[operand_strategy(name, k) for k in info.params]), label="args")
    if memory and ".store" not in name:  # the loaded bits must fit the access width
        args = (*args[:-1], args[-1] & ((1 << (8 * access_bytes(name))) - 1))
    k = data.draw(st.integers(0, len(imms) - 1), label="imm index")
    check_differential(info, args, imms[k], oracles[k])


@pytest.mark.parametrize("name", SIMD_OPS)
@_settings
@given(data=st.data())
def test_simd_op_matches_wasmtime(name, data):
    _run(data, name, nx.INFO[name], memory=False)


@pytest.mark.parametrize("name", SIMD_MEMORY_OPS)
@_settings
@given(data=st.data())
def test_simd_memory_op_matches_wasmtime(name, data):
    _run(data, name, nx.MEMORY_INFO[name], memory=True)


def test_simd_op_count():
    # Wasm 2.0 has 236 SIMD opcodes; 23 of them are v128.const and loads/stores.
    assert len(SIMD_OPS) == 236 - 23
    assert len(SIMD_MEMORY_OPS) == 20


def test_lane_helpers_round_trip():
    v = 0x0F0E0D0C0B0A09080706050403020100
    for width in (8, 16, 32, 64):
        for signed in (False, True):
            assert nx.v128_from_lanes(nx.v128_lanes(v, width, signed), width, signed) == v
    assert nx.v128_lanes(v, 8) == tuple(range(16))
    assert nx.v128_lanes(0xFF, 8, signed=True)[0] == -1


def test_v128_canonicalize():
    lanes = [0x7FA00001, 0x3F800000, 0xFFC00000, 0x80000000]
    v = nx.v128_from_lanes(lanes, 32)
    assert nx.v128_lanes(nx.canonicalize_nan_v128_f32x4(v), 32) == (0x7FC00000, 0x3F800000, 0x7FC00000, 0x80000000)
    w = nx.v128_from_lanes([0xFFF0000000000001, 0x7FF0000000000000], 64)
    assert nx.v128_lanes(nx.canonicalize_nan_v128_f64x2(w), 64) == (0x7FF8000000000000, 0x7FF0000000000000)
    assert nx.NAN_CANONICALIZE["f32x4.add"] is nx.canonicalize_nan_v128_f32x4
    assert "f32x4.pmin" not in nx.NAN_CANONICALIZE and "f64x2.abs" not in nx.NAN_CANONICALIZE


def test_float_lane_nan_rule_is_the_scalar_rule():
    # lane i of a vector op equals the scalar op on lane i, NaN payloads included
    a = nx.v128_from_lanes([0x7FA00001, 0xFFC00000, 0x3F800000, 0x7F800000], 32)
    b = nx.v128_from_lanes([0x3F800000, 0x7F800002, 0xFF800000, 0xFF800000], 32)
    got = nx.v128_lanes(nx.f32x4_add(a, b), 32)
    want = tuple(nx.f32_add(x, y) for x, y in zip(nx.v128_lanes(a, 32), nx.v128_lanes(b, 32)))
    assert got == want == (0x7FE00001, 0xFFC00000, 0xFF800000, 0x7FC00000)


def test_shuffle_and_swizzle_semantics():
    a = int.from_bytes(bytes(range(16)), "little")
    b = int.from_bytes(bytes(range(16, 32)), "little")
    mask = [31 - i for i in range(16)]
    assert nx.i8x16_shuffle(a, b, mask).to_bytes(16, "little") == bytes(range(31, 15, -1))
    idx = int.from_bytes(bytes([0, 15, 16, 255] + [1] * 12), "little")
    assert nx.i8x16_swizzle(a, idx).to_bytes(16, "little")[:4] == bytes([0, 15, 0, 0])


def _grid(name, info, memory):
    imms, oracles = oracle_for(name, info.params, info.results, info.imm, info.imm_limit, memory)
    for n, args in enumerate(edge_grid(name, info.params)):
        k = n % len(imms)
        check_differential(info, args, imms[k], oracles[k])


@pytest.mark.parametrize("name", SIMD_OPS)
def test_simd_op_edge_grid(name):
    _grid(name, nx.INFO[name], memory=False)
