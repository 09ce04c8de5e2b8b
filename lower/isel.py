"""Instruction selection: IR -> VCode through the lowering rules in `rules/lower/*.isle`.

The rules (term `lower`, one application per IR instruction) choose bytecode ops; this
module supplies their host functions: extractors that classify IR instructions and
recognise value shapes (constants, single-use compares, `x + k` addresses), and
constructors (`emit_*`) that append VCode to the block being lowered.

Blocks are lowered in reverse layout order (layout = reverse postorder, so every use is
seen before its definition) and each block bottom-up. An instruction is lowered only if
it has an effect or one of its results was read as a register by something lowered
already; so a constant folded into an immediate, a compare fused into a branch or a
select, or an address add folded into an offset field vanishes when nothing else reads it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from deadeye.interp.isa.table import OPS, trap_code
from deadeye.ir import numerics
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Block, Function, Instruction, IRModule, Value
from deadeye.ir.opcodes import Effect
from deadeye.ir.types import ValType

from .vcode import CallSite, Edge, VBlock, VFunc, VInst, VReg

TY = {ValType.I32: "I32", ValType.I64: "I64", ValType.F32: "F32", ValType.F64: "F64",
      ValType.V128: "V128", ValType.FUNCREF: "FuncRef", ValType.EXTERNREF: "ExternRef"}
M32 = 0xFFFFFFFF

_CMP_MIRROR = {"eq": "eq", "ne": "ne", "lt_s": "gt_s", "gt_s": "lt_s", "le_s": "ge_s",
               "ge_s": "le_s", "lt_u": "gt_u", "gt_u": "lt_u", "le_u": "ge_u", "ge_u": "le_u",
               "lt": "gt", "gt": "lt", "le": "ge", "ge": "le"}
COMMUTATIVE = frozenset("add mul and or xor".split())  # (integer ops; also used by emit.py)
_SCALAR_CMP_TYPES = ("i32", "i64", "f32", "f64")
_STATE_OPS = frozenset({"memory.size", "memory.grow", "memory.copy", "memory.fill",
                        "memory.init", "data.drop", "table.get", "table.set", "table.size",
                        "table.grow", "table.fill", "table.copy", "table.init", "elem.drop",
                        "ref.is_null", "ref.func"})


def rules_dir() -> Path:
    import deadeye.rules

    return Path(deadeye.rules.__file__).parent / "lower"


def _split(name: str) -> tuple[str, str]:
    t, _, op = name.partition(".")
    return t, op


def _is_scalar_cmp(name: str) -> bool:
    t, op = _split(name)
    return t in _SCALAR_CMP_TYPES and op in _CMP_MIRROR and op in (
        "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u" if t[0] == "i" else "eq ne lt gt le ge"
    ).split()


class Lowering:
    """The state of lowering one function (the rules' host functions read `cur`)."""

    def __init__(self, func: Function, env: IRModule, num_imports: int):
        self.func = func
        self.env = env
        self.num_imports = num_imports
        self.vfunc = VFunc(func.name)
        self.vreg_of: dict[Value, VReg] = {}
        self.needed: set[Value] = set()
        self.use_count: dict[Value, int] = {}
        self.vblock_of: dict[Block, VBlock] = {}
        self.cur: Instruction | None = None
        self.group: list[VInst] = []

    # -- registers ----------------------------------------------------------------------
    def reg(self, v: Value) -> VReg:
        """The VReg of `v`, which is read as a register (so its definition is emitted)."""
        self.needed.add(v)
        r = self.vreg_of.get(v)
        if r is None:
            r = self.vreg_of[v] = self.vfunc.new_vreg("v" if v.type == ValType.V128 else "x")
        return r

    def out(self, v: Value) -> VReg:
        r = self.vreg_of.get(v)
        if r is None:
            r = self.vreg_of[v] = self.vfunc.new_vreg("v" if v.type == ValType.V128 else "x")
        return r

    def emit(self, op: str, *args, else_edge=None) -> bool:
        self.group.append(VInst(op, args, else_edge, self.cur.offset))
        return True

    def edge(self, call) -> Edge:
        return Edge(self.vblock_of[call.block], [self.reg(a) for a in call.args])

    def single_use(self, v: Value) -> bool:
        return self.use_count.get(v, 0) == 1

    # -- driving ---------------------------------------------------------------------------
    def run(self, rules, order: list[Block], override=None) -> VFunc:
        """Lower the blocks `order`; `override` maps instructions to VCode already
        selected for them (the rule tester's way to check one rule's output)."""
        override = override or {}
        for b in self.func.entry.params:
            self.reg(b)
        for ins in self.func.instructions():
            for a in ins.args:
                self.use_count[a] = self.use_count.get(a, 0) + 1
            for t in ins.targets:
                for a in t.args:
                    self.use_count[a] = self.use_count.get(a, 0) + 1
        for i, b in enumerate(order):
            vb = self.vblock_of.get(b)
            if vb is None:
                vb = self.vblock_of[b] = VBlock(i, b.fuel, b.offset)
            vb.id = i
            self.vfunc.blocks.append(vb)
        for b in reversed(order):
            vb = self.vblock_of[b]
            groups = []
            for ins in reversed(b.instrs):
                if ins.op.effects == Effect.PURE and not any(r in self.needed for r in ins.results):
                    continue
                self.cur, self.group = ins, []
                if ins in override:
                    self.group = list(override[ins])
                elif rules.call("lower", ins) is None:
                    raise ValidationError(f"no lowering rule for {ins.op.name} "
                                          f"({', '.join(str(a.type) for a in ins.args)})",
                                          ins.offset)
                groups.append(self.group)
            for g in reversed(groups):
                vb.insts.extend(g)
            vb.params = [self.reg(p) for p in b.params]
        self.cur = None
        return self.vfunc


# ---- host functions of the rules ------------------------------------------------------------
class _Holder:
    low: Lowering | None = None


H = _Holder()


def _env() -> dict:
    L = lambda: H.low  # noqa: E731  (the function being lowered)

    def name_of(i):
        return i.op.name if isinstance(i, Instruction) else None

    def ext_constant(i):
        n = name_of(i)
        if n in ("i32.const", "i64.const", "f32.const", "f64.const", "v128.const"):
            return TY[i.results[0].type], i.imm[0]
        return None

    def ext_pure(i):
        n = name_of(i)
        return n if n in numerics.INFO and n in OPS else None

    def ext_binary(i):
        n = name_of(i)
        if n in numerics.INFO and f"{n}_imm" in OPS and len(i.args) == 2:
            return n, i.args[0], i.args[1]
        return None

    def ext_select(i):
        if name_of(i) == "select":
            return TY[i.results[0].type], i.args[0], i.args[1], i.args[2]
        return None

    def _mem(i, load):
        n = name_of(i)
        if n is None or i.op.resource != "memory" or "." not in n or n.split(".")[0] not in (
                "i32", "i64", "f32", "f64", "v128"):
            return None
        if (".load" in n) != load:
            return None
        return i.imm[0], i.args[0], i.imm[1]

    def ext_global_get(i):
        if name_of(i) == "global.get":
            return TY[i.results[0].type], i.imm[0]
        return None

    def ext_global_set(i):
        if name_of(i) == "global.set":
            return TY[i.args[0].type], i.imm[0]
        return None

    def is_op(name):
        return lambda i: name_of(i) == name

    def with_imm0(name):
        return lambda i: i.imm[0] if name_of(i) == name else None

    def ext_br_if(i):
        return i.args[0] if name_of(i) == "br_if" else None

    def ext_iconst(v):
        d = v.defn if isinstance(v, Value) else None
        if isinstance(d, Instruction) and d.op.name in ("i32.const", "i64.const"):
            return d.imm[0]
        return None

    def ext_fused_cmp(v):
        d = v.defn if isinstance(v, Value) else None
        if isinstance(d, Instruction) and _is_scalar_cmp(d.op.name) and L().single_use(v):
            return d.op.name, d.args[0], d.args[1]
        return None

    def ext_fused_eqz(v):
        d = v.defn if isinstance(v, Value) else None
        if isinstance(d, Instruction) and d.op.name in ("i32.eqz", "i64.eqz") and L().single_use(v):
            return d.op.name, d.args[0]
        return None

    def ext_add_const(v):
        d = v.defn if isinstance(v, Value) else None
        if isinstance(d, Instruction) and d.op.name == "i32.add":
            a, b = d.args
            k = ext_iconst(b)
            if k is not None:
                return a, k
            k = ext_iconst(a)
            if k is not None:
                return b, k
        return None

    # helpers
    def imm_op(name):
        return f"{name}_imm" if f"{name}_imm" in OPS else None

    def swapped(name):
        t, op = _split(name)
        if op in COMMUTATIVE:
            return name
        if op in _CMP_MIRROR:
            return f"{t}.{_CMP_MIRROR[op]}"
        return None

    def br_op(name):
        t, op = _split(name)
        n = f"br_{t}_{op}"
        return n if n in OPS else None

    def br_imm_op(name):
        t, op = _split(name)
        n = f"br_{t}_{op}_imm"
        return n if n in OPS else None

    def select_op(name):
        t, op = _split(name)
        n = f"select_{t}_{op}"
        return n if n in OPS else None

    def fold_offset(x, k, off):
        o = off + k
        if o > M32 or max_value(x) + k > M32:
            return None
        return o

    def imported(f):
        return f < L().num_imports

    def sx32(k):
        return k < 1 << 31 or k >= (1 << 64) - (1 << 31)

    def one_slot(t):
        return t != "V128"

    # emitters
    def res(i):
        return L().out(i.results[0])

    def emit_const(op):
        return lambda i, k: L().emit(op, res(i), k)

    def emit_direct(i, name):
        lo = L()
        return lo.emit(name, *[lo.out(r) for r in i.results], *[lo.reg(a) for a in i.args], *i.imm)

    def emit_state(i):
        return emit_direct(i, i.op.name)

    def emit_ref_null(i):
        return L().emit("ref.null", res(i))

    def emit_imm(i, op, x, k):
        lo = L()
        t, base = _split(op[:-4])
        if base in ("shl", "shr_s", "shr_u", "rotl", "rotr"):
            k &= 31 if t == "i32" else 63
        return lo.emit(op, res(i), lo.reg(x), k)

    def emit_select(i, a, b, c):
        lo = L()
        return lo.emit("select", res(i), lo.reg(a), lo.reg(b), lo.reg(c))

    def emit_select128(i, a, b, c):
        lo = L()
        return lo.emit("select128", res(i), lo.reg(a), lo.reg(b), lo.reg(c))

    def emit_select_cmp(i, op, a, b, x, y):
        lo = L()
        return lo.emit(op, res(i), lo.reg(a), lo.reg(b), lo.reg(x), lo.reg(y))

    def emit_mem(i, mem, addr, off):
        return _mem_op(i, i.op.name, addr, off, mem)

    def emit_mem0(i, addr, off):
        return _mem_op(i, f"{i.op.name}_m0", addr, off, None)

    def _mem_op(i, op, addr, off, mem):
        lo = L()
        if off > M32:
            raise ValidationError(f"memory offset {off} does not fit 32 bits", i.offset)
        dst = [lo.out(r) for r in i.results]
        srcs = [lo.reg(a) for a in i.args[1:]]
        lane = list(i.imm[2:])
        memf = [] if mem is None else [mem]
        return lo.emit(op, *dst, lo.reg(addr), *srcs, *memf, off, *lane)

    def emit_global_get(i, g):
        return L().emit("global.get", res(i), g)

    def emit_global_get128(i, g):
        return L().emit("global.get128", res(i), g)

    def emit_global_set(i, g):
        return L().emit("global.set", L().reg(i.args[0]), g)

    def emit_global_set128(i, g):
        return L().emit("global.set128", L().reg(i.args[0]), g)

    def _site(i, args):
        lo = L()
        return CallSite([lo.reg(a) for a in args], [lo.out(r) for r in i.results])

    def emit_call(i, f):
        return L().emit("call", f, _site(i, i.args))

    def emit_call_host(i, f):
        return L().emit("call_host", f, _site(i, i.args))

    def emit_call_indirect(i):
        lo = L()
        ty, table = i.imm
        return lo.emit("call_indirect", ty, table, lo.reg(i.args[-1]), _site(i, i.args[:-1]))

    def emit_return_call(i, f):
        lo = L()
        return lo.emit("return_call", f, [lo.reg(a) for a in i.args])

    def emit_return_call_indirect(i):
        lo = L()
        ty, table = i.imm
        return lo.emit("return_call_indirect", ty, table, lo.reg(i.args[-1]),
                       [lo.reg(a) for a in i.args[:-1]])

    def emit_jump(i):
        return L().emit("jump", L().edge(i.targets[0]))

    def _cond(i, op, *operands):
        lo = L()
        then, els = i.targets
        return lo.emit(op, *operands, lo.edge(then), else_edge=lo.edge(els))

    def emit_br_if(i, c):
        return _cond(i, "br_if", L().reg(c))

    def emit_br(i, op, x):
        return _cond(i, op, L().reg(x))

    def emit_br_cmp(i, op, x, y):
        return _cond(i, op, L().reg(x), L().reg(y))

    def emit_br_imm(i, op, x, k):
        return _cond(i, op, L().reg(x), k)

    def emit_br_table(i):
        lo = L()
        return lo.emit("br_table", lo.reg(i.args[0]), [lo.edge(t) for t in i.targets])

    def emit_return(i):
        lo = L()
        return lo.emit("return", [lo.reg(a) for a in i.args])

    def emit_unreachable(i):
        return L().emit("unreachable")

    def emit_trap(i):
        return L().emit("trap", trap_code(i.imm[0]))

    env = {k: v for k, v in locals().items() if callable(v) and not k.startswith("_")}
    env.update({
        "ext_load": lambda i: _mem(i, True), "ext_store": lambda i: _mem(i, False),
        "ext_state": lambda i: name_of(i) in _STATE_OPS, "ext_ref_null": is_op("ref.null"),
        "ext_call": with_imm0("call"), "ext_call_indirect": is_op("call_indirect"),
        "ext_jump": is_op("jump"), "ext_br_table": is_op("br_table"),
        "ext_return": is_op("return"), "ext_unreachable": is_op("unreachable"),
        "ext_trap": is_op("trap"), "ext_return_call": with_imm0("return_call"),
        "ext_return_call_indirect": is_op("return_call_indirect"),
        "emit_const32": emit_const("const32"), "emit_const64": emit_const("const64"),
        "emit_constf64": emit_const("constf64"), "emit_const128": emit_const("const128"),
    })
    return env


def max_value(v: Value) -> int:
    """An upper bound of the unsigned i32 value `v` (for folding x + k into an offset)."""
    d = v.defn
    if not isinstance(d, Instruction):
        return M32
    n = d.op.name
    if n == "i32.const":
        return d.imm[0]
    if n in ("i32.load8_u",):
        return 0xFF
    if n in ("i32.load16_u",):
        return 0xFFFF
    if n == "i32.and":
        return min(_const_bound(a) for a in d.args)
    if n == "i32.shr_u":
        k = _const(d.args[1])
        return M32 >> (k & 31) if k is not None else M32
    if n == "i32.rem_u":
        k = _const(d.args[1])
        return k - 1 if k else M32
    if _is_scalar_cmp(n) or n in ("i32.eqz", "i64.eqz"):
        return 1
    return M32


def _const(v: Value):
    d = v.defn
    if isinstance(d, Instruction) and d.op.name == "i32.const":
        return d.imm[0]
    return None


def _const_bound(v: Value) -> int:
    k = _const(v)
    return M32 if k is None else k


@lru_cache(maxsize=1)
def lowering_rules():
    """The compiled lowering rules bound to this module's host functions."""
    from deadeye.lower.dsl import load_rules

    return load_rules([rules_dir()], _env())


def select(func: Function, env: IRModule, num_imports: int, order: list[Block]) -> VFunc:
    """Lower `func` (blocks in `order`, entry first) to VCode."""
    low = Lowering(func, env, num_imports)
    prev, H.low = H.low, low
    try:
        return low.run(lowering_rules(), order)
    finally:
        H.low = prev
