"""Every ISA op against the ISA's reference semantics (interp/isa/refexec.py): random
registers (full 64-bit patterns, so 32-bit readers must ignore high bits), random
immediates, pool entries, overlapping registers; memory ops on random memory contents.
The interpreter's generated code and the reference must agree on every slot, every byte
of memory and on whether (and how) the op traps."""

import random

import pytest

from deadeye.interp.isa.encoding import ConstPool
from deadeye.interp.isa.refexec import RefMachine, make_memory, run as ref_run
from deadeye.interp.isa.table import OP_LIST
from deadeye.ir.errors import Trap
from deadeye.ir.types import FuncType

from interp_asm import I64, L, Program, assemble

NSLOTS = 8
M64 = (1 << 64) - 1
_SPECIAL_F = [0, 0x7FC00000, 0xFFC00001, 0x7F800000, 0x80000000, 0x3F800000,
              0x7FF8000000000000, 0xFFF0000000000001, 0x8000000000000000, 0x3FF0000000000000]


def _value(rng):
    r = rng.random()
    if r < 0.3:
        return rng.choice(_SPECIAL_F) | (rng.getrandbits(32) << 32 if rng.random() < 0.5 else 0)
    if r < 0.5:
        return rng.randrange(0, 64)
    return rng.getrandbits(64)


def _operands(row, rng, pool):
    out = []
    for o in row.operands:
        k = o.kind.name
        if k in ("xs", "xd"):
            out.append(rng.randrange(NSLOTS))
        elif k in ("vs", "vd"):
            out.append(rng.randrange(NSLOTS - 1))
        elif k == "off":
            out.append(L("t"))
        elif k == "lane":
            out.append(rng.randrange(o.limit))
        elif k == "shuffle":
            out.append(tuple(rng.randrange(32) for _ in range(16)))
        elif k == "pool":
            out.append(pool.add(rng.getrandbits(64)))
        elif k == "mem":
            out.append(rng.randrange(2))
        elif k == "u32" and o.name == "offset":
            out.append(rng.choice([0, 1, 3, 100, 65530, 0xFFFFFFF0]))
        elif k == "sx32":
            v = rng.randrange(-(1 << 31), 1 << 31)
            out.append(v & M64)
        else:
            out.append(rng.randrange(o.kind.lo, o.kind.hi + 1))
    return tuple(out)


_ROWS = [r for r in OP_LIST if r.numerics is not None or r.group == "memory"
         and (".load" in r.name or ".store" in r.name)]


def _program(row, opds, pool):
    ret = ("return", tuple(range(NSLOTS)))
    items = [(row.name, *opds)]
    if "off" in row.names:
        items += [("const32", 0, 0), ret, "t:", ("const32", 0, 1), ret]
    else:
        items += [ret]
    return items


def _mem_image(rng):
    return bytes(rng.getrandbits(8) for _ in range(256)) + bytes(65536 - 512) + \
        bytes(rng.getrandbits(8) for _ in range(256))


@pytest.mark.parametrize("row", _ROWS, ids=lambda r: r.name)
def test_op_matches_reference(row):
    rng = random.Random(row.name)
    for _ in range(6):
        pool = ConstPool()
        opds = _operands(row, rng, pool)
        regs = [_value(rng) for _ in range(NSLOTS)]
        if row.group == "memory" and "addr" in row.names:  # mostly in bounds, some not
            regs[opds[row.names.index("addr")]] = rng.choice(
                [0, 8, 200, 65520, 65535, 1 << 32 | 4, rng.getrandbits(64)])
        items = _program(row, opds, pool)
        images = [_mem_image(rng), _mem_image(rng)]

        ref_mems = [make_memory(1), make_memory(1)]
        for m, img in zip(ref_mems, images):
            m.data[:] = img
        ref = RefMachine(NSLOTS, memories=ref_mems, pool=pool)
        ref.regs[:] = regs
        code, _ = assemble(items, pool)
        try:
            ref_run(ref, code)
            want = ("ok", ref.regs)
        except Trap as t:
            want = ("trap", t.message)

        p = Program([("f", FuncType((I64,) * NSLOTS, (I64,) * NSLOTS), items, NSLOTS)],
                    memories=2, pool=pool)
        for m, img in zip(p.inst.memories, images):
            m.data[:] = img
        try:
            got = ("ok", p.call("f", *regs))
        except Trap as t:
            got = ("trap", t.message)
        assert got == want, (row.name, opds, regs)
        if want[0] == "ok":
            assert [bytes(m.data) for m in p.inst.memories] == [bytes(m.data) for m in ref_mems]


# -- state ops: a few sequences against the reference ------------------------------------------
from deadeye.interp.isa.refexec import make_global, make_table  # noqa: E402
from deadeye.interp.memory import DataInstance, ElemInstance  # noqa: E402
from deadeye.ir.types import ValType  # noqa: E402

_STATE_PROGRAMS = [
    [("memory.copy", 0, 1, 2, 0, 1), ("memory.fill", 1, 3, 2, 0)],
    [("memory.init", 0, 1, 2, 0, 1), ("data.drop", 0), ("memory.size", 4, 1)],
    [("memory.grow", 4, 2, 0), ("memory.size", 5, 0), ("i32.store8_m0", 0, 3, 65536)],
    [("global.get128", 0, 1), ("i32x4.add", 2, 0, 0), ("global.set128", 2, 1),
     ("global.get", 4, 0), ("global.set", 5, 0)],
    [("mov128", 2, 0), ("const128", 4, (1 << 128) - 12345), ("select128", 0, 2, 4, 6),
     ("select", 6, 0, 1, 7)],
    [("table.get", 0, 1, 0), ("table.set", 2, 0, 0), ("table.size", 3, 0),
     ("ref.is_null", 4, 0), ("ref.null", 5), ("table.fill", 1, 5, 2, 0)],
    [("table.copy", 0, 1, 2, 0, 0), ("table.init", 3, 1, 2, 0, 0), ("elem.drop", 0),
     ("table.grow", 4, 1, 2, 0)],
    [("const64_pool", 0, 0), ("i64.add_imm_pool", 1, 0, 1), ("br_i64_lt_u_imm_pool", 1, 0, L("t"))],
]


@pytest.mark.parametrize("k", range(len(_STATE_PROGRAMS)))
def test_state_ops_match_reference(k):
    rng = random.Random(k)
    ret = ("return", tuple(range(NSLOTS)))
    for _ in range(8):
        items = list(_STATE_PROGRAMS[k])
        items += [ret, "t:", ret] if any(isinstance(o, L) for it in items for o in it) else [ret]
        pool = ConstPool([rng.getrandbits(64), rng.getrandbits(64)])
        regs = [rng.choice([0, 1, 2, 3, 5, 100, 65530, rng.getrandbits(64)]) for _ in range(NSLOTS)]
        images = [_mem_image(rng), _mem_image(rng)]
        seg = bytes(rng.getrandbits(8) for _ in range(50))
        g128 = rng.getrandbits(128)
        g32 = rng.getrandbits(32)

        def state(funcs):
            mems = [make_memory(1, 3), make_memory(1, 3)]
            for m, img in zip(mems, images):
                m.data[:] = img
            table = make_table(6)
            table.elements[:] = [funcs[i % 2] if i % 3 else None for i in range(6)]
            elem = ElemInstance(ValType.FUNCREF, [funcs[0], None, funcs[1], funcs[0]])
            return mems, [table], [make_global(ValType.I32, g32), make_global(ValType.V128, g128)], \
                [DataInstance(seg)], [elem]

        code, _ = assemble(items, pool)
        sentinel = ["fa", "fb"]
        mems, tables, globs, datas, elems = state(sentinel)
        ref = RefMachine(NSLOTS, memories=mems, tables=tables, globals=globs, datas=datas,
                         elems=elems, pool=pool)
        ref.regs[:] = regs
        try:
            ref_run(ref, code)
            want = ("ok", ref.regs)
        except Trap as t:
            want = ("trap", t.message)

        p = Program([("f", FuncType((I64,) * NSLOTS, (I64,) * NSLOTS), items, NSLOTS)], pool=pool)
        mems2, tables2, globs2, datas2, elems2 = state(sentinel)
        p.inst.memories[:], p.inst.tables[:], p.inst.globals[:] = mems2, tables2, globs2
        p.inst.datas[:], p.inst.elems[:] = datas2, elems2
        # references in slots would be rejected as i64 arguments: seed them from inside
        try:
            got = ("ok", p.interp.call(p.store, p.inst.funcs[0], list(regs)))
        except Trap as t:
            got = ("trap", t.message)
        assert got == want, (items, regs)
        if want[0] == "ok":
            assert [bytes(m.data) for m in mems2] == [bytes(m.data) for m in mems]
            assert [t.elements for t in tables2] == [t.elements for t in tables]
            assert [g.value for g in globs2] == [g.value for g in globs]
            assert [len(d) for d in datas2] == [len(d) for d in datas]
            assert [len(e) for e in elems2] == [len(e) for e in elems]
