"""The spec-script runner's execution backend (the protocol in `deadeye.wast`) built on the
public API, so `deadeye wast --engine interp` runs scripts exactly as an embedder would.

Only engines whose executor is registered (`deadeye.api.available_engines()`) become
runner engines: `sync_engines()` adds them to `deadeye.wast.ENGINES` (and makes the first
of interp/native/ir the default engine when the runner has none). It runs when this
module is imported (by `import deadeye`) and whenever `register_executor` is called.

Values cross as the runtime's bits (`Func.call_bits`), so NaN payloads and v128 values
are exact; externrefs (the runner's `HostRef` objects) pass through unchanged."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from deadeye import api
from deadeye.ir.errors import LinkError
from deadeye.ir.types import ValType

__all__ = ["ApiBackend", "backend_factory", "sync_engines", "SPECTEST_PRINTS"]

# The spectest host functions: name -> parameter types (none has results).
SPECTEST_PRINTS = {
    "print": (),
    "print_i32": (ValType.I32,),
    "print_i64": (ValType.I64,),
    "print_f32": (ValType.F32,),
    "print_f64": (ValType.F64,),
    "print_i32_f32": (ValType.I32, ValType.F32),
    "print_f64_f64": (ValType.F64, ValType.F64),
}
SPECTEST_GLOBALS = {
    "global_i32": (ValType.I32, 666),
    "global_i64": (ValType.I64, 666),
    "global_f32": (ValType.F32, 666.6),
    "global_f64": (ValType.F64, 666.6),
}


# Config fields every backend of this process starts from (`deadeye wast -O2` sets
# "opt_level").
CONFIG_DEFAULTS: dict[str, Any] = {}


class ApiBackend:
    """One per script: an engine and a store shared by the script's modules. Instances
    (and the spectest module) are represented by their exports mapping."""

    def __init__(self, engine: str, features: Any = None, config: Mapping[str, Any] = {}):
        config = api.Config(engine=engine, **{**CONFIG_DEFAULTS, **config})
        if features is not None:  # the script's proposals (deadeye.frontend.module.Features)
            for f in dataclasses.fields(features):
                setattr(config, "wasm_" + f.name, bool(getattr(features, f.name)))
        self.engine = api.Engine(config)
        self.store = api.Store(self.engine)

    def compile(self, data: bytes) -> api.Module:
        return api.Module(self.engine, bytes(data))

    def instantiate(self, handle: api.Module, registered: dict[str, Mapping[str, Any]]) -> Mapping:
        linker = api.Linker(self.engine)
        linker.allow_shadowing = True  # a module may import the same item twice
        for imp in handle.imports:
            provider = registered.get(imp.module)
            item = None if provider is None else provider.get(imp.name)
            if item is None:
                raise LinkError(f"unknown import: `{imp.module}::{imp.name}` has not been defined")
            linker.define(self.store, imp.module, imp.name, item)
        return linker.instantiate(self.store, handle).exports(self.store)

    def invoke(self, instance: Mapping, name: str, args: list) -> list:
        func = instance.get(name)
        if not isinstance(func, api.Func):
            raise LinkError(f"no exported function {name!r}")
        results = func.call_bits(self.store, [v for _, v in args])
        return list(zip(func.type(self.store).results, results))

    def get(self, instance: Mapping, name: str) -> tuple:
        g = instance.get(name)
        if not isinstance(g, api.Global):
            raise LinkError(f"no exported global {name!r}")
        return g._rt.type.valtype, g._rt.value

    def spectest(self) -> dict:
        s = self.store
        out: dict = {}
        for name, params in SPECTEST_PRINTS.items():
            out[name] = api.Func(s, api.FuncType(params, ()), _ignore)
        for name, (ty, value) in SPECTEST_GLOBALS.items():
            out[name] = api.Global(s, api.GlobalType(ty, False), value)
        out["table"] = api.Table(s, api.TableType(ValType.FUNCREF, api.Limits(10, 20)), None)
        out["memory"] = api.Memory(s, api.MemoryType(api.Limits(1, 2)))
        return out


def _ignore(*args: Any) -> None:
    """spectest's print functions: accepted and discarded (output would drown reports)."""


_ADDED: set[str] = set()
_DEFAULT_ORDER = ("interp", "native", "ir")


def backend_factory(name: str, **config: Any):
    """A runner engine: deadeye engine `name` with these Config fields (over
    CONFIG_DEFAULTS), e.g. `backend_factory("native", dispatch="loop", opt_level=0)`."""

    def make(features: Any = None) -> ApiBackend:
        return ApiBackend(name, features, config)

    make.__name__ = f"ApiBackend[{name}]"
    return make


def sync_engines() -> None:
    """Make every available executor a runner engine (and drop ones no longer
    available)."""
    from deadeye import wast

    available = set(api.available_engines())
    for name in _ADDED - available:
        wast.ENGINES.pop(name, None)
        if wast.DEFAULT_ENGINE == name:
            wast.DEFAULT_ENGINE = None
    _ADDED.intersection_update(available)
    for name in sorted(available):
        if name not in wast.ENGINES or name in _ADDED:
            wast.ENGINES[name] = backend_factory(name)
            _ADDED.add(name)
    if wast.DEFAULT_ENGINE is None:
        wast.DEFAULT_ENGINE = next((n for n in _DEFAULT_ORDER if n in _ADDED), None)


sync_engines()
