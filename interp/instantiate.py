"""Instantiation, in the spec's order (Wasm 2.0):

1. match the provided externs against the imports (kinds, function types, limits
   subtyping, global types) -> `LinkError`;
2. allocate functions, tables, memories, globals (initialisers see imported and earlier
   globals), element segments (items evaluated) and data segments; exports;
3. initialise active element segments, then active data segments, in order, each
   bounds-checked: a failing one traps and the writes of earlier segments stay (the
   tables and memories may be imported, hence shared); initialised and declarative
   segments are dropped;
4. run the start function through the store's executor.

The decoded module is duck-typed data (see `deadeye.frontend.module.Module`)."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, Sequence

from deadeye.ir.errors import LinkError, ValidationError
from deadeye.interp.memory import DataInstance, ElemInstance, MemoryInstance, TableInstance
from deadeye.interp.runtime import (
    FuncSpace,
    GlobalInstance,
    HostFunction,
    ModuleInstance,
    Store,
    WasmFunction,
)

if TYPE_CHECKING:
    from deadeye.frontend.module import ConstExpr, Module

_M32 = (1 << 32) - 1
_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1

# Extended-const arithmetic: wrapping add/sub/mul for both integer widths.
_BINOPS = {
    f"{t}.{name}": (mask, fn)
    for t, mask in (("i32", _M32), ("i64", _M64))
    for name, fn in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul))
}


# Constants: the decoder gives every immediate as its (unsigned) bit pattern.
_CONSTS = {"i32.const": _M32, "i64.const": _M64, "f32.const": _M32, "f64.const": _M64,
           "v128.const": _M128}


def eval_const(inst: ModuleInstance, expr: "ConstExpr") -> Any:
    """Evaluate a constant expression in `inst` (its globals/functions so far)."""
    stack: list = []
    try:
        for ins in expr.instrs:
            op = ins.op
            mask = _CONSTS.get(op)
            if mask is not None:
                stack.append(ins.imm[0] & mask)
            elif op == "global.get":
                stack.append(inst.globals[ins.imm[0]].value)
            elif op == "ref.null":
                stack.append(None)
            elif op == "ref.func":
                stack.append(inst.funcs[ins.imm[0]])
            elif op in _BINOPS:
                mask, fn = _BINOPS[op]
                b = stack.pop()
                a = stack.pop()
                stack.append(fn(a, b) & mask)
            else:
                raise ValidationError("constant expression required", ins.offset)
    except (IndexError, TypeError):
        raise ValidationError("invalid constant expression", expr.offset) from None
    if len(stack) != 1:
        raise ValidationError("type mismatch in constant expression", expr.offset)
    return stack[0]


def _kind_of(ext: Any) -> str:
    if isinstance(ext, (WasmFunction, HostFunction)):
        return "func"
    if isinstance(ext, TableInstance):
        return "table"
    if isinstance(ext, MemoryInstance):
        return "memory"
    if isinstance(ext, GlobalInstance):
        return "global"
    return type(ext).__name__


def _limits_match(actual_size: int, actual_max: int | None, want: Any) -> bool:
    if actual_size < want.min:
        return False
    if want.max is not None:
        return actual_max is not None and actual_max <= want.max
    return True


def _fmt_limits(lo: int, hi: int | None) -> str:
    return f"{lo}" if hi is None else f"{lo}..{hi}"


def match_import(module: "Module", imp: Any, ext: Any) -> None:
    """Raise `LinkError` unless `ext` (a runtime extern) satisfies import `imp`."""
    kind = _kind_of(ext)
    where = f"`{imp.module}::{imp.name}`"

    def fail(detail: str) -> LinkError:
        return LinkError(f"incompatible import type for {where}: {detail}")

    if kind != imp.kind:
        raise fail(f"expected {imp.kind}, found {kind}")
    desc = imp.desc
    if kind == "func":
        want = module.types[desc]
        if ext.type != want:
            raise fail(f"expected func of type {want}, found {ext.type}")
    elif kind == "table":
        if ext.type.elem != desc.elem:
            raise fail(f"expected table of {desc.elem}, found {ext.type.elem}")
        if not _limits_match(len(ext.elements), ext.type.limits.max, desc.limits):
            raise fail(
                f"expected table limits {_fmt_limits(desc.limits.min, desc.limits.max)}, "
                f"found {_fmt_limits(len(ext.elements), ext.type.limits.max)}")
    elif kind == "memory":
        if not _limits_match(ext.pages, ext.type.limits.max, desc.limits):
            raise fail(
                f"expected memory limits {_fmt_limits(desc.limits.min, desc.limits.max)}, "
                f"found {_fmt_limits(ext.pages, ext.type.limits.max)}")
    else:
        got = ext.type
        if got.valtype != desc.valtype or bool(got.mutable) != bool(desc.mutable):
            def show(t: Any) -> str:
                return f"{'mut ' if t.mutable else ''}{t.valtype}"
            raise fail(f"expected global {show(desc)}, found {show(got)}")


def instantiate(store: Store, module: "Module", externs: Sequence[Any]) -> ModuleInstance:
    """Instantiate `module` in `store` with `externs` (runtime objects, one per import in
    order). Raises `LinkError`, or `Trap` from segment initialisation or the start
    function (earlier segments' writes then remain, as Wasm 2.0 specifies)."""
    imports = module.imports
    if len(externs) != len(imports):
        raise LinkError(f"the module has {len(imports)} imports, {len(externs)} were provided")
    inst = ModuleInstance(module, store)
    spaces = {"func": inst.funcs, "table": inst.tables, "memory": inst.memories,
              "global": inst.globals}
    for imp, ext in zip(imports, externs):
        match_import(module, imp, ext)
        spaces[imp.kind].append(ext)

    # Defined functions become objects on first use (lazy compilation's memory bound).
    inst.funcs = spaces["func"] = FuncSpace(inst, inst.funcs)
    for tt in module.tables:
        inst.tables.append(TableInstance(tt, None, store.max_table_elements))
    for mt in module.memories:
        inst.memories.append(MemoryInstance(mt, store.max_memory_pages))
    for g in module.globals:
        inst.globals.append(GlobalInstance(g.type, eval_const(inst, g.init)))
    for seg in module.elems:
        inst.elems.append(ElemInstance(seg.elem_type, [eval_const(inst, e) for e in seg.items]))
    data = module.data
    for seg in module.datas:
        inst.datas.append(DataInstance(bytes(data[seg.start : seg.end])))

    for exp in module.exports:
        ext = spaces[exp.kind][exp.index]
        inst.exports[exp.name] = ext
        inst.export_list.append((exp.name, ext))
    store.instances.append(inst)

    for seg, elem in zip(module.elems, inst.elems):
        if seg.mode == "active":
            offset = eval_const(inst, seg.offset)
            inst.tables[seg.table].init(offset, elem, 0, len(elem))
            elem.drop()
        elif seg.mode == "declarative":
            elem.drop()
    for seg, dat in zip(module.datas, inst.datas):
        if seg.mode == "active":
            offset = eval_const(inst, seg.offset)
            inst.memories[seg.memory].init(offset, dat, 0, len(dat))
            dat.drop()

    if module.start is not None:
        store.call(inst.funcs[module.start], [])
    return inst


__all__ = ["instantiate", "eval_const", "match_import"]
