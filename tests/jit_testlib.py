"""Helpers for the native-executor tests: run one ISA op natively and on the reference
executor (`interp/isa/refexec.py`, whose numeric semantics are `ir.numerics`), compare."""

from __future__ import annotations

from hypothesis import strategies as st

from deadeye.interp.isa.encoding import ConstPool
from deadeye.interp.isa.refexec import RefMachine, make_memory, run as ref_run
from deadeye.interp.isa.table import OP_LIST, OPS
from deadeye.interp.runtime import Store
from deadeye.ir.errors import Trap
from deadeye.ir.types import FuncType, ValType
from deadeye.jit.llvmgen import MODES
from deadeye.jit.native import NativeExecutor

from interp_asm import L, Program, assemble

M32, M64 = (1 << 32) - 1, (1 << 64) - 1

_F32 = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00001, 0xFFBFFFFF, 0x7F800000, 0xFF800000,
        0x80000000, 0x3F800000, 0xBF800000, 0x3F000000, 0x3FC00000, 0x40200000, 0xC0200000,
        0x4F000000, 0xCF000000, 0x4F800000, 0x4EFFFFFF, 0x5F000000, 0xDF000000, 0x5F800000,
        0x00000001, 0x807FFFFF, 0xBF7FFFFF, 0x3F7FFFFF]
_F64 = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000001,
        0x7FF0000000000000, 0xFFF0000000000000, 1 << 63, 0x3FF0000000000000, 0xBFF0000000000000,
        0x3FE0000000000000, 0x3FF8000000000000, 0x4004000000000000, 0xC004000000000000,
        0x41E0000000000000, 0xC1E0000000000000, 0xC1E0000000200000, 0xC1E00000001FFFFF,
        0x41DFFFFFFFC00000, 0x41EFFFFFFFE00000, 0x41F0000000000000, 0x43E0000000000000,
        0xC3E0000000000000, 0x43F0000000000000, 0xC3E0000000000001, 0xBFEFFFFFFFFFFFFF,
        0x0000000000000001, 0x7FFFFFFFFFFFFFFF]
_INT = [0, 1, 2, 3, 15, 16, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF,
        0x80000000, M32, 1 << 32, (1 << 63) - 1, 1 << 63, M64, M64 - 1, 0xFFFF0000, 0x0001FFFF]
EDGES = sorted(set(_F32 + _F64 + _INT + [M64 ^ v for v in _INT] + [(0xDEAD << 32) | v for v in _F32]))

slot_values = st.one_of(st.sampled_from(EDGES), st.integers(0, M64), st.integers(0, M32),
                        st.integers(0, 0x1FFFF))

# Memory tests: addresses near both ends of the one-page memory and beyond.
addresses = st.one_of(st.integers(0, 64), st.integers(65536 - 40, 65536 + 8), st.integers(0, M32),
                      st.sampled_from([M32, M32 - 3, 1 << 31]), st.integers(0, M64))
offsets = st.one_of(st.integers(0, 32), st.sampled_from([0, 65520, 65535, 65536, M32]))


def generic_ops() -> list[str]:
    """Ops testable by one-op programs: numeric, superinstructions, moves, memory accesses."""
    out = []
    for op in OP_LIST:
        kinds = {o.kind.name for o in op.operands}
        if op.group in ("numeric", "super", "move", "fused") and not kinds & {"func", "type", "table", "global"}:
            out.append(op.name)
        elif op.group == "memory" and "addr" in op.names:
            out.append(op.name)
    return out


def operand_strategy(op, o):
    k = o.kind.name
    if k == "u8":
        return st.integers(0, 255)
    if k in ("u32", "f32"):
        return st.one_of(st.sampled_from(_F32 + [v & M32 for v in _INT]), st.integers(0, M32))
    if k == "sx32":
        return st.one_of(st.integers(0, (1 << 31) - 1), st.integers(M64 - (1 << 31) + 1, M64))
    if k == "f64":
        return st.one_of(st.sampled_from(_F64), st.integers(0, M64))
    if k == "v128":
        return st.integers(0, (1 << 128) - 1)
    if k == "lane":
        return st.integers(0, o.limit - 1)
    if k == "shuffle":
        return st.tuples(*[st.integers(0, 31)] * 16)
    if k == "pool":
        return st.one_of(st.sampled_from(EDGES), st.integers(0, M64))  # the pooled value
    if k == "mem":
        return st.just(0)
    if k == "offset" or (k == "u32" and _is(o.name, "offset")):
        return offsets
    raise KeyError(k)


def _is(operand: str, name: str) -> bool:
    """Is `operand` the operand `name`, or `name` in a part of a fused op (`name_1`)?"""
    return operand == name or operand.rsplit("_", 1)[0] == name and operand[-1].isdigit()


def _branches(op) -> bool:
    return any(o.kind.name == "off" for o in op.operands)


def case_strategy(name: str):
    """A strategy for (operand immediates, input slot values, memory seed) of op `name`."""
    op = OPS[name]
    imms = {}
    for o in op.operands:
        if o.kind.is_reg or o.kind.name == "off":
            continue
        imms[o.name] = offsets if _is(o.name, "offset") else operand_strategy(op, o)
    nslots = layout(op)[1]
    slot_list = [addresses if src and _is(src, "addr") else slot_values
                 for src in slot_names(op, nslots)]
    return st.tuples(st.fixed_dictionaries(imms), st.tuples(*slot_list), st.integers(0, 255))


def layout(op):
    """(register operand -> first slot, number of slots incl. the branch flag slot)."""
    regs, at = {}, 0
    for o in op.operands:
        if o.kind.is_reg:
            regs[o.name] = at
            at += 2 if o.kind.regclass == "v" else 1
    if _branches(op):
        regs["_flag"] = at
        at += 1
    return regs, at


def slot_names(op, nslots):
    regs, _ = layout(op)
    names = [None] * nslots
    for n, s in regs.items():
        names[s] = n
        if s + 1 < nslots and names[s + 1] is None and any(
                o.name == n and o.kind.regclass == "v" for o in op.operands):
            names[s + 1] = n
    return names


def build(name: str, imms: dict):
    """(items, nslots, pool) of a one-op function returning all its slots."""
    op = OPS[name]
    regs, nslots = layout(op)
    pool = ConstPool()
    operands = []
    for o in op.operands:
        if o.kind.is_reg:
            operands.append(regs[o.name])
        elif o.kind.name == "off":
            operands.append(L("taken"))
        elif o.kind.name == "pool":
            operands.append(pool.add(imms[o.name]))
        else:
            operands.append(imms[o.name])
    everything = tuple(range(nslots))
    items = [(name, *operands)]
    if _branches(op):
        items += [("const32", regs["_flag"], 0), ("return", everything), "taken:",
                  ("const32", regs["_flag"], 1), ("return", everything)]
    else:
        items += [("return", everything)]
    return items, nslots, pool


_PATTERN = bytes((i * 131 + (i >> 8) * 7) & 0xFF for i in range(65536 + 256))


def memory_seed(seed: int) -> bytes:
    return _PATTERN[seed:seed + 65536]


def reference(name, imms, slots, seed):
    """(slots or trap message, memory bytes) from the reference executor."""
    items, nslots, pool = build(name, imms)
    code, _ = assemble(items, ConstPool(pool.values))
    mem = make_memory(1)
    mem.data[:] = memory_seed(seed)
    m = RefMachine(nslots, memories=[mem], pool=pool)
    m.regs[:] = list(slots)
    try:
        ref_run(m, code)
    except Trap as t:
        return t.message, bytes(mem.data)
    return list(m.regs), bytes(mem.data)


_EXECUTORS: dict[str, NativeExecutor] = {}


def executor(mode: str) -> NativeExecutor:
    ex = _EXECUTORS.get(mode)
    if ex is None:
        ex = _EXECUTORS[mode] = NativeExecutor(lambda f: (f.instance.module.code, f.defined_index),
                                                dispatch=mode)
    return ex


def native(name, imms, slots, seed, mode):
    items, nslots, pool = build(name, imms)
    ty = FuncType((ValType.I64,) * nslots, (ValType.I64,) * nslots)
    p = Program([("f", ty, items, nslots)], memories=1, pool=ConstPool(pool.values),
                store=Store(executor(mode)))
    p.inst.memories[0].data[:] = memory_seed(seed)
    try:
        out = p.call("f", *slots)
    except Trap as t:
        return t.message, bytes(p.inst.memories[0].data)
    return out, bytes(p.inst.memories[0].data)


def check_op(name, imms, slots, seed, modes=MODES):
    want = reference(name, imms, slots, seed)
    for mode in modes:
        got = native(name, imms, slots, seed, mode)
        if got[0] != want[0]:
            raise AssertionError(f"{name} [{mode}] imms={imms} slots={[hex(s) for s in slots]}: "
                                 f"native {fmt(got[0])} != reference {fmt(want[0])}")
        assert got[1] == want[1], f"{name} [{mode}]: memory differs"


def fmt(v):
    return v if isinstance(v, str) else [hex(x) for x in v]

