"""The lowering rules' domain for `deadeye rules test --rules lower` (see
`lower/dsl/ruletest.py`): hypothesis builds IR matching a rule's left-hand side, the
rule's right-hand side emits VCode for the root instruction, the rest of the little
function is lowered by the normal rules, and the bytecode (run on the ISA reference
semantics, `interp/isa/refexec.py`) must agree with the IR's meaning (`ir.numerics`, memory
and globals afterwards, traps) on random inputs.

Built instances cover constants, operators, select, loads/stores (memories 0 and 1),
globals, br_if, br_table, jump with block arguments, return, unreachable, trap, ref.null, and calls (plain, indirect, tail) to imported host functions through a
funcref table with a hole. The table/memory state ops are declined by `build` (their rule
reports no instances here; tests/test_lower_rules.py and tests/test_lower_semantics.py
run them in whole programs)."""

from __future__ import annotations

from hypothesis import strategies as st

from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.refexec import (RefMachine, make_global, make_memory, make_table,
                                        run as ref_run)
from deadeye.interp.isa.semantics import read_values, write_values
from deadeye.interp.isa.table import OPS as ISA_OPS, TRAP_MESSAGES
from deadeye.ir import numerics, opcodes
from deadeye.ir.errors import Trap, WasmError
from deadeye.ir.function import BlockCall, Function, Instruction, IRModule, Value
from deadeye.ir.types import FuncType, ValType

from . import isel
from .emit import Emitter
from .regalloc import allocate

NUM = (ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128)
BITS = {ValType.I32: 32, ValType.I64: 64, ValType.F32: 32, ValType.F64: 64, ValType.V128: 128}
TYS = {v: k for k, v in isel.TY.items()}
# Imported functions the calls of instances go to (the tested function is the last one).
HOST_TYPES = [FuncType((ValType.I32, ValType.I64), (ValType.I64,)),
              FuncType((ValType.V128, ValType.I32), (ValType.V128, ValType.I32)),
              FuncType((), ()),
              FuncType((ValType.F64,), (ValType.F32, ValType.F32))]
NUM_IMPORTS = len(HOST_TYPES)
ENV = IRModule(types=HOST_TYPES + [FuncType((), ())], func_types=list(range(NUM_IMPORTS + 1)),
               globals=[(t, True) for t in NUM], tables=[ValType.FUNCREF], memories=2)


class _Host:
    """An imported function: results mix the arguments (deterministic)."""

    def __init__(self, type: FuncType):
        self.type = type

    def callable(self, store, args):
        acc = 0x9E3779B97F4A7C15
        for a in args:
            acc = (acc * 31 + a) & ((1 << 128) - 1)
        return [(acc >> k) & ((1 << BITS[t]) - 1) for k, t in enumerate(self.type.results)]


HOSTS = [_Host(t) for t in HOST_TYPES]
PAGE = 65536
NAMES = sorted(n for n in numerics.INFO if n in ISA_OPS)
MEM_OPS = sorted(n for n, i in opcodes.OPS.items() if i.resource == "memory" and "." in n
                 and n.split(".")[0] in ("i32", "i64", "f32", "f64", "v128"))
_INTS = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 8, 255, 1 << 31, (1 << 32) - 1, (1 << 32) - 16,
                                   PAGE - 4, 1 << 63, (1 << 64) - 1]),
                  st.integers(0, (1 << 64) - 1))


def _value(data, t):
    special = [0, 1, (1 << BITS[t]) - 1, 1 << (BITS[t] - 1)]
    if t == ValType.F32:
        special += [0x7FC00000, 0x3F800000]
    if t == ValType.F64:
        special += [0x7FF8000000000000, 0x3FF0000000000000]
    return data.draw(st.one_of(st.sampled_from(special), st.integers(0, (1 << BITS[t]) - 1)))


class _Free:
    """A variable of type Value not yet given a type: it becomes a function parameter."""


class _Reject(Exception):
    pass


class LowerDomain:
    term = "lower"

    def begin(self, data) -> None:
        self.func = Function("ruletest", FuncType((), ()))
        self.entry = self.func.new_block(fuel=1)
        self.free: dict[_Free, Value] = {}
        self.pre: list[Instruction] = []
        self.extra = []  # blocks the root branches to
        self.root = None
        self.low = isel.Lowering(self.func, ENV, NUM_IMPORTS)
        isel.H.low = self.low

    def leaf(self, data, type_name):
        if type_name == "Value":
            return _Free()
        if type_name == "int":
            return data.draw(_INTS)
        if type_name == "Name":
            return data.draw(st.sampled_from(NAMES + MEM_OPS))
        if type_name == "Ty":
            return data.draw(st.sampled_from(sorted(isel.TY.values())))
        if type_name == "Unit":
            return True
        return None

    def literal(self, type_name, value):
        return value

    # -- building ------------------------------------------------------------------------
    def val(self, v, t: ValType) -> Value:
        if isinstance(v, _Free):
            if v not in self.free:
                p = self.func.new_value(t, self.entry)
                self.entry.params.append(p)
                self.free[v] = p
            v = self.free[v]
        if not isinstance(v, Value) or v.type != t:
            raise _Reject
        return v

    def ins(self, name, args, imm=(), targets=(), root=False):
        info = opcodes.OPS[name]
        ins = Instruction(info, args, imm, targets)
        _, results = opcodes.signature(info, imm, tuple(a.type for a in args), ENV)
        ins.results = tuple(self.func.new_value(r, ins, k) for k, r in enumerate(results))
        ins.block = self.entry
        for a in args:
            self.low.use_count[a] = self.low.use_count.get(a, 0) + 1
        if root:
            self.root = self.low.cur = ins
        else:
            self.pre.append(ins)
        return ins

    def block(self, types=()):
        b = self.func.new_block(fuel=1)
        for t in types:
            b.params.append(self.func.new_value(t, b))
        self.extra.append(b)
        # The VCode block must exist before the rule's edges are made.
        self.low.vblock_of[b] = isel.VBlock(len(self.func.blocks) - 1, 1)
        return b

    def build(self, data, term, args):
        try:
            return self._build(data, term, args)
        except _Reject:
            return None

    def _build(self, data, term, args):
        I32, I64 = ValType.I32, ValType.I64
        if term == "iconst":
            t = data.draw(st.sampled_from([I32, I64]))
            if args[0] >> BITS[t]:
                raise _Reject
            return self.ins(f"{t}.const", [], (args[0],)).results[0]
        if term in ("fused_cmp", "fused_eqz"):
            name = args[0]
            ok = isel._is_scalar_cmp(name) if term == "fused_cmp" else name in ("i32.eqz", "i64.eqz")
            if not ok:
                raise _Reject
            t = numerics.INFO[name].params[0]
            return self.ins(name, [self.val(a, t) for a in args[1:]]).results[0]
        if term == "add_const":
            x, k = args
            if k >> 32:
                raise _Reject
            c = self.ins("i32.const", [], (k,)).results[0]
            return self.ins("i32.add", [self.val(x, I32), c]).results[0]
        if self.root is not None:
            raise _Reject  # one root instruction per instance
        if term == "constant":
            t = TYS[args[0]]
            if t not in NUM or args[1] >> BITS[t]:
                raise _Reject
            return self.ins(f"{t}.const", [], (args[1],), root=True)
        if term in ("pure", "binary"):
            name = args[0]
            info = numerics.INFO.get(name)
            if info is None or name not in ISA_OPS or (term == "binary" and len(args) != 3):
                raise _Reject
            imm = ()
            if info.imm == "lane":
                imm = (data.draw(st.integers(0, info.imm_limit - 1)),)
            elif info.imm == "shuffle":
                imm = (tuple(data.draw(st.lists(st.integers(0, 31), min_size=16, max_size=16))),)
            operands = args[1:] if term == "binary" else [_Free() for _ in info.params]
            vals = [self.val(a, t) for a, t in zip(operands, info.params)]
            return self.ins(name, vals, imm, root=True)
        if term == "select":
            t = TYS[args[0]]
            if t not in NUM:
                raise _Reject
            a, b, c = args[1:]
            return self.ins("select", [self.val(a, t), self.val(b, t), self.val(c, I32)], root=True)
        if term in ("load", "store"):
            mem, addr, off = args
            names = [n for n in MEM_OPS if (".load" in n) == (term == "load")]
            name = data.draw(st.sampled_from(names))
            info = opcodes.OPS[name]
            if mem > 1 or off >> 32:
                raise _Reject
            lane = [data.draw(st.integers(0, f.limit - 1)) for f in info.imm[2:]]
            vals = [self.val(addr, I32)] + [self.val(_Free(), t) for t in info.params[1:]]
            return self.ins(name, vals, (mem, off, *lane), root=True)
        if term in ("global_get", "global_set"):
            t = TYS[args[0]]
            if t not in NUM or args[1] != NUM.index(t):
                raise _Reject
            if term == "global_get":
                return self.ins("global.get", [], (args[1],), root=True)
            return self.ins("global.set", [self.val(_Free(), t)], (args[1],), root=True)
        if term == "br_if":
            c = self.val(args[0], I32)
            t_types = data.draw(st.lists(st.sampled_from(NUM), max_size=2))
            yes, no = self.block(t_types), self.block()
            t_args = [self.val(_Free(), t) for t in t_types]
            return self.ins("br_if", [c], (), [BlockCall(yes, t_args), BlockCall(no, [])], root=True)
        if term == "br_table":
            n = data.draw(st.integers(1, 4))
            targets = [BlockCall(self.block(), []) for _ in range(n)]
            return self.ins("br_table", [self.val(_Free(), I32)], (), targets, root=True)
        if term == "jump":
            types = data.draw(st.lists(st.sampled_from(NUM), max_size=3))
            target = self.block(types)
            vals = [self.val(_Free(), t) for t in types]
            if vals and data.draw(st.booleans()):
                vals = vals[::-1] if len(set(types)) == 1 else vals  # a permutation when types allow
            return self.ins("jump", [], (), [BlockCall(target, vals)], root=True)
        if term == "return":
            types = data.draw(st.lists(st.sampled_from(NUM), max_size=3))
            self.func.sig = FuncType((), tuple(types))
            return self.ins("return", [self.val(_Free(), t) for t in types], root=True)
        if term in ("call", "return_call"):
            f = args[0]
            if f >= NUM_IMPORTS:
                raise _Reject
            vals = [self.val(_Free(), t) for t in HOST_TYPES[f].params]
            return self.ins(term, vals, (f,), root=True)
        if term in ("call_indirect", "return_call_indirect"):
            ty = data.draw(st.integers(0, NUM_IMPORTS - 1))
            vals = [self.val(_Free(), t) for t in HOST_TYPES[ty].params] + [self.val(_Free(), I32)]
            return self.ins(term, vals, (ty, 0), root=True)
        if term == "unreachable":
            return self.ins("unreachable", [], root=True)
        if term == "ref_null":
            t = data.draw(st.sampled_from([ValType.FUNCREF, ValType.EXTERNREF]))
            return self.ins("ref.null", [], (t,), root=True)
        if term == "trap":
            return self.ins("trap", [], (data.draw(st.sampled_from(TRAP_MESSAGES)),), root=True)
        return None  # calls, tables, br_table, references: need a module instance

    # -- checking --------------------------------------------------------------------------
    def _finish(self):
        """Complete the function: the root ends the entry block or is followed by a
        return of its results; branch targets return their params and a marker."""
        root = self.root
        self.entry.instrs = list(self.pre) + [root]
        results = ()
        if not root.op.terminator:
            results = tuple(r.type for r in root.results)
            ret = Instruction(opcodes.OPS["return"], list(root.results))
            ret.block = self.entry
            self.entry.instrs.append(ret)
        elif root.op.name == "return":
            results = tuple(a.type for a in root.args)
        elif root.op.name == "return_call":
            results = HOST_TYPES[root.imm[0]].results
        elif root.op.name == "return_call_indirect":
            results = HOST_TYPES[root.imm[0]].results
        for k, b in enumerate(self.extra):
            marker = Instruction(opcodes.OPS["i32.const"], [], (100 + k,))
            marker.results = (self.func.new_value(ValType.I32, marker),)
            ret = Instruction(opcodes.OPS["return"], [marker.results[0], *b.params])
            for i in (marker, ret):
                i.block = b
            b.instrs = [marker, ret]
        if self.extra:
            # Every return of the function must have one signature: pad with the marker
            # block's shape (targets of one root return [i32, params...]; make them equal).
            shapes = {tuple(a.type for a in b.instrs[-1].args) for b in self.extra}
            if len(shapes) != 1:
                for b in self.extra:
                    b.instrs[-1].args = b.instrs[-1].args[:1]
            results = tuple(a.type for a in self.extra[0].instrs[-1].args)
        self.func.sig = FuncType(tuple(p.type for p in self.entry.params), results)

    def _eval_ir(self, args, memories, globals_, table):
        """The IR's meaning (a tiny evaluator for the shapes `build` makes)."""
        env = dict(zip(self.entry.params, args))
        block = self.entry
        while True:
            for ins in block.instrs:
                n = ins.op.name
                a = [env[v] for v in ins.args]
                if n.endswith(".const"):
                    out = [ins.imm[0]]
                elif n == "ref.null":
                    out = [None]
                elif n == "select":
                    out = [a[0] if a[2] & 0xFFFFFFFF else a[1]]
                elif n in numerics.OPS:
                    out = [numerics.OPS[n](*a, *ins.imm)]
                elif n == "global.get":
                    out = [globals_[ins.imm[0]].value]
                elif n == "global.set":
                    globals_[ins.imm[0]].value = a[0]
                    out = []
                elif ins.op.resource == "memory":
                    out = _mem_access(n, ins.imm, a, memories)
                elif n == "return":
                    return a
                elif n in ("jump", "br_if", "br_table"):
                    if n == "br_table":
                        t = ins.targets[min(a[0] & 0xFFFFFFFF, len(ins.targets) - 1)]
                    else:
                        t = ins.targets[0] if n == "jump" or a[0] & 0xFFFFFFFF else ins.targets[1]
                    for p, v in zip(t.block.params, t.args):
                        env[p] = env[v]
                    block = t.block
                    break
                elif n in ("call", "return_call"):
                    out = HOSTS[ins.imm[0]].callable(None, a)
                    if n == "return_call":
                        return out
                elif n in ("call_indirect", "return_call_indirect"):
                    f = _indirect(table, ins.imm[0], a[-1])
                    out = f.callable(None, a[:-1])
                    if n == "return_call_indirect":
                        return out
                elif n == "unreachable":
                    raise Trap("unreachable")
                elif n == "trap":
                    raise Trap(ins.imm[0])
                else:
                    raise WasmError(f"rule tester cannot evaluate {n}")
                env.update(zip(ins.results, out))

    def compare(self, data, lhs, rhs):
        group = list(self.low.group)
        self._finish()
        order = [self.entry] + self.extra
        self.low.use_count = {}
        vf = self.low.run(isel.lowering_rules(), order, {self.root: group})
        alloc = allocate(vf, len(self.func.sig.results) * 2)
        code = CompiledCode(1)
        body = Emitter(vf, alloc, code.pool).run()
        code.add_function(0, body, alloc.frame_size)
        for _ in range(3):
            args = [_value(data, p.type) for p in self.entry.params]
            fill = data.draw(st.binary(min_size=64, max_size=64))
            mems_ir = [_memory(fill), _memory(fill)]
            mems_bc = [_memory(fill), _memory(fill)]
            glob_ir = [make_global(t, _value(data, t)) for t in NUM]
            glob_bc = [make_global(t, g.value) for t, g in zip(NUM, glob_ir)]
            # A table with every host function, a hole, and room past its end.
            table = make_table(NUM_IMPORTS + 1)
            table.elements[:NUM_IMPORTS] = data.draw(st.permutations(HOSTS))
            try:
                want = ("ok", self._eval_ir(args, mems_ir, glob_ir, table))
            except Trap as t:
                want = ("trap", str(t).split("\n")[0])
            m = RefMachine(alloc.frame_size + 2 * len(self.func.sig.results) + 2,
                           memories=mems_bc, globals=glob_bc, pool=code.pool, funcs=HOSTS,
                           tables=[table], types=ENV.types)
            write_values(m, 0, self.func.sig.params, args)
            try:
                ref_run(m, code.code, 0, len(code.code))
                got = ("ok", read_values(m, 0, self.func.sig.results))
            except Trap as t:
                got = ("trap", str(t).split("\n")[0])
            except WasmError as e:  # the bytecode broke a machine invariant
                return f"{self.root!r} with inputs {args}: {e}\n{vf}"
            if got != want:
                return f"{self.root!r} with inputs {args}: bytecode {got}, IR {want}\n{vf}"
            if want[0] == "ok":
                for a, b in zip(mems_ir, mems_bc):
                    if bytes(a.read(0, PAGE)) != bytes(b.read(0, PAGE)):
                        return f"{self.root!r} with inputs {args}: memory differs\n{vf}"
                if [g.value for g in glob_ir] != [g.value for g in glob_bc]:
                    return f"{self.root!r} with inputs {args}: globals differ\n{vf}"
        return None


def _indirect(table, type_index, i):
    """The callee of call_indirect, with its traps (the IR's meaning)."""
    i &= 0xFFFFFFFF
    if i >= len(table.elements):
        raise Trap("undefined element")
    f = table.elements[i]
    if f is None:
        raise Trap("uninitialized element")
    if f.type != HOST_TYPES[type_index]:
        raise Trap("indirect call type mismatch")
    return f


def _memory(fill: bytes):
    m = make_memory(1)
    m.write(PAGE - 64, fill)  # the bytes accesses near the end see
    m.write(0, fill)
    return m


def _mem_access(name, imm, args, memories):
    t, _, op = name.partition(".")
    mem, off = imm[0], imm[1]
    ea = (args[0] & 0xFFFFFFFF) + off
    n = isel_access_bytes(name)
    memory = memories[mem]
    fn = numerics.MEMORY_OPS.get(name)
    if ".load" in name:
        raw = int.from_bytes(memory.read(ea, n), "little")
        if op.endswith("_lane"):
            return [fn(args[1], raw, imm[2])]
        return [fn(raw) if fn else raw]
    if op.endswith("_lane"):
        value = fn(args[1], imm[2])
    else:
        value = fn(args[1]) if fn else args[1]
    memory.write(ea, (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))
    return []


def isel_access_bytes(name: str) -> int:
    from deadeye.interp.isa.table import _access_bytes

    t, _, op = name.partition(".")
    return _access_bytes(t, op)


def rules_test_domain():
    """(CheckedProgram, RuleSet, Domain) for `deadeye rules test --rules lower`."""
    from deadeye.lower.dsl import check_sources, read_sources

    prog = check_sources(read_sources([isel.rules_dir()]))
    return prog, isel.lowering_rules(), LowerDomain()
