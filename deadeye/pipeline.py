"""The compile pipeline: from a decoded module's function to what an executor runs.

Stages, per function, lazily on its first call: (validate, when the module was decoded
lazily) -> lift to SSA IR (-> later: optimize, lower to bytecode). Results are cached per
(module, function), so every instance of a module, in every store, shares them.

The "ir" engine (`Config(engine="ir")`) is the IR evaluator fed by this pipeline:
`ir_executor(config)` is its factory in the API's engine registry."""

from __future__ import annotations

import weakref
from typing import Any

from deadeye.frontend.lift import ModuleLifter
from deadeye.interp.ireval import IREvaluator
from deadeye.interp.runtime import WasmFunction
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Function

__all__ = ["ModulePipeline", "pipeline_for", "ir_function", "ir_executor"]


class ModulePipeline:
    """The per-module cache of compiled stages."""

    def __init__(self, module: Any):
        self.lifter = ModuleLifter(module)

    def ir(self, defined_index: int) -> Function:
        """The IR of defined function `defined_index` (lifted, and validated first if
        the module was decoded lazily), cached."""
        try:
            return self.lifter.function(defined_index)
        except RecursionError:
            raise ValidationError("function body nested too deeply",
                                  func_index=defined_index) from None


# Decoded modules are dataclasses (unhashable): key by identity, drop on collection.
_PIPELINES: dict[int, ModulePipeline] = {}


def pipeline_for(module: Any) -> ModulePipeline:
    key = id(module)
    p = _PIPELINES.get(key)
    if p is None:
        p = _PIPELINES[key] = ModulePipeline(module)
        weakref.finalize(module, _PIPELINES.pop, key, None)
    return p


def ir_function(module: Any, defined_index: int) -> Function:
    """The (cached) IR of a module's defined function."""
    return pipeline_for(module).ir(defined_index)


def _provide_ir(func: WasmFunction) -> Function:
    return ir_function(func.instance.module, func.defined_index)


def ir_executor(config: Any = None) -> IREvaluator:
    """The executor factory of the "ir" engine."""
    canon = bool(getattr(config, "nan_canonicalization", False))
    return IREvaluator(_provide_ir, nan_canonicalization=canon)
