"""Helpers for the optimizer tests: a random generator of valid IR functions (arithmetic
of the four scalar types including trapping ops, selects, diamonds and br_tables with
block parameters, counted loops, loads/stores on a small memory, a global, fuel on every
block) and a small reference evaluator for exactly that IR subset, built on
`ir.numerics` (used until the project's IR evaluator is available)."""

from __future__ import annotations

from deadeye.ir import numerics
from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.errors import Trap
from deadeye.ir.function import Function, IRModule
from deadeye.ir.types import FuncType, ValType

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
SCALARS = (I32, I64, F32, F64)
MEM_SIZE = 256
STEP_LIMIT = 100_000
OOB = "out of bounds memory access"

ENV = IRModule(memories=1, globals=[(I32, True)])
SIG = FuncType((I32, I64, F32, F64), (I32, I64, F32, F64))

# Value ops of the scalar types without immediates, grouped by result type.
SCALAR_OPS: dict[ValType, list[str]] = {t: [] for t in SCALARS}
for _name, _info in sorted(numerics.INFO.items()):
    if _info.imm is None and _info.params and set(_info.params + _info.results) <= set(SCALARS) \
            and len(_info.results) == 1:
        SCALAR_OPS[_info.results[0]].append(_name)

LOADS = {"i32.load": (I32, 4), "i64.load": (I64, 8), "f32.load": (F32, 4), "f64.load": (F64, 8),
         "i32.load8_u": (I32, 1), "i64.load32_s": (I64, 4)}
STORES = {"i32.store": (I32, 4), "i64.store": (I64, 8), "f32.store": (F32, 4),
          "f64.store": (F64, 8), "i32.store8": (I32, 1), "i64.store16": (I64, 2)}
INTERESTING = {
    I32: [0, 1, 2, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 31, 32],
    I64: [0, 1, 2, 2**64 - 1, 2**63, 2**63 - 1, 63, 64],
    F32: [0, 0x80000000, 0x3F800000, 0x7F800000, 0x7FC00000, 0x7FA00001, 0x4F000000, 0xCF000000],
    F64: [0, 2**63, 0x3FF0000000000000, 0x7FF0000000000000, 0x7FF8000000000000,
          0x7FF4000000000001, 0x41E0000000000000, 0xC3E0000000000000],
}
WIDTH = {I32: 32, I64: 64, F32: 32, F64: 64}


class Generator:
    """Draws a random function from a hypothesis `data` object."""

    def __init__(self, data, st, max_depth=2, max_ops=5):
        self.data, self.st = data, st
        self.fb = FunctionBuilder("f", SIG, env=ENV)
        self.max_depth, self.max_ops = max_depth, max_ops
        self.fb.block.fuel = self.draw(st.integers(0, 3))

    def draw(self, strategy):
        return self.data.draw(strategy)

    def choice(self, seq):
        return self.draw(self.st.sampled_from(list(seq)))

    def new_block(self):
        return self.fb.create_block(fuel=self.draw(self.st.integers(0, 3)))

    def const(self, t):
        st = self.st
        bits = self.draw(st.one_of(st.sampled_from(INTERESTING[t]),
                                   st.integers(0, (1 << WIDTH[t]) - 1)))
        return self.fb.const(t, bits)

    def operand(self, pool, t):
        if not pool[t] or self.draw(self.st.integers(0, 5)) == 0:
            v = self.const(t)
            pool[t].append(v)
            return v
        return self.choice(pool[t])

    def address(self, pool):
        a = self.operand(pool, I32)
        if self.draw(self.st.integers(0, 7)):
            mask = self.fb.const(I32, 0xFF)
            a = self.fb.ins("i32.and", a, mask)
        return a

    def straight(self, pool):
        kind = self.choice(["op", "op", "op", "select", "load", "store", "global"])
        fb = self.fb
        if kind == "op":
            t = self.choice(SCALARS)
            name = self.choice(SCALAR_OPS[t])
            params = numerics.INFO[name].params
            args = [self.operand(pool, p) for p in params]
            pool[t].append(fb.ins(name, *args))
        elif kind == "select":
            t = self.choice(SCALARS)
            pool[t].append(fb.ins("select", self.operand(pool, t), self.operand(pool, t),
                                  self.operand(pool, I32)))
        elif kind == "load":
            name = self.choice(LOADS)
            t = LOADS[name][0]
            pool[t].append(fb.ins(name, self.address(pool), mem=0,
                                  offset=self.draw(self.st.integers(0, 8))))
        elif kind == "store":
            name = self.choice(STORES)
            fb.ins(name, self.address(pool), self.operand(pool, STORES[name][0]), mem=0,
                   offset=self.draw(self.st.integers(0, 8)))
        else:
            if self.draw(self.st.booleans()):
                fb.ins("global.set", self.operand(pool, I32), index=0)
            else:
                pool[I32].append(fb.ins("global.get", index=0))

    def sequence(self, pool, depth):
        for _ in range(self.draw(self.st.integers(1, self.max_ops))):
            shape = self.choice(["s", "s", "s", "diamond", "table", "loop"]
                                if depth < self.max_depth else ["s"])
            if shape == "s":
                self.straight(pool)
            elif shape == "diamond":
                self.diamond(pool, depth)
            elif shape == "table":
                self.table(pool, depth)
            else:
                self.loop(pool, depth)

    def _copy(self, pool):
        return {t: list(vs) for t, vs in pool.items()}

    def _arms(self, n):
        """A join block (its parameters already made) and n arm blocks."""
        join_types = [self.choice(SCALARS) for _ in range(self.draw(self.st.integers(0, 2)))]
        join = self.new_block()
        params = [self.fb.append_param(join, t) for t in join_types]
        return join, params, [self.new_block() for _ in range(n)]

    def _finish_arm(self, arm, pool, depth, join, params):
        fb = self.fb
        fb.switch_to(arm)
        inner = self._copy(pool)
        if self.draw(self.st.booleans()):
            self.sequence(inner, depth + 1)
        if self.draw(self.st.integers(0, 9)) == 0:
            fb.trap("arm trap")  # the join may end up with no predecessor: dead code
        else:
            fb.jump(join, [self.operand(inner, p.type) for p in params])

    def _enter_join(self, pool, join, params):
        self.fb.switch_to(join)
        for p in params:
            pool[p.type].append(p)

    def diamond(self, pool, depth):
        join, params, arms = self._arms(2)
        cond = self.operand(pool, I32)
        self.fb.br_if(cond, arms[0], [], arms[1], [])
        for arm in arms:
            self._finish_arm(arm, pool, depth, join, params)
        self._enter_join(pool, join, params)

    def table(self, pool, depth):
        join, params, arms = self._arms(self.draw(self.st.integers(1, 3)))
        index = self.operand(pool, I32)
        picks = [self.choice(arms) for _ in range(self.draw(self.st.integers(0, 3)))]
        self.fb.br_table(index, [(a, []) for a in picks], (arms[0], []))
        for arm in arms:
            self._finish_arm(arm, pool, depth, join, params)
        self._enter_join(pool, join, params)

    def loop(self, pool, depth):
        fb = self.fb
        carried = [self.choice(SCALARS) for _ in range(self.draw(self.st.integers(0, 2)))]
        header = self.new_block()
        ctr = fb.append_param(header, I32)
        loop_params = [fb.append_param(header, t) for t in carried]
        exit_ = self.new_block()
        exit_params = [fb.append_param(exit_, t) for t in carried]
        count = fb.const(I32, self.draw(self.st.integers(1, 3)))
        fb.jump(header, [count] + [self.operand(pool, t) for t in carried])
        fb.switch_to(header)
        inner = self._copy(pool)
        for p in loop_params:
            inner[p.type].append(p)
        self.sequence(inner, depth + 1)
        one = fb.const(I32, 1)
        nxt = fb.ins("i32.sub", ctr, one)
        fb.br_if(nxt, header, [nxt] + [self.operand(inner, t) for t in carried],
                 exit_, [self.operand(inner, t) for t in carried])
        fb.switch_to(exit_)
        # The latch dominates the exit: everything visible there stays visible.
        for t in SCALARS:
            pool[t][:] = inner[t]
        for p in exit_params:
            pool[p.type].append(p)

    def build(self) -> Function:
        pool = {t: [] for t in SCALARS}
        for p in self.fb.params:
            pool[p.type].append(p)
        self.sequence(pool, 0)
        self.fb.ret(*[self.operand(pool, t) for t in SIG.results])
        return self.fb.finish()


# -- the reference evaluator ---------------------------------------------------------------

def evaluate(func: Function, args, memory: bytes = bytes(MEM_SIZE), global0: int = 0):
    """Run `func`; returns (outcome, memory bytes, global 0, fuel) where outcome is
    ("return", values) or ("trap", message)."""
    mem = bytearray(memory)
    g = [global0]
    fuel = 0
    env: dict = {}
    block = func.entry
    incoming = list(args)
    steps = 0

    def bounds(addr, offset, width):
        ea = addr + offset
        if ea + width > len(mem):
            raise Trap(OOB)
        return ea

    try:
        while True:
            steps += 1
            if steps > STEP_LIMIT:
                raise AssertionError("step limit exceeded")
            fuel += block.fuel
            for p, v in zip(block.params, incoming):
                env[p] = v
            for ins in block.instrs:
                name = ins.op.name
                a = [env[x] for x in ins.args]
                if name.endswith(".const"):
                    out = ins.imm[0]
                elif name in numerics.OPS:
                    out = numerics.OPS[name](*a)
                elif name == "select":
                    out = a[0] if a[2] else a[1]
                elif name in LOADS:
                    t, width = LOADS[name]
                    ea = bounds(a[0], ins.imm[1], width)
                    raw = int.from_bytes(mem[ea:ea + width], "little")
                    out = raw if width * 8 == WIDTH[t] else numerics.MEMORY_OPS[name](raw)
                elif name in STORES:
                    t, width = STORES[name]
                    ea = bounds(a[0], ins.imm[1], width)
                    raw = a[1] if width * 8 == WIDTH[t] else numerics.MEMORY_OPS[name](a[1])
                    mem[ea:ea + width] = raw.to_bytes(width, "little")
                    continue
                elif name == "global.get":
                    out = g[0]
                elif name == "global.set":
                    g[0] = a[0]
                    continue
                elif name == "return":
                    return ("return", tuple(a)), bytes(mem), g[0], fuel
                elif name in ("jump", "br_if", "br_table"):
                    if name == "jump":
                        call = ins.targets[0]
                    elif name == "br_if":
                        call = ins.targets[0] if a[0] else ins.targets[1]
                    else:
                        call = ins.targets[min(a[0], len(ins.targets) - 1)]
                    block = call.block
                    incoming = [env[x] for x in call.args]
                    break
                elif name in ("trap", "unreachable"):
                    raise Trap(ins.imm[0] if name == "trap" else "unreachable")
                else:
                    raise AssertionError(f"the reference evaluator does not know {name}")
                env[ins.results[0]] = out
    except Trap as e:
        return ("trap", e.message), bytes(mem), g[0], fuel


def install_verifying_optimizer(monkeypatch, stats):
    """Make the compile pipeline's optimizer (it calls `deadeye.opt.optimize`) run the
    verifier between passes and record its statistics in `stats`."""
    import deadeye.opt as opt
    from deadeye.opt.manager import optimize as real  # never an earlier wrapper

    def optimize(func, level=2, env=None, **options):
        options.update(verify=True, stats=stats)
        return real(func, level, env=env, **options)

    monkeypatch.setattr(opt, "optimize", optimize)
