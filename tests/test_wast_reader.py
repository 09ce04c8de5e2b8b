"""Units of the .wast machinery: the S-expression reader, numeric literals, result patterns,
command classification, and the runner end to end (on wasmtime as the execution backend)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from contextlib import redirect_stdout
from decimal import Decimal, localcontext
from fractions import Fraction
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deadeye import wast
from deadeye.ir.errors import DecodeError, ValidationError
from deadeye.ir.types import ValType
from deadeye.literals import canonical_nan, parse_float, parse_int, parse_v128_lanes
from deadeye.sexpr import SList, Str, read

# ----------------------------------------------------------------------------- reader


def test_reader_nodes_and_lines():
    src = '(module $m\n  (func (export "f") (result i32)\n    (i32.const -0x1_0)))\n(assert_return (invoke "f"))'
    nodes = read(src, "t.wast")
    assert len(nodes) == 2
    mod = nodes[0]
    assert isinstance(mod, SList) and mod.head() == "module" and mod.line == 1
    func = mod.items[2]
    assert func.line == 2 and func.head() == "func"
    export = func.items[1]
    assert isinstance(export.items[1], Str) and export.items[1].value == b"f"
    const = func.items[3]
    assert const.line == 3 and [a.text for a in const.items] == ["i32.const", "-0x1_0"]
    assert nodes[1].line == 4
    # start/end give the exact source slice of a form
    assert src[mod.start : mod.end].startswith("(module $m") and src[mod.start : mod.end].endswith(")))")


def test_reader_string_escapes():
    (s,) = read(r'"a\n\t\\\'\"\00\ff\u{48}\u{1F600}\u{10_FFFF}"')
    assert isinstance(s, Str)
    assert s.value == b'a\n\t\\\'"\x00\xff' + "H\U0001F600\U0010FFFF".encode()
    (raw,) = read('"h\u00e9"')
    assert raw.value == "hé".encode() and raw.text() == "hé"


def test_reader_comments():
    src = """;; line comment ( unbalanced
    (; block (; nested ;) still comment ;) a
    (;;) b ;; trailing
    (; multi
    line ;)
    (c (;inside;) d)"""
    nodes = read(src)
    assert [n.text for n in nodes[:2]] == ["a", "b"]
    assert isinstance(nodes[2], SList) and [a.text for a in nodes[2].items] == ["c", "d"]
    assert nodes[2].line == 6


def test_reader_comment_suite_file_reads():
    # the spec's comment test holds control characters and odd nestings in comments
    nodes = read(open("tests/spec/core/comments.wast", encoding="utf-8").read())
    assert [n.head() for n in nodes][:2] == ["module", "module"]


@pytest.mark.parametrize(
    "src, line, fragment",
    [
        ('(module\n  "abc', 2, "unterminated string"),
        ("(module\n\n (func)", 1, "unclosed"),
        ("(a))", 1, "unexpected ')'"),
        ('\n"bad \\q escape"', 2, "invalid escape"),
        ("x\n(; never closed", 2, "unterminated block comment"),
        ('"\\u{D800}"', 1, "invalid unicode escape"),
        ("a ; b", 1, "unexpected character"),
    ],
)
def test_reader_errors_name_file_and_line(src, line, fragment):
    with pytest.raises(DecodeError) as e:
        read(src, "bad.wast")
    assert str(e.value).startswith(f"bad.wast:{line}:")
    assert fragment in str(e.value)


# ----------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    "text, bits, value",
    [
        ("0", 32, 0),
        ("-1", 32, 0xFFFFFFFF),
        ("4294967295", 32, 0xFFFFFFFF),
        ("-2147483648", 32, 0x80000000),
        ("0x7fff_ffff", 32, 0x7FFFFFFF),
        ("+0x10", 32, 16),
        ("1_000_000", 64, 1000000),
        ("-0x8000000000000000", 64, 1 << 63),
        ("0xffffffffffffffff", 64, (1 << 64) - 1),
        ("-128", 8, 0x80),
        ("255", 8, 0xFF),
    ],
)
def test_parse_int(text, bits, value):
    assert parse_int(text, bits) == value


@pytest.mark.parametrize(
    "text, bits",
    [("4294967296", 32), ("-2147483649", 32), ("1__0", 32), ("_1", 32), ("0x", 32), ("1_", 32), ("256", 8), ("", 32), ("1.0", 32)],
)
def test_parse_int_rejects(text, bits):
    with pytest.raises(ValueError):
        parse_int(text, bits)


# ----------------------------------------------------------------------------- floats


def _f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


@pytest.mark.parametrize(
    "text, bits, value",
    [
        ("0", 32, 0),
        ("-0", 32, 0x80000000),
        ("-0.0", 64, 1 << 63),
        ("1", 32, 0x3F800000),
        ("0x1p-149", 32, 1),  # smallest subnormal
        ("0x1.fffffep127", 32, 0x7F7FFFFF),  # largest finite
        ("inf", 32, 0x7F800000),
        ("-inf", 64, 0xFFF0000000000000),
        ("nan", 32, 0x7FC00000),
        ("-nan", 64, 0xFFF8000000000000),
        ("nan:0x1", 32, 0x7F800001),
        ("-nan:0x7f_ffff", 32, 0xFFFFFFFF),
        ("nan:0xf_ffff_ffff_ffff", 64, 0x7FFFFFFFFFFFFFFF),
        ("0x1.8p3", 64, _f64(12.0)),
        ("0x0.8p1", 64, _f64(1.0)),
        ("1e10", 32, _f32(1e10)),
        ("1_000.000_1", 64, _f64(1000.0001)),
        ("+1.5E-3", 64, _f64(1.5e-3)),
        ("0x1P+2", 32, _f32(4.0)),
        ("1.", 64, _f64(1.0)),
        # halfway between the two smallest f32 subnormals rounds to even (zero)
        ("0x1p-150", 32, 0),
        ("0x1.000001p-150", 32, 1),
        # a tie just above the largest subnormal rounds up into the normals
        ("0x1.fffffep-127", 32, 0x00800000),
        ("1e-400", 64, 0),
        ("-1e-400", 64, 1 << 63),
    ],
)
def test_parse_float(text, bits, value):
    assert parse_float(text, bits) == value


@pytest.mark.parametrize(
    "text, bits",
    [("1e39", 32), ("0x1p128", 32), ("1e309", 64), ("0x1.fffffffffffff8p1023", 64), ("nan:0x0", 32),
     ("nan:0x800000", 32), ("1.0.0", 64), ("0x1.p", 32), ("e5", 64), ("1e", 64), ("infinity", 32), ("1e1000000", 64)],
)
def test_parse_float_rejects(text, bits):
    with pytest.raises(ValueError):
        parse_float(text, bits)


def test_f32_is_rounded_once():
    # 1 + 2**-24 is the midpoint between 1.0 and the next f32; adding 2**-80 puts the value
    # just above it. Correct rounding gives the upper neighbour; rounding to a double first
    # lands exactly on the midpoint, and ties-to-even would then give 1.0.
    exact = Fraction(1) + Fraction(1, 2**24) + Fraction(1, 2**80)
    hex_text = "0x1.00000100000000000001p0"
    assert Fraction(int("100000100000000000001", 16), 16**20) == exact
    with localcontext() as ctx:
        ctx.prec = 200
        dec_text = str(Decimal(exact.numerator) / Decimal(exact.denominator))
    for text in (hex_text, dec_text):
        assert parse_float(text, 32) == 0x3F800001
    # the detour through a double would have produced 1.0
    assert _f32(float(exact)) == 0x3F800000


def _exact_decimal(bits: int, width: int, digits: int) -> str:
    """The float with these bits, in decimal rounded to `digits` significant digits."""
    mant_bits = 23 if width == 32 else 52
    bias = 127 if width == 32 else 1023
    exp = (bits >> mant_bits) & ((1 << (width - 1 - mant_bits)) - 1)
    mant = bits & ((1 << mant_bits) - 1)
    value = Fraction(mant, 1 << mant_bits) * Fraction(2) ** (1 - bias) if exp == 0 else (
        (1 + Fraction(mant, 1 << mant_bits)) * Fraction(2) ** (exp - bias)
    )
    with localcontext() as ctx:
        ctx.prec = 1200
        d = Decimal(value.numerator) / Decimal(value.denominator)
    sign = "-" if bits >> (width - 1) else ""
    return sign + format(d, f".{digits - 1}e")


def _hex_float(bits: int, width: int) -> str:
    mant_bits = 23 if width == 32 else 52
    bias = 127 if width == 32 else 1023
    exp = (bits >> mant_bits) & ((1 << (width - 1 - mant_bits)) - 1)
    mant = bits & ((1 << mant_bits) - 1)
    sign = "-" if bits >> (width - 1) else ""
    # written as an integer mantissa with an underscore-separated hex form and a binary exponent
    if exp == 0:
        m, e = mant, 1 - bias - mant_bits
    else:
        m, e = mant | (1 << mant_bits), exp - bias - mant_bits
    h = f"{m:x}"
    grouped = "_".join(h[max(0, i - 4) : i] for i in range(len(h), 0, -4)[::-1])
    return f"{sign}0x{grouped}p{e}"


def _finite(width: int):
    top = (0xFF if width == 32 else 0x7FF) << (23 if width == 32 else 52)
    return st.integers(0, (1 << width) - 1).filter(lambda b: (b & top) != top)


@settings(max_examples=300, deadline=None)
@given(_finite(32))
def test_f32_round_trip_bit_exact(bits):
    assert parse_float(_hex_float(bits, 32), 32) == bits
    assert parse_float(_exact_decimal(bits, 32, 9), 32) == bits  # 9 digits identify an f32
    # glibc/Python's correctly rounded f64 parser agrees on hex floats widened to f64
    assert parse_float(_hex_float(bits, 32), 64) == _f64(struct.unpack("<f", struct.pack("<I", bits))[0])


@settings(max_examples=300, deadline=None)
@given(_finite(64))
def test_f64_round_trip_bit_exact(bits):
    assert parse_float(_hex_float(bits, 64), 64) == bits
    text = _exact_decimal(bits, 64, 17)
    assert parse_float(text, 64) == bits
    assert parse_float(text, 64) == _f64(float(text))  # Python's float() rounds correctly


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**30), st.integers(-60, 40))
def test_decimal_f64_matches_python(mantissa, exp10):
    text = f"{mantissa}e{exp10}"
    assert parse_float(text, 64) == _f64(float(text))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**20), st.integers(-60, 15))
def test_decimal_f32_is_nearest(mantissa, exp10):
    # the result must be the f32 nearest the exact value (ties to even): compare distances
    text = f"{mantissa}e{exp10}"
    exact = Fraction(mantissa) * Fraction(10) ** exp10
    got = parse_float(text, 32)
    value = Fraction(struct.unpack("<f", struct.pack("<I", got))[0])
    below = Fraction(struct.unpack("<f", struct.pack("<I", got - 1))[0]) if got & 0x7FFFFFFF else None
    above = Fraction(struct.unpack("<f", struct.pack("<I", got + 1))[0]) if got + 1 < 0x7F800000 else None
    for n in (below, above):
        if n is not None:
            assert abs(exact - value) <= abs(exact - n)


def test_v128_lanes():
    assert parse_v128_lanes("i32x4", ["1", "2", "3", "-1"]) == 1 | 2 << 32 | 3 << 64 | 0xFFFFFFFF << 96
    assert parse_v128_lanes("i8x16", ["-1"] + ["0"] * 15) == 0xFF
    assert parse_v128_lanes("i16x8", ["0xffff"] + ["0"] * 7) == 0xFFFF
    assert parse_v128_lanes("i64x2", ["0", "-0x8000000000000000"]) == 1 << 127
    assert parse_v128_lanes("f32x4", ["1", "0", "0", "-0"]) == 0x3F800000 | 0x80000000 << 96
    assert parse_v128_lanes("f64x2", ["nan", "inf"]) == 0x7FF8000000000000 | 0x7FF0000000000000 << 64
    for shape, lanes in (("i32x4", ["1"] * 3), ("i8x16", ["256"] + ["0"] * 15), ("i33x4", ["0"] * 4)):
        with pytest.raises(ValueError):
            parse_v128_lanes(shape, lanes)


# ----------------------------------------------------------------------------- result patterns


def _expect(text: str) -> wast.Expected:
    (node,) = read(text)
    return wast.parse_expected(node)


def test_expected_nan_patterns():
    canon = _expect("(f32.const nan:canonical)")
    assert canon.matches(ValType.F32, canonical_nan(32))
    assert canon.matches(ValType.F32, canonical_nan(32, negative=True))
    assert not canon.matches(ValType.F32, 0x7FC00001)
    assert not canon.matches(ValType.F64, canonical_nan(64))  # wrong type
    arith = _expect("(f64.const nan:arithmetic)")
    assert arith.matches(ValType.F64, 0xFFF8000000000001)
    assert not arith.matches(ValType.F64, 0x7FF0000000000001)  # signalling
    assert not arith.matches(ValType.F64, 0x7FF0000000000000)  # infinity
    exact = _expect("(f32.const -nan:0x200000)")
    assert exact.matches(ValType.F32, 0xFFA00000) and not exact.matches(ValType.F32, 0xFFE00000)


def test_expected_v128_lanes():
    e = _expect("(v128.const f32x4 nan:canonical 1.0 nan:arithmetic -0)")
    good = canonical_nan(32) | 0x3F800000 << 32 | 0x7FC00005 << 64 | 0x80000000 << 96
    assert e.matches(ValType.V128, good)
    assert not e.matches(ValType.V128, good ^ (1 << 64 + 22))  # lane 2 no longer quiet
    assert not e.matches(ValType.V128, good ^ (1 << 96 + 31))  # lane 3 +0
    assert _expect("(v128.const i16x8 1 2 3 4 5 6 7 -1)").matches(
        ValType.V128, sum(v << (16 * i) for i, v in enumerate([1, 2, 3, 4, 5, 6, 7, 0xFFFF]))
    )


def test_expected_references_and_either():
    assert _expect("(ref.null func)").matches(ValType.FUNCREF, None)
    assert not _expect("(ref.null extern)").matches(ValType.EXTERNREF, wast.host_ref(1))
    assert _expect("(ref.extern 7)").matches(ValType.EXTERNREF, wast.host_ref(7))
    assert not _expect("(ref.extern 7)").matches(ValType.EXTERNREF, wast.host_ref(8))
    assert _expect("(ref.extern)").matches(ValType.EXTERNREF, wast.host_ref(3))
    assert _expect("(ref.func)").matches(ValType.FUNCREF, object())
    assert not _expect("(ref.func)").matches(ValType.FUNCREF, None)
    either = _expect("(either (i32.const 1) (i32.const -1))")
    assert either.matches(ValType.I32, 1) and either.matches(ValType.I32, 0xFFFFFFFF)
    assert not either.matches(ValType.I32, 2)


@pytest.mark.parametrize("text", ["(i32.const)", "(i32.const 1 2)", "(f32.const 1e40)", "(v128.const i32x4 1)", "(frob 1)"])
def test_bad_result_is_script_error(text):
    with pytest.raises(wast.ScriptError):
        _expect(text)


# ----------------------------------------------------------------------------- commands


def test_command_kinds(tmp_path):
    script = tmp_path / "k.wast"
    script.write_text(
        """(module $a (func))
        (module binary "\\00asm" "\\01\\00\\00\\00")
        (module quote "(func)")
        (register "a" $a)
        (invoke "f")
        (get "g")
        (assert_return (invoke "f"))
        (assert_trap (invoke "f") "unreachable")
        (assert_trap (module (start 0)) "unreachable")
        (assert_exhaustion (invoke "f") "call stack exhausted")
        (assert_invalid (module) "x")
        (assert_malformed (module quote "") "x")
        (assert_unlinkable (module) "x")
        (assert_uninstantiable (module) "x")
        """
    )
    counts = wast.count_commands(str(script))
    assert counts == dict.fromkeys(wast.KINDS, 1) | {"module": 3, "assert_uninstantiable": 2}


def test_inline_module_script():
    counts = wast.count_commands("tests/spec/core/inline-module.wast")
    assert counts == dict.fromkeys(wast.KINDS, 0) | {"module": 1}


def test_unknown_command_is_script_error(tmp_path):
    script = tmp_path / "u.wast"
    script.write_text("(module)\n(assert_wobbly)\n")
    with pytest.raises(DecodeError, match=r"u.wast:2: unknown command"):
        wast.count_commands(str(script))
    r = wast.run_file(str(script))
    assert r.error and r.total("failed") == 1


def test_text_module_escapes_non_ascii():
    (node,) = read('(module (func (export "a\u202eb")) ;; \u00e9\n)')
    form = wast.parse_module_form(node, '(module (func (export "a\u202eb")) ;; \u00e9\n)')
    assert form.encoding == "text" and form.source.isascii()
    assert "\\u{202e}" in form.source


# ----------------------------------------------------------------------------- runner end to end


class _WasmtimeOnly(wast.WasmtimeBackend):
    """wasmtime decides validity too, so these tests do not depend on deadeye's decoder."""

    def __init__(self, features=None):
        super().__init__(features)
        self.use_deadeye_decoder = False


SCRIPT = r"""
(module $M
  (global (export "g") i32 (i32.const 42))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "nan") (result f32) (f32.div (f32.const 0) (f32.const 0)))
  (func (export "id64") (param f64) (result f64) (local.get 0))
  (func (export "ext") (param externref) (result externref) (local.get 0))
  (func $loop (export "loop") (call $loop))
)
(register "M" $M)
(module (import "M" "add" (func $add (param i32 i32) (result i32)))
  (import "spectest" "print_i32" (func (param i32)))
  (import "spectest" "global_i32" (global i32))
  (import "spectest" "table" (table 10 funcref))
  (import "spectest" "memory" (memory 1))
  (func (export "twice") (param i32) (result i32) (call $add (local.get 0) (local.get 0))))
(assert_return (invoke "twice" (i32.const -3)) (i32.const -6))
(assert_return (invoke $M "add" (i32.const 0xffff_ffff) (i32.const 2)) (i32.const 1))
(assert_return (get $M "g") (i32.const 42))
(assert_return (invoke $M "nan") (f32.const nan:canonical))
(assert_return (invoke $M "id64" (f64.const 0x1.8p3)) (f64.const 12))
(assert_return (invoke $M "ext" (ref.extern 5)) (ref.extern 5))
(assert_return (invoke $M "ext" (ref.null extern)) (ref.null extern))
(assert_trap (invoke $M "div" (i32.const 1) (i32.const 0)) "integer divide by zero")
(assert_exhaustion (invoke $M "loop") "call stack exhausted")
(invoke $M "add" (i32.const 1) (i32.const 1))
(assert_invalid (module (func (result i32) (i64.const 0))) "type mismatch")
(assert_malformed (module quote "(func (i32.const 0x))") "unknown operator")
(assert_unlinkable (module (import "M" "nope" (func))) "unknown import")
(assert_trap (module (func $t unreachable) (start $t)) "unreachable")
"""

WRONG = r"""
(module (func (export "one") (result i32) (i32.const 1)))
(assert_return (invoke "one") (i32.const 2))
(assert_trap (invoke "one") "unreachable")
(assert_return (invoke "missing"))
(assert_invalid (module (func)) "type mismatch")
"""


def test_runner_passes_correct_script(tmp_path):
    path = tmp_path / "ok.wast"
    path.write_text(SCRIPT)
    r = wast.run_file(str(path), _WasmtimeOnly)
    assert r.failures == [] and r.skips == []
    want = dict.fromkeys(wast.KINDS, 0) | {
        "module": 2, "register": 1, "invoke": 1, "assert_return": 7, "assert_trap": 1, "assert_exhaustion": 1,
        "assert_invalid": 1, "assert_malformed": 1, "assert_unlinkable": 1, "assert_uninstantiable": 1,
    }
    assert {k: c["passed"] for k, c in r.counts.items()} == want


def test_runner_reports_wrong_expectations(tmp_path):
    path = tmp_path / "bad.wast"
    path.write_text(WRONG)
    r = wast.run_file(str(path), _WasmtimeOnly)
    assert [(f["line"], f["kind"]) for f in r.failures] == [
        (3, "assert_return"), (4, "assert_trap"), (5, "assert_return"), (6, "assert_invalid"),
    ]
    assert "expected (i32.const 2), got (i32.const 0x1 (1))" in r.failures[0]["reason"]
    assert "returned" in r.failures[1]["reason"]
    assert r.total("passed") == 1


def test_runner_without_executor_skips_execution(tmp_path, monkeypatch):
    # stand in for deadeye's decoder so this test does not depend on its progress
    import deadeye.frontend.module as fm

    def fake_parse(data, validate="eager", features=None):
        import wasmtime

        try:
            wasmtime.Module(wasmtime.Engine(), data)
        except wasmtime.WasmtimeError as e:
            raise ValidationError(str(e)) from None
        return data

    monkeypatch.setattr(fm, "parse_module", fake_parse)
    path = tmp_path / "ok.wast"
    path.write_text(SCRIPT)
    r = wast.run_file(str(path))
    assert r.failures == []
    assert {s["reason"] for s in r.skips} == {wast.NO_EXECUTOR}
    assert r.counts["assert_invalid"]["passed"] == 1 and r.counts["assert_malformed"]["passed"] == 1
    assert r.counts["assert_return"]["skipped"] == 7 and r.counts["module"]["skipped"] == 2


def test_runner_without_decoder_fails_modules(tmp_path, monkeypatch):
    import deadeye.frontend.module as fm

    def missing(data, validate="eager", features=None):
        raise ImportError("decoder not written")

    monkeypatch.setattr(fm, "parse_module", missing)
    path = tmp_path / "ok.wast"
    path.write_text(SCRIPT)
    r = wast.run_file(str(path))
    reasons = {(f["kind"], f["reason"]) for f in r.failures}
    assert ("module", wast.NO_DECODER) in reasons and ("assert_invalid", wast.NO_DECODER) in reasons
    # the quote module is rejected by wat2wasm already: that is a pass
    assert r.counts["assert_malformed"]["passed"] == 1


def test_cli_output_json_and_status(tmp_path):
    good = tmp_path / "d" / "a.wast"
    bad = tmp_path / "d" / "sub" / "b.wast"
    bad.parent.mkdir(parents=True)
    good.write_text(SCRIPT)
    bad.write_text(WRONG)
    out_json = tmp_path / "r.json"
    wast.ENGINES["wasmtime-only"] = _WasmtimeOnly
    try:
        args = SimpleNamespace(paths=[str(tmp_path / "d")], json=str(out_json), engine="wasmtime-only", verbose=True)
        buf = io.StringIO()
        with redirect_stdout(buf):
            status = wast.main(args)
    finally:
        del wast.ENGINES["wasmtime-only"]
    lines = buf.getvalue().splitlines()
    assert status == 1
    assert lines[0] == f"{good}: 17 passed, 0 failed"
    assert lines[1] == f"{bad}: 1 passed, 4 failed"
    assert lines[2].startswith(f"  {bad}:3: assert_return: ")
    assert lines[-1] == "18 passed, 4 failed"
    data = json.loads(out_json.read_text())
    assert data["totals"]["assert_return"] == {"passed": 7, "failed": 2, "skipped": 0}
    first = data["files"][str(bad)]["failures"][0]
    assert (first["line"], first["kind"]) == (3, "assert_return") and "expected (i32.const 2)" in first["reason"]
    assert data["files"][str(good)]["assert_return"] == {"passed": 7, "failed": 0, "skipped": 0}


def test_cli_entry_point(tmp_path):
    script = tmp_path / "s.wast"
    script.write_text('(assert_malformed (module quote "(func") "unexpected end")\n')
    p = subprocess.run([sys.executable, "-m", "deadeye", "wast", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "1 passed, 0 failed"
    p = subprocess.run([sys.executable, "-m", "deadeye", "wast", "--engine", "nope", str(script)], capture_output=True, text=True)
    assert p.returncode == 1 and "unknown engine" in p.stderr and "Traceback" not in p.stderr
    script.write_text("(module\n")
    p = subprocess.run([sys.executable, "-m", "deadeye", "wast", str(script)], capture_output=True, text=True)
    assert p.returncode == 1 and f"{script}:1: unclosed" in p.stdout and "Traceback" not in p.stderr


def test_module_definition_instance_and_get(tmp_path):
    path = tmp_path / "def.wast"
    path.write_text(
        r"""
(module definition $D (global (export "g") (mut i32) (i32.const 7))
  (func (export "bump") (global.set 0 (i32.add (global.get 0) (i32.const 1)))))
(module instance $I1 $D)
(module instance $I2 $D)
(invoke $I1 "bump")
(get $I1 "g")
(assert_return (get $I1 "g") (i32.const 8))
(assert_return (get $I2 "g") (i32.const 7))
(assert_return (invoke $nope "bump"))
(register "\ff" $I1)
"""
    )
    r = wast.run_file(str(path), _WasmtimeOnly)
    assert [(f["line"], f["reason"]) for f in r.failures] == [
        (10, "unknown module $nope"),
        (11, "string b'\\xff' is not valid UTF-8"),
    ]
    assert r.counts["module"]["passed"] == 3 and r.counts["get"]["passed"] == 1
    assert r.counts["assert_return"]["passed"] == 2


_PIECES = ["(", ")", '"', "\\", "(;", ";)", ";;", "\n", " ", "$m", "0x1", "nan:0x", "module", "binary",
           "quote", "invoke", "get", "register", "assert_return", "assert_trap", "i32.const", "v128.const",
           "f32x4", "ref.extern", '"f"', "\\u{", "\\ff", "either", "instance", "definition", "\u202e"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_reader_raises_only_decode_error(pieces):
    try:
        read("".join(pieces), "fuzz.wast")
    except DecodeError as e:
        assert str(e).startswith("fuzz.wast:")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SCRIPT)), st.sampled_from(_PIECES + [""]), st.integers(0, 30)), max_size=4))
def test_mangled_scripts_never_escape(edits):
    import tempfile

    text = SCRIPT
    for pos, insert, cut in edits:
        text = text[:pos] + insert + text[pos + cut :]
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/m.wast"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        for factory in (None, _WasmtimeOnly):
            r = wast.run_file(path, factory)  # must not raise
            assert all(f["reason"] and isinstance(f["line"], int) for f in r.failures + r.skips)
