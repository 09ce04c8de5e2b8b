"""The builder, and SSA construction (Braun et al. with block parameters) on loops."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.cfg import CFG
from deadeye.ir.errors import ValidationError
from deadeye.ir.text import print_function
from deadeye.ir.types import FuncType, ValType
from deadeye.ir.verify import verify

from ir_testlib import make_env

I32, I64, F32 = ValType.I32, ValType.I64, ValType.F32
M32 = 0xFFFFFFFF


# -- a tiny IR evaluator for the handful of ops the lifted test programs use ---------------
_EVAL = {
    "i32.add": lambda a, b: (a + b) & M32,
    "i32.sub": lambda a, b: (a - b) & M32,
    "i32.mul": lambda a, b: (a * b) & M32,
    "i32.eqz": lambda a: int(a == 0),
}


def run(func, *args, limit=100_000):
    env = dict(zip(func.params, args))
    block = func.entry
    for _ in range(limit):
        for ins in block.instrs:
            name = ins.op.name
            if name.endswith(".const"):
                env[ins.results[0]] = ins.imm[0]
            elif name in _EVAL:
                env[ins.results[0]] = _EVAL[name](*(env[a] for a in ins.args))
            elif name == "return":
                return tuple(env[a] for a in ins.args)
            else:
                if name == "jump":
                    call = ins.targets[0]
                else:
                    assert name == "br_if"
                    call = ins.targets[0 if env[ins.args[0]] else 1]
                vals = [env[a] for a in call.args]
                env.update(zip(call.block.params, vals))
                block = call.block
                break
    raise AssertionError("did not terminate")


# -- a small structured language with mutable variables, lifted through use_var/def_var ----
VARS = ["a", "b", "c", "d"]


def eval_program(stmts, env):
    for s in stmts:
        kind = s[0]
        if kind == "set":
            _, var, op, x, y = s
            env[var] = _py_expr(op, x, y, env)
        elif kind == "if":
            _, cond, then, other = s
            eval_program(then if env[cond] else other, env)
        else:
            _, count, body = s
            for _ in range(count):
                eval_program(body, env)


def _py_expr(op, x, y, env):
    if op == "const":
        return x & M32
    return _EVAL[f"i32.{op}"](env[x], env[y])


class Lifter:
    def __init__(self, seal_early: bool):
        self.fb = FunctionBuilder("prog", FuncType((I32,) * len(VARS), (I32,) * len(VARS)))
        self.seal_early = seal_early
        for var, p in zip(VARS, self.fb.params):
            self.fb.declare_var(var, I32)
            self.fb.def_var(var, self.fb.entry, p)
        self.counter = 0

    def seal(self, block):
        if self.seal_early:
            self.fb.seal_block(block)

    def lift(self, stmts):
        fb = self.fb
        for s in stmts:
            kind = s[0]
            if kind == "set":
                _, var, op, x, y = s
                if op == "const":
                    v = fb.const(I32, x)
                else:
                    v = fb.ins(f"i32.{op}", fb.use_var(x, fb.block), fb.use_var(y, fb.block))
                fb.def_var(var, fb.block, v)
            elif kind == "if":
                _, cond, then, other = s
                t, e, join = fb.create_block(), fb.create_block(), fb.create_block()
                fb.br_if(fb.use_var(cond, fb.block), t, (), e, ())
                for block, body in ((t, then), (e, other)):
                    self.seal(block)
                    fb.switch_to(block)
                    self.lift(body)
                    fb.jump(join)
                self.seal(join)
                fb.switch_to(join)
            else:
                _, count, body = s
                # a hidden counter variable drives the loop
                self.counter += 1
                ctr = ("ctr", self.counter)
                fb.declare_var(ctr, I32)
                fb.def_var(ctr, fb.block, fb.const(I32, count))
                head, loop_body, exit_ = fb.create_block(), fb.create_block(), fb.create_block()
                fb.jump(head)
                fb.switch_to(head)
                fb.br_if(fb.ins("i32.eqz", fb.use_var(ctr, head)), exit_, (), loop_body, ())
                self.seal(loop_body)
                fb.switch_to(loop_body)
                fb.def_var(ctr, loop_body,
                           fb.ins("i32.sub", fb.use_var(ctr, loop_body), fb.const(I32, 1)))
                self.lift(body)
                fb.jump(head)
                self.seal(head)
                self.seal(exit_)
                fb.switch_to(exit_)

    def finish(self):
        fb = self.fb
        fb.ret(*[fb.use_var(v, fb.block) for v in VARS])
        return fb.finish()


_var = st.sampled_from(VARS)
_set = st.one_of(
    st.tuples(st.just("set"), _var, st.just("const"), st.integers(0, 9), st.none()),
    st.tuples(st.just("set"), _var, st.sampled_from(["add", "sub", "mul"]), _var, _var))
programs = st.recursive(
    st.lists(_set, max_size=3),
    lambda inner: st.lists(st.one_of(
        _set,
        st.tuples(st.just("if"), _var, inner, inner),
        st.tuples(st.just("loop"), st.integers(0, 3), inner)), max_size=3),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.tuples(*[st.integers(0, M32)] * len(VARS)), st.booleans())
def test_ssa_construction_matches_direct_evaluation(prog, args, seal_early):
    lifter = Lifter(seal_early)
    lifter.lift(prog)
    func = lifter.finish()
    verify(func)
    env = dict(zip(VARS, args))
    eval_program(prog, env)
    assert run(func, *args) == tuple(env[v] for v in VARS)
    # No trivial block parameter survives: each has two distinct incoming values.
    for block in func.blocks[1:]:
        for i, p in enumerate(block.params):
            incoming = {call.args[i] for ins in func.instructions() for call in ins.targets
                        if call.block is block}
            assert len(incoming - {p}) >= 2, print_function(func)


def test_loop_gets_parameters_only_for_modified_variables():
    lifter = Lifter(seal_early=True)
    lifter.lift([("loop", 3, [("set", "a", "add", "a", "b")])])
    func = lifter.finish()
    verify(func)
    head = func.blocks[1]
    # the loop header merges `a` and the counter; `b`, `c`, `d` flow in unchanged
    assert len(head.params) == 2
    assert run(func, 1, 10, 0, 0) == (31, 10, 0, 0)
    cfg = CFG(func)
    assert [lp.header for lp in cfg.loops()] == [head]


def test_nested_loops_with_late_sealing():
    prog = [("loop", 2, [("loop", 3, [("set", "a", "add", "a", "b")]),
                         ("set", "b", "add", "b", "b")])]
    for seal_early in (True, False):
        lifter = Lifter(seal_early)
        lifter.lift(prog)
        func = lifter.finish()
        verify(func)
        env = dict(a=1, b=1, c=0, d=0)
        eval_program(prog, env)
        assert run(func, 1, 1, 0, 0) == (env["a"], env["b"], 0, 0)
        assert max(CFG(func).loop_depth().values()) == 2


def test_long_straight_line_does_not_recurse():
    fb = FunctionBuilder("chain", FuncType((I32,), (I32,)))
    fb.declare_var("x", I32)
    fb.def_var("x", fb.entry, fb.params[0])
    for _ in range(5000):
        nxt = fb.create_block()
        fb.jump(nxt)
        fb.seal_block(nxt)
        fb.switch_to(nxt)
    fb.ret(fb.use_var("x", fb.block))
    func = fb.finish()
    assert func.blocks[-1].instrs[-1].args[0] is func.params[0]


def test_use_in_unreachable_block_is_zero():
    fb = FunctionBuilder("u", FuncType((), (I64,)))
    fb.declare_var("x", I64)
    dead = fb.create_block()
    fb.unreachable()
    fb.seal_block(dead)
    fb.switch_to(dead)
    fb.ret(fb.use_var("x", dead))
    func = fb.finish()
    verify(func)
    first = dead.instrs[0]
    assert first.op.name == "i64.const" and first.imm == (0,)


def test_explicit_params_mix_with_ssa_params():
    fb = FunctionBuilder("m", FuncType((I32,), (I32,)))
    fb.declare_var("x", I32)
    fb.def_var("x", fb.entry, fb.params[0])
    join = fb.create_block()
    x_in_join = fb.use_var("x", join)  # join is unsealed: an SSA parameter appears
    other = fb.create_block()
    c = fb.const(I32, 7)
    fb.br_if(fb.params[0], join, (), other, ())
    fb.seal_block(other)
    fb.switch_to(other)
    fb.def_var("x", other, c)
    fb.jump(join)
    fb.seal_block(join)
    fb.switch_to(join)
    fb.ret(x_in_join)
    func = fb.finish()
    verify(func)
    assert len(join.params) == 1
    assert run(func, 0) == (7,) and run(func, 5) == (5,)


def test_explicit_block_parameters_take_branch_arguments():
    fb = FunctionBuilder("e", FuncType((I32,), (I32,)))
    fb.declare_var("x", I32)
    join = fb.create_block()
    p = fb.append_param(join, I32)
    fb.def_var("x", fb.entry, fb.params[0])
    fb.jump(join, [fb.const(I32, 3)])
    fb.seal_block(join)
    fb.switch_to(join)
    fb.ret(fb.ins("i32.add", p, fb.use_var("x", join)))
    func = fb.finish()
    verify(func)
    assert run(func, 4) == (7,)


def test_builder_rejects_misuse():
    env = make_env()
    fb = FunctionBuilder("bad", FuncType((I32,), (I32,)), env)
    x = fb.params[0]
    with pytest.raises(ValidationError, match=r"i64.add takes \['i64', 'i64'\]"):
        fb.ins("i64.add", x, x)
    with pytest.raises(ValidationError, match="needs immediate mem"):
        fb.ins("i32.load", x, offset=0)
    with pytest.raises(ValidationError, match="unknown IR op"):
        fb.ins("i32.frobnicate", x)
    with pytest.raises(ValidationError, match="terminator"):
        fb.ins("return", x)
    with pytest.raises(ValidationError, match="entry block cannot be a branch target"):
        fb.jump(fb.entry, [x])
    with pytest.raises(ValidationError, match="return of"):
        fb.ret()
    b = fb.create_block()
    fb.append_param(b, I32)
    with pytest.raises(ValidationError, match="too few arguments"):
        fb.jump(b, [])
    fb.jump(b, [x])
    with pytest.raises(ValidationError, match="already terminated"):
        fb.ins("i32.add", x, x)
    with pytest.raises(ValidationError, match="already has predecessors"):
        fb.append_param(b, I32)
    fb.seal_block(b)
    fb.switch_to(b)
    with pytest.raises(ValidationError, match="sealed"):
        fb.jump(b, [x])
    # without an env, calls need their result types
    nofb = FunctionBuilder("n", FuncType((), ()))
    with pytest.raises(ValidationError, match="needs result_types"):
        nofb.ins("call", func=0)
    r = nofb.ins("call", func=0, result_types=(F32,))
    assert r.type == F32


def test_multi_result_calls_and_named_immediates():
    env = make_env()
    fb = FunctionBuilder("c", FuncType((), (F32, I64)), env)
    a, b = fb.ins("call", fb.const(ValType.F64, 0), func=2)
    addr = fb.const(I32, 64)
    fb.ins("i64.store32", addr, b, mem=1, offset=8)
    fb.ret(a, b)
    func = fb.finish()
    verify(func, env)
    store = func.entry.instrs[3]
    assert store.imm == (1, 8) and store.op.effects & store.op.effects.WRITES_MEM


def test_uses_replace_uses_and_renumber():
    from deadeye.ir.text import parse_function

    func = parse_function("""
function %r(v0: i32) -> i32 {
block0(v0: i32):
    v5 = i32.const 1
    v7 = i32.add v0, v5
    v9 = i32.add v7, v7
    jump block4(v9)
block4(v11: i32):
    return v11
}""")
    uses = func.uses()
    v = {x.id: x for x in func.values()}
    assert len(uses[v[7]]) == 2 and uses[v[9]][0].op.name == "jump" and v[11] in uses
    func.replace_uses({v[9]: v[7], v[7]: v[0]})
    assert [a.id for a in func.entry.instrs[2].args] == [0, 0]
    assert func.entry.instrs[3].targets[0].args == [v[0]]
    func.renumber()
    assert [x.id for x in func.values()] == [0, 1, 2, 3, 4] and func.blocks[1].id == 1
    verify(func)
    assert run(func, 5) == (5,)
    with pytest.raises(ValidationError, match="cycle"):
        func.replace_uses({v[0]: v[5], v[5]: v[0]})


def test_documented_builder_example_runs():
    import deadeye.ir.builder as builder_module

    doc = builder_module.__doc__
    start = doc.index("    fb = FunctionBuilder")
    code = doc[start:doc.index("func = fb.finish()", start) + len("func = fb.finish()")]
    scope = {"FunctionBuilder": FunctionBuilder, "FuncType": FuncType, "I32": I32}
    exec("\n".join(line[4:] for line in code.splitlines()), scope)
    verify(scope["func"])
    assert run(scope["func"], 41) == (42,)


# -- SSA construction on arbitrary (also irreducible) control flow -------------------------
CFG_VARS = ["a", "b", "c"]
_assign = st.tuples(st.sampled_from(CFG_VARS), st.sampled_from(["const", "add", "sub", "mul"]),
                    st.integers(0, 5), st.sampled_from(CFG_VARS), st.sampled_from(CFG_VARS))


@st.composite
def cfg_programs(draw):
    """Blocks of assignments ending in jump/br_if/return; any block may branch to any
    non-entry block, so loops may be irreducible. A hidden step budget ends every run."""
    n = draw(st.integers(2, 6))
    blocks = []
    for _ in range(n):
        body = draw(st.lists(_assign, max_size=3))
        kind = draw(st.sampled_from(["jump", "br_if", "br_if", "return"]))
        targets = [draw(st.integers(1, n - 1)) for _ in range({"jump": 1, "br_if": 2}.get(kind, 0))]
        blocks.append((body, kind, draw(st.sampled_from(CFG_VARS)), targets))
    return blocks, draw(st.integers(1, 25))


def _assign_py(env, var, op, k, x, y):
    env[var] = k if op == "const" else _EVAL[f"i32.{op}"](env[x], env[y])


def eval_cfg_program(prog, args):
    blocks, steps = prog
    env = dict(zip(CFG_VARS, args))
    i = 0
    while True:
        if i != 0:
            steps = (steps - 1) & M32
            if steps == 0:
                return tuple(env[v] for v in CFG_VARS)
        body, kind, cond, targets = blocks[i]
        for a in body:
            _assign_py(env, *a)
        if kind == "return":
            return tuple(env[v] for v in CFG_VARS)
        i = targets[0] if kind == "jump" or env[cond] else targets[1]


def lift_cfg_program(prog, seal_bodies):
    blocks, steps = prog
    fb = FunctionBuilder("cfg", FuncType((I32,) * 3, (I32,) * 3))
    for var, p in zip(CFG_VARS, fb.params):
        fb.declare_var(var, I32)
        fb.def_var(var, fb.entry, p)
    fb.declare_var("steps", I32)
    fb.def_var("steps", fb.entry, fb.const(I32, steps))
    checks = [None] + [fb.create_block() for _ in blocks[1:]]
    bodies = [fb.entry] + [fb.create_block() for _ in blocks[1:]]
    exit_ = fb.create_block()
    for i, (body, kind, cond, targets) in enumerate(blocks):
        if i:
            fb.switch_to(checks[i])
            left = fb.ins("i32.sub", fb.use_var("steps", checks[i]), fb.const(I32, 1))
            fb.def_var("steps", checks[i], left)
            fb.br_if(fb.ins("i32.eqz", left), exit_, (), bodies[i], ())
            if seal_bodies:
                fb.seal_block(bodies[i])
        fb.switch_to(bodies[i])
        for var, op, k, x, y in body:
            if op == "const":
                v = fb.const(I32, k)
            else:
                v = fb.ins(f"i32.{op}", fb.use_var(x, fb.block), fb.use_var(y, fb.block))
            fb.def_var(var, fb.block, v)
        if kind == "return":
            fb.ret(*[fb.use_var(v, fb.block) for v in CFG_VARS])
        elif kind == "jump":
            fb.jump(checks[targets[0]])
        else:
            fb.br_if(fb.use_var(cond, fb.block), checks[targets[0]], (), checks[targets[1]], ())
    fb.switch_to(exit_)
    fb.ret(*[fb.use_var(v, exit_) for v in CFG_VARS])
    return fb.finish()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg_programs(), st.tuples(*[st.integers(0, 3)] * 3), st.booleans())
def test_ssa_on_arbitrary_control_flow(prog, args, seal_bodies):
    func = lift_cfg_program(prog, seal_bodies)
    verify(func)
    assert run(func, *args) == eval_cfg_program(prog, args)
    for block in func.blocks[1:]:
        for i, p in enumerate(block.params):
            incoming = {call.args[i] for ins in func.instructions() for call in ins.targets
                        if call.block is block}
            assert len(incoming - {p}) >= 2
