"""Test helpers: assemble bytecode by hand into a CompiledCode and instantiate it.

`assemble(items)`: items are `(op name, operand...)` tuples and label strings ending in ":";
an operand `L("name")` is the branch offset to that label (relative to the op's first
byte), a tuple of them a br_table target list. `Program` builds one module of such
functions (with a fake decoded module: the interpreter only needs the runtime's view).
"""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import strategies as st

from deadeye.interp.interpreter import Interpreter
from deadeye.interp.isa.encoding import encode
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.memory import MemoryInstance, TableInstance
from deadeye.interp.runtime import GlobalInstance, HostFunction, ModuleInstance, Store, WasmFunction
from deadeye.ir.types import FuncType, ValType

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128


class L:
    def __init__(self, name):
        self.name = name


def _resolve(v, labels, at):
    if isinstance(v, L):
        return labels.get(v.name, at) - at
    if isinstance(v, tuple) and v and isinstance(v[0], L):
        return tuple(labels.get(x.name, at) - at for x in v)
    return v


def assemble(items, pool=None):
    """(bytes, srcmap) of the items; every op is mapped to wasm offset 100 + its index."""
    labels: dict = {}
    for _ in range(2):  # sizes do not depend on offsets: the second pass is exact
        out, srcmap, at = bytearray(), [], 0
        for k, it in enumerate(items):
            if isinstance(it, str):
                labels[it[:-1]] = len(out)
                continue
            name, *opds = it
            opds = tuple(_resolve(v, labels, len(out)) for v in opds)
            srcmap.append((len(out), 100 + k))
            out += encode(name, *opds, pool=pool)
    return bytes(out), srcmap


class FakeModule:
    def __init__(self, types, names):
        self.types = types
        self.names = SimpleNamespace(module="m")
        self._names = names
        self.num_imported_funcs = 0
        self.derived = {}  # executors' per-module caches (as on frontend.module.Module)

    def func_name(self, index):
        return self._names[index]


class Program:
    """funcs: list of (name, FuncType, items, frame_size)."""

    def __init__(self, funcs, *, memories=0, globals=(), tables=(), hosts=(), fuel=False,
                 stats=False, max_call_depth=1000, pool=None,
                 store=None, canon=False):
        self.code = CompiledCode(len(funcs))
        if pool is not None:
            self.code.pool = pool
        types = [t for _, t, _, _ in funcs] + [h.type for h in hosts]
        self.module = FakeModule(types, [n for n, *_ in funcs])
        for i, (name, ty, items, fs) in enumerate(funcs):
            body, srcmap = assemble(items, self.code.pool)
            self.code.add_function(i, body, fs, srcmap)
        self.module.code = self.code
        if store is None:
            self.interp = Interpreter(lambda f: (f.instance.module.code, f.defined_index),
                                      stats=stats, nan_canonicalization=canon)
            store = Store(self.interp, consume_fuel=fuel, max_call_depth=max_call_depth)
        self.interp = store.executor
        self.store = store
        inst = self.inst = ModuleInstance(self.module, self.store)
        for i, (_, ty, _, _) in enumerate(funcs):
            inst.funcs.append(WasmFunction(inst, i, ty))
        inst.funcs.extend(hosts)  # host functions after the defined ones (index = position)
        for _ in range(memories):
            inst.memories.append(MemoryInstance(SimpleNamespace(
                limits=SimpleNamespace(min=1, max=4))))
        for vt, v in globals:
            inst.globals.append(GlobalInstance(SimpleNamespace(valtype=vt, mutable=True), v))
        for n in tables:
            inst.tables.append(TableInstance(SimpleNamespace(
                elem=ValType.FUNCREF, limits=SimpleNamespace(min=n, max=None))))
        self.store.instances.append(inst)

    def call(self, name, *args):
        f = next(f for f in self.inst.funcs if isinstance(f, WasmFunction) and f.name == name)
        return self.store.call(f, list(args))


def host(params, results, fn, name="host"):
    return HostFunction(FuncType(tuple(params), tuple(results)), fn, name)


# -- random control flow (for differential tests against the reference and between engines)
# Slots 0..5 hold data, slot 7 the loop budget: only the guarded back edges write it, so
# every program ends.
_CF_OPS = ["i32.add", "i32.sub", "i64.add", "i64.mul", "i32.xor", "i64.shr_s", "i32.lt_s"]
_CF_COND = ["br_i32_eqz", "br_if", "br_if_not"]


@st.composite
def cf_program(draw):
    """A random function (frame of 8 slots, six i64 parameters and results) with forks,
    superblocks and bounded loops."""
    reg = st.integers(0, 5)
    nblocks = draw(st.integers(1, 8))
    items = [("const32", 7, draw(st.integers(0, 6)))]
    for k in range(nblocks):
        items.append(f"b{k}:")
        for _ in range(draw(st.integers(0, 8))):  # past 6 ops a block is never inlined
            kind = draw(st.integers(0, 4))
            if kind == 0:
                items.append(("mov", draw(reg), draw(reg)))
            elif kind == 1:
                items.append(("const32", draw(reg), draw(st.integers(0, 0xFFFFFFFF))))
            elif kind == 2:
                items.append(("select", draw(reg), draw(reg), draw(reg), draw(reg)))
            elif kind == 3:
                items.append(("i32.sub_imm", draw(reg), draw(reg), draw(st.integers(0, 3))))
            else:
                items.append((draw(st.sampled_from(_CF_OPS)), draw(reg), draw(reg), draw(reg)))
        fwd = st.integers(k + 1, nblocks).map(lambda j: L(f"b{j}"))
        end = draw(st.integers(0, 5))
        if end == 1:
            items.append((draw(st.sampled_from(_CF_COND)), draw(reg), draw(fwd)))
        elif end == 2:
            items.append(("jump", draw(fwd)))
        elif end == 3:
            items.append(("br_table", draw(reg), tuple(draw(st.lists(fwd, min_size=1, max_size=3)))))
        elif end == 4:  # a back edge, taken while the budget lasts
            back = L(f"b{draw(st.integers(0, k))}")
            items += [("br_i32_eqz", 7, L(f"x{k}")), ("i32.sub_imm", 7, 7, 1)]
            items.append(("jump", back) if draw(st.booleans()) else ("br_if", draw(reg), back))
            items.append(f"x{k}:")
        elif end == 5:
            items.append(("return", (0, 1, 2, 3, 4, 5)))
    items += [f"b{nblocks}:", ("return", (0, 1, 2, 3, 4, 5))]
    return items


def fib_program():
    # fib(n) = n < 2 ? n : fib(n-1) + fib(n-2); r0 = n, r1 = saved result, call window @r2
    return ("fib", FuncType((I32,), (I32,)), [
        ("br_i32_lt_u_imm", 0, 2, L("small")),
        ("i32.sub_imm", 2, 0, 1),
        ("call", 0, 2),
        ("mov", 1, 2),
        ("i32.sub_imm", 2, 0, 2),
        ("call", 0, 2),
        ("i32.add", 0, 1, 2),
        "small:",
        ("return", ()),
    ], 3)
