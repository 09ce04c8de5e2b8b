"""Test helpers: assemble bytecode by hand into a CompiledCode and instantiate it.

`assemble(items)`: items are `(op name, operand...)` tuples and label strings ending in ":";
an operand `L("name")` is the branch offset to that label (relative to the op's first
byte), a tuple of them a br_table target list. `Program` builds one module of such
functions (with a fake decoded module: the interpreter only needs the runtime's view).
"""

from __future__ import annotations

from types import SimpleNamespace

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
