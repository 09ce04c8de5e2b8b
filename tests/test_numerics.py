"""Scalar numerics (deadeye.ir.numerics): every scalar operator of OPS against wasmtime,
exact-rounding proofs against rational arithmetic, the NaN rule, and the tables."""

import math
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.ir import numerics as nx
from deadeye.ir.errors import Trap
from deadeye.ir.types import FuncType, ValType
from wasm_oracle import (
    SCALAR_STRATEGIES,
    check_differential,
    edge_grid,
    float_strategy,
    int_strategy,
    oracle_for,
)

V = ValType.V128
SCALAR_OPS = sorted(n for n, i in nx.INFO.items() if V not in i.params and V not in i.results)
SCALAR_MEMORY_OPS = sorted(n for n in nx.MEMORY_INFO if not n.startswith("v128."))

_settings = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------- against wasmtime


@pytest.mark.parametrize("name", SCALAR_OPS)
@_settings
@given(data=st.data())
def test_scalar_op_matches_wasmtime(name, data):
    info = nx.INFO[name]
    imms, oracles = oracle_for(name, info.params, info.results, info.imm, info.imm_limit)
    args = data.draw(st.tuples(*[SCALAR_STRATEGIES[t] for t in info.params]), label="args")
    check_differential(info, args, imms[0], oracles[0])


@pytest.mark.parametrize("name", SCALAR_OPS)
def test_scalar_op_edge_grid(name):
    info = nx.INFO[name]
    _, oracles = oracle_for(name, info.params, info.results, info.imm, info.imm_limit)
    for args in edge_grid(name, info.params):
        check_differential(info, args, None, oracles[0])


@pytest.mark.parametrize("name", SCALAR_MEMORY_OPS)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_scalar_memory_op_matches_wasmtime(name, data):
    info = nx.MEMORY_INFO[name]
    _, oracles = oracle_for(name, info.params, info.results, None, 0, memory=True)
    x = data.draw(SCALAR_STRATEGIES[info.params[0]], label="operand")
    if ".load" in name:
        x &= (1 << int(re.search(r"load(\d+)", name).group(1))) - 1
    check_differential(info, (x,), None, oracles[0])


def test_every_op_is_covered_by_an_oracle_test():
    from test_numerics_simd import SIMD_MEMORY_OPS, SIMD_OPS

    assert sorted(SCALAR_OPS + SIMD_OPS) == sorted(nx.OPS)
    assert sorted(SCALAR_MEMORY_OPS + SIMD_MEMORY_OPS) == sorted(nx.MEMORY_OPS)


# ---------------------------------------------------------------- exact rounding, shown


def ref_round(q: Fraction, bits: int) -> int:
    """Round a nonzero rational to the nearest float of the given width (ties to even),
    subnormals and overflow included: an independent reference for the tests."""
    p, ebits = (24, 8) if bits == 32 else (53, 11)
    emax, emin = (1 << (ebits - 1)) - 1, 2 - (1 << (ebits - 1))
    sign = 1 << (bits - 1) if q < 0 else 0
    q = abs(q)
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if Fraction(2) ** e > q:
        e -= 1
    e = max(e, emin)
    scaled = q * Fraction(2) ** (p - 1 - e)
    m = scaled.numerator // scaled.denominator
    rem = scaled - m
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and m & 1):
        m += 1
    if m == 1 << p:
        m, e = m >> 1, e + 1
    if e > emax:
        return sign | (((1 << ebits) - 1) << (p - 1))  # infinity
    if m < 1 << (p - 1):
        return sign | m  # subnormal
    return sign | ((e + emax) << (p - 1)) | (m - (1 << (p - 1)))


def ref_sqrt_round32(q: Fraction) -> int:
    """Correctly rounded f32 square root of a positive rational."""
    # sqrt(q) = sqrt(q * 4**k) / 2**k; pick k so the integer root has 26+ bits
    k = 40 - (q.numerator.bit_length() - q.denominator.bit_length()) // 2
    t = q * Fraction(4) ** k
    r = math.isqrt(t.numerator // t.denominator)
    # r <= sqrt(t) < r + 1; sticky bit: is sqrt(t) exactly r?
    exact = Fraction(r * r) == t
    # represent sqrt(q) as (2r + (0 if exact else 1)) / 2**(k+1): the odd tail keeps ties honest
    return ref_round(Fraction(2 * r + (0 if exact else 1)) / Fraction(2) ** (k + 1), 32)


def _finite32(b: int) -> bool:
    return (b & 0x7FFFFFFF) < 0x7F800000


@settings(max_examples=600, deadline=None)
@given(float_strategy(32), float_strategy(32))
def test_f32_arithmetic_through_double_is_correctly_rounded(a, b):
    # The double result is rounded once more to single; this shows that rounding is exact by
    # comparing with the exact rational result rounded once.
    if not (_finite32(a) and _finite32(b)):
        return
    x, y = Fraction(nx.f32_to_float(a)), Fraction(nx.f32_to_float(b))
    for op, exact in ((nx.f32_add, x + y), (nx.f32_sub, x - y), (nx.f32_mul, x * y),
                      (nx.f32_div, x / y if y else None)):
        if exact:
            assert op(a, b) == ref_round(exact, 32), (op.__name__, hex(a), hex(b))
    if x > 0:
        assert nx.f32_sqrt(a) == ref_sqrt_round32(x), hex(a)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 0xFF), st.integers(0, (1 << 24) - 1), st.integers(1, 0xFF),
       st.integers(0, (1 << 24) - 1))
def test_f32_division_into_subnormals_is_correctly_rounded(e1, m1, e2, m2):
    # small / large: quotients land in the subnormal range, where single precision has
    # fewer bits and double rounding would be most fragile
    a = (e1 % 40) << 23 | (m1 & 0x7FFFFF)
    b = (0x7F - (e2 % 40)) << 23 | (m2 & 0x7FFFFF)
    q = Fraction(nx.f32_to_float(a)) / Fraction(nx.f32_to_float(b))
    if q:
        assert nx.f32_div(a, b) == ref_round(q, 32)


@settings(max_examples=400, deadline=None)
@given(float_strategy(64))
def test_float_to_f32_rounds_exactly(b):
    x = nx.f64_to_float(b)
    if x != x or x in (math.inf, -math.inf) or x == 0:
        return
    assert nx.float_to_f32(x) == ref_round(Fraction(x), 32), hex(b)


def test_float_to_f32_boundaries():
    f32max = Fraction(nx.f32_to_float(0x7F7FFFFF))
    half_ulp = Fraction(2) ** (127 - 24)
    assert nx.float_to_f32(float(f32max + half_ulp)) == 0x7F800000  # the tie rounds to even: inf
    below = float(f32max + half_ulp - Fraction(2) ** (127 - 52))  # one double ulp below the tie
    assert nx.float_to_f32(below) == 0x7F7FFFFF
    assert nx.float_to_f32(-1e300) == 0xFF800000
    assert nx.float_to_f32(2.0 ** -150) == 0  # tie between 0 and the smallest subnormal
    assert nx.float_to_f32(2.0 ** -150 * 3) == 2  # tie between 1 and 2 ulps: even
    assert nx.float_to_f32(-(2.0 ** -149)) == 0x80000001


@settings(max_examples=400, deadline=None)
@given(st.one_of(int_strategy(64), st.integers(-(1 << 63), (1 << 64) - 1)))
def test_int_to_float_is_correctly_rounded(n):
    if n == 0:
        assert nx.int_to_f32(0) == 0 and nx.int_to_f64(0) == 0
        return
    assert nx.int_to_f32(n) == ref_round(Fraction(n), 32)
    assert nx.int_to_f64(n) == ref_round(Fraction(n), 64)


def test_i64_to_f32_avoids_double_rounding():
    # 2**63 + 2**39 + 1 rounds to 2**63 + 2**39 in double (a tie for f32, which goes to
    # even = 2**63); rounded once it is just above the tie and must go up.
    n = (1 << 63) + (1 << 39) + 1
    assert nx.float_to_f32(float(n)) == 0x5F000000
    assert nx.f32_convert_i64_u(n) == 0x5F000001
    m = (1 << 62) + (1 << 38) + 1  # the same pattern, negative, through convert_i64_s
    assert nx.float_to_f32(float(-m)) == 0xDE800000
    assert nx.f32_convert_i64_s((-m) & ((1 << 64) - 1)) == 0xDE800001 == ref_round(Fraction(-m), 32)


# ---------------------------------------------------------------- NaN rule


def test_nan_rule_propagates_first_nan_quieted():
    snan, qnan_payload = 0x7FA00001, 0xFFC00123
    one = 0x3F800000
    assert nx.f32_add(snan, one) == 0x7FE00001
    assert nx.f32_add(one, snan) == 0x7FE00001
    assert nx.f32_mul(qnan_payload, snan) == qnan_payload
    assert nx.f32_min(one, qnan_payload) == qnan_payload
    assert nx.f32_sqrt(0xFF800001) == 0xFFC00001
    assert nx.f32_nearest(snan) == 0x7FE00001
    assert nx.f64_div(0x7FF0000000000001, 0) == 0x7FF8000000000001


def test_nan_rule_canonical_when_no_nan_operand():
    inf, ninf = 0x7F800000, 0xFF800000
    assert nx.f32_add(inf, ninf) == nx.CANONICAL_NAN_F32
    assert nx.f32_mul(0, inf) == nx.CANONICAL_NAN_F32
    assert nx.f32_div(0x80000000, 0) == nx.CANONICAL_NAN_F32
    assert nx.f32_sqrt(0xBF800000) == nx.CANONICAL_NAN_F32
    assert nx.f64_sub(0x7FF0000000000000, 0x7FF0000000000000) == nx.CANONICAL_NAN_F64


def test_bit_operations_keep_nan_payloads():
    snan = 0x7FA00001
    assert nx.f32_abs(snan | 0x80000000) == snan
    assert nx.f32_neg(snan) == snan | 0x80000000
    assert nx.f32_copysign(snan, 0x80000000) == snan | 0x80000000
    assert nx.f32_reinterpret_i32(snan) == snan
    assert nx.f64_neg(0x7FF0000000000001) == 0xFFF0000000000001


def test_demote_promote_nan_payloads():
    assert nx.f64_promote_f32(0x7FA00001) == 0x7FFC000020000000
    assert nx.f32_demote_f64(0x7FF4000020000000) == 0x7FE00001
    assert nx.f32_demote_f64(0xFFF8000000000000) == 0xFFC00000  # canonical stays canonical
    assert nx.f64_promote_f32(0x7FC00000) == nx.CANONICAL_NAN_F64


def test_canonicalize_helpers():
    assert nx.canonicalize_nan_f32(0xFFA00001) == nx.CANONICAL_NAN_F32
    assert nx.canonicalize_nan_f32(0x7F800000) == 0x7F800000
    assert nx.canonicalize_nan_f64(0x7FF0000000000001) == nx.CANONICAL_NAN_F64
    assert nx.canonicalize_nan_f64(0xFFF0000000000000) == 0xFFF0000000000000
    assert nx.NAN_CANONICALIZE["f32.add"] is nx.canonicalize_nan_f32
    assert nx.NAN_CANONICALIZE["f32.demote_f64"] is nx.canonicalize_nan_f32
    for bitop in ("f32.abs", "f32.neg", "f32.copysign", "f32.reinterpret_i32", "f32.convert_i32_s"):
        assert bitop not in nx.NAN_CANONICALIZE


# ---------------------------------------------------------------- specific semantics


@pytest.mark.parametrize("name,args,message", [
    ("i32.div_s", (1, 0), nx.DIV_BY_ZERO),
    ("i32.div_s", (0x80000000, 0xFFFFFFFF), nx.INT_OVERFLOW),
    ("i64.div_s", (1 << 63, (1 << 64) - 1), nx.INT_OVERFLOW),
    ("i64.rem_u", (5, 0), nx.DIV_BY_ZERO),
    ("i32.trunc_f32_s", (0x7FC00000,), nx.INVALID_CONVERSION),
    ("i32.trunc_f32_s", (0x4F000000,), nx.INT_OVERFLOW),  # 2**31
    ("i64.trunc_f64_u", (0xBFF0000000000000,), nx.INT_OVERFLOW),  # -1.0
    ("i32.trunc_f64_u", (0x7FF0000000000000,), nx.INT_OVERFLOW),
])
def test_traps(name, args, message):
    with pytest.raises(Trap) as err:
        nx.OPS[name](*args)
    assert err.value.message == message
    assert name in nx.TRAPPING


def test_integer_semantics_spot_checks():
    assert nx.i32_rem_s(0x80000000, 0xFFFFFFFF) == 0
    assert nx.i32_div_s(0xFFFFFFF9, 2) == 0xFFFFFFFD  # -7 / 2 = -3
    assert nx.i32_rem_s(0xFFFFFFF9, 2) == 0xFFFFFFFF  # -7 % 2 = -1
    assert nx.i32_shl(1, 33) == 2 and nx.i64_shr_s(1 << 63, 65) == 0xC000000000000000
    assert nx.i32_rotl(0x80000001, 1) == 3 and nx.i32_rotr(3, 1) == 0x80000001
    assert nx.i32_clz(0) == 32 and nx.i64_ctz(0) == 64 and nx.i64_popcnt((1 << 64) - 1) == 64
    assert nx.i32_lt_s(0xFFFFFFFF, 0) == 1 and nx.i32_lt_u(0xFFFFFFFF, 0) == 0
    assert nx.i64_extend32_s(0x80000000) == 0xFFFFFFFF80000000
    assert nx.i64_extend_i32_s(0xFFFFFFFF) == (1 << 64) - 1
    assert nx.i32_wrap_i64(0x123456789) == 0x23456789
    assert nx.i32_trunc_sat_f32_s(0x7FC00000) == 0
    assert nx.i32_trunc_sat_f32_u(0xFF800000) == 0
    assert nx.i64_trunc_sat_f64_s(0x7FF0000000000000) == (1 << 63) - 1


def test_float_semantics_spot_checks():
    f, b = nx.f32_to_float, nx.float_to_f32
    assert nx.f32_min(0, 0x80000000) == 0x80000000 and nx.f32_max(0x80000000, 0) == 0
    assert nx.f32_nearest(b(2.5)) == b(2.0) and nx.f32_nearest(b(-3.5)) == b(-4.0)
    assert nx.f32_nearest(b(-0.5)) == 0x80000000
    assert nx.f32_ceil(b(-0.75)) == 0x80000000 and nx.f32_floor(b(0.75)) == 0
    assert nx.f64_trunc(nx.float_to_f64(-1.9)) == nx.float_to_f64(-1.0)
    assert f(nx.f32_div(b(1.0), 0x80000000)) == -math.inf
    assert nx.f32_eq(0, 0x80000000) == 1 and nx.f32_ne(0x7FC00000, 0x7FC00000) == 1
    assert nx.f32_sqrt(0x80000000) == 0x80000000


# ---------------------------------------------------------------- the tables


def test_tables_are_consistent():
    assert set(nx.OPS) == set(nx.INFO) == set(nx.SIGNATURES)
    for name, info in {**nx.INFO, **nx.MEMORY_INFO}.items():
        pyname = name.replace(".", "_")
        assert getattr(nx, pyname) is info.fn and info.fn.__name__ == pyname
        assert len(info.results) == 1
        if name in nx.SIGNATURES:
            assert nx.SIGNATURES[name] == FuncType(info.params, info.results)
        if info.imm == "lane":
            assert nx.IMMEDIATE[name] == ("lane", info.imm_limit)
    assert nx.TRAPPING == {f"i{n}.{op}" for n in (32, 64) for op in ("div_s", "div_u", "rem_s", "rem_u")} | {
        f"i{d}.trunc_f{s}_{sg}" for d in (32, 64) for s in (32, 64) for sg in "su"}
    assert nx.IMMEDIATE["i8x16.shuffle"] == ("shuffle", 32)
    assert nx.SIGNATURES["i64.eqz"] == FuncType((ValType.I64,), (ValType.I32,))


def test_ops_cover_every_numeric_instruction_of_the_spec_tests():
    # Instruction names in the vendored spec scripts, in folded "(op" or flat form; the
    # ones that are not pure operators (const, plain loads/stores) are excluded.
    spec = Path(__file__).parent / "spec" / "core"
    shapes = r"(?:i8x16|i16x8|i32x4|i64x2|f32x4|f64x2|v128|i32|i64|f32|f64)"
    seen = set()
    for path in spec.rglob("*.wast"):
        text = re.sub(r'"[^"\n]*"', '""', path.read_text(errors="replace"))
        text = re.sub(r";;[^\n]*", "", text)
        seen |= set(re.findall(rf"(?<![\w$.\"]){shapes}\.[a-z][a-z0-9_]*", text))
    plain = {f"{t}.{k}" for t in ("i32", "i64", "f32", "f64", "v128") for k in ("const", "load", "store")}
    seen -= plain
    known = set(nx.OPS) | set(nx.MEMORY_OPS)
    # every operator we define is exercised by the spec, and vice versa
    assert seen - known == set()
    assert known - seen == set()


def test_nan_checker_rejects_what_the_spec_forbids():
    from wasm_oracle import nan_agreement_error

    F = ValType.F32
    one, canon, arith = 0x3F800000, 0x7FC00000, 0x7FC00001
    # no NaN operand: only canonical NaNs (either sign) are allowed
    assert nan_agreement_error("f32", (F, F), (one, one), canon, 0xFFC00000) is None
    assert nan_agreement_error("f32", (F, F), (one, one), canon, arith) is not None
    # a non-canonical NaN operand: any arithmetic (quiet) NaN
    assert nan_agreement_error("f32", (F, F), (0x7FA00000, one), arith, canon) is None
    assert nan_agreement_error("f32", (F, F), (0x7FA00000, one), 0x7FA00000, canon) is not None
    # a number never matches a NaN, and numbers must be identical
    assert nan_agreement_error("f32", (F, F), (one, one), one, canon) is not None
    assert nan_agreement_error("f32", (F, F), (one, one), 0, 0x80000000) is not None
    # vector lanes are judged one by one against their own operand lanes
    v = ValType.V128
    a = nx.v128_from_lanes([0x7FA00000, one, one, one], 32)
    ours = nx.v128_from_lanes([arith, canon, one, one], 32)
    assert nan_agreement_error("f32x4", (v,), (a,), ours, nx.v128_from_lanes([canon, canon, one, one], 32)) is None
    assert nan_agreement_error("f32x4", (v,), (a,), ours, nx.v128_from_lanes([canon, arith, one, one], 32)) is not None
