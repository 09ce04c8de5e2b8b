"""The IR verifier catches each kind of problem, and accepts valid functions."""

import pytest

from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import BlockCall, Instruction
from deadeye.ir import opcodes
from deadeye.ir.text import parse_function
from deadeye.ir.types import FuncType, ValType
from deadeye.ir.verify import problems, verify, verify_module

from ir_testlib import make_env

I32, I64 = ValType.I32, ValType.I64


def wrap(body: str, header: str = "function %t(v0: i32) -> i32") -> str:
    return header + " {\nblock0(v0: i32):\n" + body + "\n}\n"


VALID = wrap("""
    v1 = i32.const 1
    br_if v0, block1(v1), block2
block1(v2: i32):
    jump block2
block2:
    return v0""")


def test_valid_function_passes():
    verify(parse_function(VALID))


@pytest.mark.parametrize("body, header, expected", [
    # operand and result types per the opcode table
    ("    v1 = i64.const 1\n    v2 = i32.add v0, v1\n    return v2", None,
     "operands are [i32, i64], i32.add takes [i32, i32]"),
    ("    v1: i64 = global.get 0\n    return v0", None, "results are [i64], global.get gives [i32]"),
    ("    v1 = i32.const 1\n    v2 = select v0, v1, v1\n    v3 = i64.const 0\n"
     "    v4 = select v3, v3, v3\n    return v0", None,
     "operands are [i64, i64, i64], select takes [i64, i64, i32]"),
    # terminators
    ("    v1 = i32.const 1", None, "does not end in a terminator"),
    ("    return v0\n    v1 = i32.const 1\n    return v0", None, "terminator in the middle"),
    ("    jump block1\nblock1:", None, "block1 is empty"),
    ("    jump block1(v0)\nblock1:\n    return v0", None,
     "arguments [i32] do not match block1 parameters []"),
    ("    v1 = i64.const 0\n    jump block1(v1)\nblock1(v2: i32):\n    return v2", None,
     "arguments [i64] do not match block1 parameters [i32]"),
    ("    jump block0(v0)", None, "entry block cannot be a branch target"),
    ("    v1 = i64.const 0\n    return v1", None, "returns [i64], the function returns [i32]"),
    ("    return", None, "returns [], the function returns [i32]"),
    ("    return_call 2 v0", None, "tail call returns [f32, i64]"),
    # dominance
    ("    br_if v0, block1, block2\nblock1:\n    v1 = i32.const 5\n    jump block3\n"
     "block2:\n    jump block3\nblock3:\n    return v1", None,
     "use of v1 is not dominated by its definition in block1"),
    ("    v2 = i32.add v1, v1\n    v1 = i32.const 1\n    return v2", None,
     "use of v1 is not dominated by its definition in block0"),
    ("    jump block1(v0)\nblock1(v1: i32):\n    v2 = i32.add v1, v3\n    v3 = i32.const 1\n"
     "    jump block1(v2)", None, "use of v3 is not dominated"),
    # immediates and module indices
    ("    v1: i32 = global.get 9\n    return v0", None, "global 9 out of range (module has 4)"),
    ("    v1 = i32.const 1\n    global.set 1 v1\n    return v0", None, "global 1 is immutable"),
    ("    v1 = i32.load mem=2 offset=0 v0\n    return v1", None, "mem 2 out of range (module has 2)"),
    ("    v1 = call 1 v0\n    return v1", None,
     "operands are [i32], call takes [i32, i64]"),
    ("    v1 = i32.const 0\n    call_indirect type=0 table=1 v1\n    return v0", None,
     "table 1 does not hold funcref"),
    # the entry's parameters are the function's
    ("    return v0", "function %t(v0: i32) -> i32", None),
])
def test_verifier_catches(body, header, expected):
    func = parse_function(wrap(body, header or "function %t(v0: i32) -> i32"), make_env())
    if expected is None:
        verify(func, make_env())
        return
    with pytest.raises(ValidationError) as info:
        verify(func, make_env())
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert expected in str(info.value)


def test_entry_parameters_must_match_signature():
    func = parse_function(wrap("    return v0"))
    func.sig = FuncType((I64,), (I32,))
    assert any("entry block0 parameters [i32]" in p for p in problems(func))


def _simple():
    fb = FunctionBuilder("s", FuncType((I32,), (I32,)))
    one = fb.const(I32, 1)
    fb.ret(fb.ins("i32.add", fb.params[0], one))
    return fb.finish()


def test_value_from_another_function_is_undefined():
    f, g = _simple(), _simple()
    f.blocks[0].instrs[1].args[1] = g.blocks[0].instrs[0].results[0]
    assert any("not defined in this function" in p for p in problems(f))


def test_value_defined_twice_and_duplicate_ids():
    f = _simple()
    const, add = f.blocks[0].instrs[:2]
    add.results = const.results
    found = problems(f)
    assert any("defined more than once" in p for p in found)
    f = _simple()
    f.blocks[0].instrs[1].results[0].id = 0  # same id as the parameter v0
    assert any("share the id v0" in p for p in problems(f))


def test_target_outside_function_and_wrong_target_count():
    f, g = _simple(), _simple()
    ret = f.blocks[0].instrs[-1]
    jump = Instruction(opcodes.OPS["jump"], targets=[BlockCall(g.blocks[0])])
    jump.block = f.blocks[0]
    f.blocks[0].instrs[-1] = jump
    assert any("not a block of this function" in p for p in problems(f))
    brif = Instruction(opcodes.OPS["br_if"], [ret.args[0]], targets=[])
    brif.block = f.blocks[0]
    f.blocks[0].instrs[-1] = brif
    assert any("br_if needs 2 target(s), has 0" in p for p in problems(f))


def test_bad_immediates_and_unknown_ops():
    f = _simple()
    f.blocks[0].instrs[0].imm = (1 << 32,)
    assert any("bad immediate value" in p for p in problems(f))
    f = _simple()
    f.blocks[0].instrs[0].imm = ()
    assert any("takes 1 immediate(s), got 0" in p for p in problems(f))


def test_module_signature_mismatch():
    env = make_env()
    func = _simple()
    func.index = 0  # type 0 is [] -> []
    env.functions.append(func)
    with pytest.raises(ValidationError, match="differs from function 0's type"):
        verify_module(env)


def test_unreachable_blocks_are_not_checked_for_dominance():
    func = parse_function(wrap("""
    return v0
block1:
    v1 = i32.add v2, v2
    jump block2
block2:
    v2 = i32.const 3
    jump block1"""))
    verify(func)


def test_all_problems_are_listed():
    func = parse_function(wrap("    v1 = i64.add v0, v0\n    v2 = f32.neg v0\n    return v0"))
    with pytest.raises(ValidationError) as info:
        verify(func)
    assert len(info.value.problems) == 2


# -- random valid functions stay valid; each kind of random damage is caught ---------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ir_testlib import random_functions  # noqa: E402


def _operand_sites(func):
    return [(ins, k) for ins in func.instructions() for k in range(len(ins.args))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_functions(), st.data())
def test_random_damage_is_caught(func, data):
    env = make_env()
    verify(func, env)
    kind = data.draw(st.sampled_from(["operand_type", "no_terminator", "edge_arity",
                                      "dominance", "result_type"]))
    values = list(func.values())
    if kind == "operand_type":
        sites = [(i, k) for i, k in _operand_sites(func) if i.op.params is not None]
        if not sites:
            return
        ins, k = data.draw(st.sampled_from(sites))
        wrong = [v for v in values if v.type != ins.args[k].type]
        if not wrong:
            return
        ins.args[k] = data.draw(st.sampled_from(wrong))
        expect = "takes"
    elif kind == "no_terminator":
        block = data.draw(st.sampled_from(func.blocks))
        block.instrs.pop()
        expect = "terminator" if block.instrs else "is empty"
    elif kind == "edge_arity":
        calls = [c for ins in func.instructions() for c in ins.targets]
        if not calls:
            return
        call = data.draw(st.sampled_from(calls))
        call.args.append(data.draw(st.sampled_from(values)))
        expect = "do not match"
    elif kind == "dominance":
        sites = [(i, k) for i, k in _operand_sites(func) if i.block is func.entry]
        if not sites:
            return
        ins, k = data.draw(st.sampled_from(sites))
        later = [v for v in values if v.type == ins.args[k].type
                 and (v.defn if v.is_param else v.defn.block) is not func.entry]
        if not later:
            return
        ins.args[k] = data.draw(st.sampled_from(later))
        expect = "not dominated"
    else:
        results = [r for ins in func.instructions() for r in ins.results]
        if not results:
            return
        r = data.draw(st.sampled_from(results))
        r.type = ValType.F64 if r.type != ValType.F64 else ValType.I32
        expect = ""  # the result itself, or a use of it, is now mistyped
    with pytest.raises(ValidationError) as info:
        verify(func, env)
    assert any(expect in p for p in info.value.problems), info.value.problems
