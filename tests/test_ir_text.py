"""The IR text form: printing, parsing, round trips, module containers, parse errors."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.errors import DecodeError
from deadeye.ir.function import IRModule
from deadeye.ir.text import parse_function, parse_module, print_function, print_module
from deadeye.ir.types import FuncType, ValType
from deadeye.ir.verify import verify, verify_module

from ir_testlib import make_env, random_functions

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64

FIB = """
; a comment line
function %fib(v0: i32) -> i32 index=3 {
block0(v0: i32):
    v1 = i32.const 2
    v2 = i32.lt_s v0, v1        ; trailing comment
    br_if v2, block1, block2(v0)

block1 fuel=2:
    return v0
block2(v3: i32) fuel=7 @0x2a:
    v4 = i32.const -1
    v5 = i32.add v3, v4
    v6: i32 = call 3 v5 @0x31
    v7 = i32.add v6, v6
    return v7
}
"""


def roundtrip(func):
    text = print_function(func)
    again = parse_function(text)
    assert again.as_tuple() == func.as_tuple()
    assert print_function(again) == text
    return text


def test_parse_example_and_print_back():
    f = parse_function(FIB)
    assert f.name == "fib" and f.index == 3
    assert f.sig == FuncType((I32,), (I32,))
    assert [b.id for b in f.blocks] == [0, 1, 2]
    b2 = f.blocks[2]
    assert (b2.fuel, b2.offset) == (7, 0x2A)
    call = b2.instrs[2]
    assert call.op.name == "call" and call.imm == (3,) and call.offset == 0x31
    assert b2.instrs[0].imm == (0xFFFFFFFF,)  # -1 is stored as its bit pattern
    text = roundtrip(f)
    assert "v4 = i32.const -1" in text and "v6: i32 = call 3 v5 @0x31" in text
    verify(f)


def test_float_constants_print_exact_bits_and_accept_decimals():
    f = parse_function("""
function %c() -> f32, f64, f64, f32 {
block0:
    v0 = f32.const 1.5
    v1 = f64.const -inf
    v2 = f64.const nan:0x1234
    v3 = f32.const 0x7fc00001
    return v0, v1, v2, v3
}""")
    imms = [i.imm[0] for i in f.blocks[0].instrs[:4]]
    assert imms[0] == struct.unpack("<I", struct.pack("<f", 1.5))[0]
    assert imms[1] == 0xFFF0000000000000
    assert imms[2] == 0x7FF0000000001234
    assert imms[3] == 0x7FC00001
    text = roundtrip(f)
    assert "f32.const 0x3fc00000  ; 1.5" in text
    assert "; nan:0x1234" in text and "; -inf" in text


def test_v128_shuffle_strings_and_memory_immediates():
    f = parse_function("""
function %v(v0: i32) {
block0(v0: i32):
    v1 = v128.const 0xff
    v2 = i8x16.shuffle [31, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] v1, v1
    v3 = v128.load32_lane offset=4 mem=1 lane=3 v0, v2
    v128.store mem=0 offset=0 v0, v3
    trap "out of \\"bounds\\"\\n"
}""")
    ins = f.blocks[0].instrs
    assert ins[0].imm == (0xFF,)
    assert ins[1].imm[0][0] == 31
    assert ins[2].imm == (1, 4, 3)  # named immediates in any order
    assert ins[4].imm == ('out of "bounds"\n',)
    text = roundtrip(f)
    assert "v128.const 0x000000000000000000000000000000ff" in text
    verify(f)


def test_use_before_textual_definition_and_select_inference():
    # block2 is printed before block1 but block1 dominates... values flow from any block.
    f = parse_function("""
function %s(v0: i32) -> i64 {
block0(v0: i32):
    jump block2
block2:
    v5 = select v4, v4, v0
    return v5
block1:
    v4 = i64.const 1
    jump block2
}""")
    assert f.blocks[1].instrs[0].results[0].type == I64
    roundtrip(f)


@pytest.mark.parametrize("text, where, message", [
    ("function %f() {\nblock0:\n    v0 = i32.bogus\n    return\n}", "3:10", "unknown op"),
    ("function %f() {\nblock0:\n    return v9\n}", "3:12", "v9 is not defined"),
    ("function %f() {\nblock0:\n    jump block7\n}", "3:10", "block7 is not defined"),
    ("function %f() {\nblock0:\n    v0 = i32.const 1\n    v0 = i32.const 2\n    return\n}",
     "4:5", "v0 defined twice"),
    ("function %f() {\nblock0:\n    v0 = i32.const 1 2\n    return\n}", "3:22",
     "takes 1 immediate"),
    ("function %f() {\nblock0:\n    v0 = i32.load v1\n    return\n}", "3:10",
     "needs immediate"),
    ("function %f() {\nblock0:\n    v0 = i32.const 99999999999\n    return\n}", "3:20",
     "does not fit"),
    ("function %f() {\nblock0:\n    v0 = call 0\n    return\n}", "3:10",
     "need explicit types"),
    ("function %f() {\nblock0:\n    v0 = i32.add v1,\n}", "3:21",
     "unexpected end of line (expected one of: [, a block label, a value)"),
    ("function %f(v0: i32) {\nblock0(v1: i32):\n    return\n}", "2:1", "repeat"),
    ("function %f() {\nblock0:\n    br_if block1\nblock1:\n    return\n}", "3:11",
     "takes 2 branch target"),
    ("function %f() {\nblock0:\n    v0 = i32x4.extract_lane 4 v1\n    return\n}", "3:29",
     "lane 4 out of range"),
])
def test_parse_errors_cite_line_and_column(text, where, message):
    with pytest.raises(DecodeError) as info:
        parse_function(text)
    assert f"line {where}" in str(info.value)
    assert message in str(info.value)


def test_module_print_and_parse():
    env = make_env()
    fb = FunctionBuilder("g", FuncType((I32, I64), (I32,)), env, index=1)
    a = fb.ins("global.get", imm=(0,))
    r = fb.ins("call", a, fb.params[1], func=4)
    fb.ins("global.set", r, imm=(0,))
    fb.ret(r)
    env.functions.append(fb.finish())
    text = print_module(env)
    assert "global 1 = i64" in text and "global 0 = mut i32" in text
    again = parse_module(text)
    for field in ("types", "func_types", "globals", "tables", "memories", "datas", "elems"):
        assert getattr(again, field) == getattr(env, field), field
    assert [f.as_tuple() for f in again.functions] == [f.as_tuple() for f in env.functions]
    assert print_module(again) == text
    verify_module(again)
    # With the module as env, result types of calls and globals may be left out.
    short = text.replace("v1: i32 = global.get", "v1 = global.get")
    assert parse_module(short).functions[0].as_tuple() == env.functions[0].as_tuple()


def test_module_rejects_out_of_order_declarations():
    with pytest.raises(DecodeError, match="line 2:6"):
        parse_module("type 0 = () -> ()\ntype 2 = (i32) -> ()\n")
    with pytest.raises(DecodeError, match="line 2:15: type 1 is not declared"):
        parse_module("type 0 = () -> ()\nfunc 0 = type 1\n")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_functions())
def test_random_functions_round_trip(func):
    env = make_env()
    verify(func, env)
    text = roundtrip(func)
    again = parse_function(text, env)
    verify(again, env)
    module = IRModule(**{k: getattr(env, k) for k in
                         ("types", "func_types", "globals", "tables", "memories", "datas",
                          "elems")}, functions=[func])
    parsed = parse_module(print_module(module))
    assert parsed.functions[0].as_tuple() == func.as_tuple()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mangled_text_raises_only_decode_errors(data):
    text = data.draw(st.sampled_from(["", FIB])) + """
function %more(v0: i64, v1: f32) -> f32 {
block0(v0: i64, v1: f32):
    v2 = f32.const nan:0x1
    v3 = i8x16.shuffle [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] v4, v4
    v4 = v128.const 0x5
    v5 = i32.const 0
    br_table v5, [block1(v2)], block1(v1)
block1(v6: f32) fuel=1 @0x10:
    trap "x"
}
"""
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = data.draw(st.sampled_from(list("v0,1()[]:=@%\"\n ;-.x") + ["block", "i32",
                                                                          "fuel=", "0x"]))
        if action == "delete":
            text = text[:i] + text[i + 3:]
        elif action == "insert":
            text = text[:i] + piece + text[i:]
        else:
            text = text[:i] + piece + text[i + len(piece):]
    for parse in (parse_function, parse_module):
        try:
            result = parse(text)
        except DecodeError:
            continue
        funcs = result.functions if hasattr(result, "functions") else [result]
        for f in funcs:  # what parses must print and parse back identically
            assert parse_function(print_function(f)).as_tuple() == f.as_tuple()


def test_documented_examples_parse():
    import deadeye.ir.text as text_module

    doc = text_module.__doc__
    start = doc.index("    function %fib")
    example = doc[start:doc.index("    }\n", start) + 6]
    func = parse_function("\n".join(line[4:] for line in example.splitlines()))
    verify(func)
    assert func.index == 3 and func.blocks[2].offset == 0x2A
    start = doc.index("    type 0 =")
    decls = doc[start:doc.index("elem 0 = funcref", start) + 16]
    module = parse_module("\n".join(line.strip() for line in decls.splitlines()))
    assert module.memories == 1 and module.datas == 2 and module.globals == [(I64, True)]
