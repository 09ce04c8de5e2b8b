"""Helpers for the IR tests: a hypothesis-driven generator of random *valid* IR functions
(built with the builder, so they exercise it too) and the module env they refer to."""

from __future__ import annotations

from hypothesis import strategies as st

from deadeye.ir import opcodes
from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.function import IRModule
from deadeye.ir.types import FuncType, ValType

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF
ALL_TYPES = [I32, I64, F32, F64, V128, FUNCREF, EXTERNREF]
NUM_TYPES = [I32, I64, F32, F64, V128]

# Fixed-signature value ops (not constants, not terminators): the bulk of the table.
FIXED_OPS = sorted(
    (info for info in opcodes.OP_LIST
     if info.rule is None and not info.terminator and not info.name.endswith(".const")),
    key=lambda i: i.name)


def make_env() -> IRModule:
    types = [FuncType((), ()), FuncType((I32, I64), (I32,)), FuncType((F64,), (F32, I64)),
             FuncType((V128, EXTERNREF), ())]
    return IRModule(types=types, func_types=[0, 1, 2, 3, 1, 2],
                    globals=[(I32, True), (I64, False), (F64, True), (FUNCREF, True)],
                    tables=[FUNCREF, EXTERNREF], memories=2, datas=3, elems=[FUNCREF, EXTERNREF])


def _imm_strategy(field: opcodes.Imm, env: IRModule):
    kind = field.kind
    if kind in opcodes.INDEX_KINDS:
        size = env.index_space_size(kind)
        return st.integers(0, size - 1)
    if kind == "offset":
        return st.integers(0, 2**64 - 1)
    if kind == "lane":
        return st.integers(0, field.limit - 1)
    if kind in opcodes.BITS:
        return st.integers(0, 2 ** opcodes.BITS[kind] - 1)
    if kind == "reftype":
        return st.sampled_from([FUNCREF, EXTERNREF])
    if kind == "str":
        return st.text(max_size=12)
    assert kind == "shuffle"
    return st.tuples(*[st.integers(0, 31)] * 16)


class _Gen:
    def __init__(self, draw, env, fb: FunctionBuilder):
        self.draw, self.env, self.fb = draw, env, fb

    def value(self, pool, ty):
        """A value of `ty` from `pool`, or a fresh constant/null."""
        have = [v for v in pool if v.type == ty]
        if have and self.draw(st.booleans()):
            return self.draw(st.sampled_from(have))
        if ty.is_ref:
            v = self.fb.ins("ref.null", type=ty)
        else:
            width = opcodes.BITS[str(ty)]
            v = self.fb.const(ty, self.draw(st.integers(0, 2**width - 1)))
        pool.append(v)
        return v

    def imms(self, info):
        return tuple(self.draw(_imm_strategy(f, self.env)) for f in info.imm)

    def instruction(self, pool):
        draw, fb, env = self.draw, self.fb, self.env
        kind = draw(st.sampled_from(["fixed"] * 6 + ["select", "call", "call_indirect",
                                                     "global", "table", "ref", "const"]))
        at = draw(st.none() | st.integers(0, 2**20))
        if kind == "fixed":
            info = draw(st.sampled_from(FIXED_OPS))
            args = [self.value(pool, t) for t in info.params]
            results = fb.insert(info.name, args, self.imms(info), at=at).results
        elif kind == "const":
            ty = draw(st.sampled_from(NUM_TYPES))
            results = (fb.const(ty, draw(st.integers(0, 2 ** opcodes.BITS[str(ty)] - 1)), at=at),)
        elif kind == "select":
            ty = draw(st.sampled_from(ALL_TYPES))
            a, b, c = self.value(pool, ty), self.value(pool, ty), self.value(pool, I32)
            results = (fb.ins("select", a, b, c, at=at),)
        elif kind == "call":
            f = draw(st.integers(0, len(env.func_types) - 1))
            args = [self.value(pool, t) for t in env.func_type(f).params]
            results = fb.insert("call", args, (f,), at=at).results
        elif kind == "call_indirect":
            t = draw(st.integers(0, len(env.types) - 1))
            args = [self.value(pool, p) for p in env.types[t].params] + [self.value(pool, I32)]
            results = fb.insert("call_indirect", args, (t, 0), at=at).results
        elif kind == "global":
            g = draw(st.integers(0, len(env.globals) - 1))
            ty, mutable = env.globals[g]
            if mutable and draw(st.booleans()):
                results = fb.insert("global.set", [self.value(pool, ty)], (g,), at=at).results
            else:
                results = fb.insert("global.get", [], (g,), at=at).results
        elif kind == "table":
            t = draw(st.integers(0, len(env.tables) - 1))
            name = draw(st.sampled_from(["table.get", "table.set", "table.grow", "table.fill",
                                         "table.size"]))
            info = opcodes.OPS[name]
            params, _ = opcodes.signature(info, (t,), (), env)
            args = [self.value(pool, p) for p in params]
            results = fb.insert(name, args, (t,), at=at).results
        else:
            name = draw(st.sampled_from(["ref.null", "ref.is_null", "ref.func"]))
            if name == "ref.is_null":
                ty = draw(st.sampled_from([FUNCREF, EXTERNREF]))
                results = (fb.ins("ref.is_null", self.value(pool, ty), at=at),)
            else:
                info = opcodes.OPS[name]
                results = fb.insert(name, [], self.imms(info), at=at).results
        pool.extend(results)


@st.composite
def random_functions(draw, env=None, max_blocks=5, max_instrs=6):
    """A random valid function over `env` (default `make_env()`): random blocks with
    parameters, instructions from the whole opcode table, and every kind of terminator
    (loops included, since any block may branch to any non-entry block)."""
    env = env or make_env()
    params = draw(st.lists(st.sampled_from(ALL_TYPES), max_size=4))
    results = draw(st.lists(st.sampled_from(ALL_TYPES), max_size=3))
    name = draw(st.sampled_from(["f", "main", "a.b$c-d", "with space", "quote\"d", "ünï"]))
    index = draw(st.none() | st.integers(0, 100))
    fb = FunctionBuilder(name, FuncType(tuple(params), tuple(results)), env, index)
    gen = _Gen(draw, env, fb)
    n = draw(st.integers(1, max_blocks))
    blocks = [fb.entry] + [fb.create_block() for _ in range(n - 1)]
    for b in blocks:
        b.fuel = draw(st.integers(0, 50))
        b.offset = draw(st.none() | st.integers(0, 2**32 - 1))
    for b in blocks[1:]:
        for t in draw(st.lists(st.sampled_from(ALL_TYPES), max_size=3)):
            fb.append_param(b, t)
    entry_pool: list = []
    for b in blocks:
        fb.switch_to(b)
        pool = entry_pool if b is fb.entry else list(entry_pool)
        pool.extend(b.params)
        for _ in range(draw(st.integers(0, max_instrs))):
            gen.instruction(pool)
        targets = blocks[1:]
        kinds = ["return", "unreachable", "trap", "return_call"]
        if targets:
            kinds += ["jump", "br_if", "br_table"] * 2
        kind = draw(st.sampled_from(kinds))
        at = draw(st.none() | st.integers(0, 2**20))

        def edge():
            t = draw(st.sampled_from(targets))
            return t, [gen.value(pool, p.type) for p in t.params]

        if kind == "return":
            fb.ret(*[gen.value(pool, t) for t in results], at=at)
        elif kind == "unreachable":
            fb.unreachable(at=at)
        elif kind == "trap":
            fb.trap(draw(st.text(max_size=10)), at=at)
        elif kind == "return_call":
            same = [f for f in range(len(env.func_types))
                    if env.func_type(f).results == tuple(results)]
            if not same:
                fb.unreachable(at=at)
            elif draw(st.booleans()):
                f = draw(st.sampled_from(same))
                fb.return_call(f, [gen.value(pool, p) for p in env.func_type(f).params], at=at)
            else:
                t = env.func_types[draw(st.sampled_from(same))]
                args = [gen.value(pool, p) for p in env.types[t].params]
                fb.return_call_indirect(t, 0, args, gen.value(pool, I32), at=at)
        elif kind == "jump":
            fb.jump(*edge(), at=at)
        elif kind == "br_if":
            cond = gen.value(pool, I32)
            (t1, a1), (t2, a2) = edge(), edge()
            fb.br_if(cond, t1, a1, t2, a2, at=at)
        else:
            index = gen.value(pool, I32)
            table = [edge() for _ in range(draw(st.integers(0, 3)))]
            fb.br_table(index, table, edge(), at=at)
    return fb.finish()
