"""The compile pipeline: from a decoded module's function to what an executor runs.

Stages, per function, lazily on its first call: (validate, when the module was decoded
lazily) -> lift to SSA IR -> optimize -> lower to bytecode. Results are cached per
(module, function), so every instance of a module, in every store, shares them.

The "ir" engine (`Config(engine="ir")`) is the IR evaluator fed by this pipeline:
`ir_executor(config)` is its factory in the API's engine registry. The "interp" engine is
the bytecode interpreter: `interp_executor(config)`; its provider lowers a function into
the module's `CompiledCode` (one per opt level and NaN mode) on the function's first call."""

from __future__ import annotations

import weakref
from typing import Any

from deadeye.frontend.lift import ModuleLifter, lift_function
from deadeye.interp.interpreter import Interpreter
from deadeye.interp.ireval import IREvaluator
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.runtime import WasmFunction
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Function
from deadeye.opt.nan_canon import canonicalize_nans

__all__ = ["ModulePipeline", "pipeline_for", "ir_function", "ir_executor", "interp_executor",
           "native_executor"]


class ModulePipeline:
    """The per-module cache of compiled stages."""

    def __init__(self, module: Any):
        self.lifter = ModuleLifter(module)
        self._optimized: dict[tuple[int, int, bool], Function] = {}
        self._bytecode: dict[tuple[int, bool], CompiledCode] = {}

    def bytecode(self, defined_index: int, opt_level: int = 0,
                 nan_canonicalization: bool = False, strict_fuel: bool = False) -> CompiledCode:
        """The module's CompiledCode for (opt level, NaN mode, fuel strictness), with
        defined function `defined_index` lowered into it (lifted, optimized and lowered on
        first request). `strict_fuel`: see `opt.manager` (the bisector needs it)."""
        key = (opt_level, nan_canonicalization, strict_fuel and bool(opt_level))
        code = self._bytecode.get(key)
        if code is None:
            code = self._bytecode[key] = CompiledCode(len(self.lifter.module.func_types))
        if not code.is_compiled(defined_index):
            from deadeye.lower.compile import compile_function

            env = self.lifter.env
            try:
                # A fresh lift: the optimizer works in place, the "ir" engine's copy stays.
                func = lift_function(self.lifter.module, defined_index, env)
                if opt_level:
                    from deadeye.opt import optimize

                    optimize(func, opt_level, env=env,
                             nan_canonicalization=nan_canonicalization,
                             strict_fuel=strict_fuel)
                if nan_canonicalization:
                    canonicalize_nans(func)
                compile_function(func, env, code, defined_index)
            except RecursionError:
                raise ValidationError("function body nested too deeply",
                                      func_index=defined_index) from None
        return code

    def ir(self, defined_index: int) -> Function:
        """The IR of defined function `defined_index` (lifted, and validated first if
        the module was decoded lazily), cached."""
        try:
            return self.lifter.function(defined_index)
        except RecursionError:
            raise ValidationError("function body nested too deeply",
                                  func_index=defined_index) from None

    def optimized(self, defined_index: int, level: int, nan_canonicalization: bool = False,
                  strict_fuel: bool = False) -> Function:
        """The IR of defined function `defined_index` optimized at `level` (0: the lifted
        IR itself), cached. The optimizer works in place, so levels above 0 optimize a
        fresh lift and the level-0 IR stays as lifted. `nan_canonicalization` runs the
        NaN canonicalization pass (`opt.nan_canon`) after optimizing (on a fresh lift at
        level 0 too)."""
        if not level and not nan_canonicalization:
            return self.ir(defined_index)
        key = (defined_index, level, nan_canonicalization, strict_fuel and bool(level))
        func = self._optimized.get(key)
        if func is None:
            from deadeye.opt import optimize
            from deadeye.opt import rewrite  # noqa: F401  (registers the "rules" pass)

            self.ir(defined_index)  # validates (lazily decoded modules) and builds the env
            try:
                func = lift_function(self.lifter.module, defined_index, self.lifter.env)
                if level:
                    optimize(func, level, env=self.lifter.env,
                             nan_canonicalization=nan_canonicalization,
                             strict_fuel=strict_fuel)
                if nan_canonicalization:
                    canonicalize_nans(func)
            except RecursionError:
                raise ValidationError("function body nested too deeply",
                                      func_index=defined_index) from None
            self._optimized[key] = func
        return func


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


def optimized_function(module: Any, defined_index: int, level: int,
                       nan_canonicalization: bool = False, strict_fuel: bool = False) -> Function:
    """The (cached) IR of a module's defined function at an opt level."""
    return pipeline_for(module).optimized(defined_index, level, nan_canonicalization, strict_fuel)


def ir_executor(config: Any = None) -> IREvaluator:
    """The executor factory of the "ir" engine (optimizing at `config.opt_level`)."""
    canon = bool(getattr(config, "nan_canonicalization", False))
    level = int(getattr(config, "opt_level", 0) or 0)
    strict = bool(getattr(config, "strict_fuel", False))  # set by deadeye.bisect

    def provide(func: WasmFunction) -> Function:
        return optimized_function(func.instance.module, func.defined_index, level, canon, strict)

    # NaN canonicalization is in the IR (the pass), not in the evaluator.
    return IREvaluator(provide)


def interp_executor(config: Any = None, *, stats: bool = False) -> Interpreter:
    """The executor factory of the "interp" engine (`stats=True`: the instrumented mode
    that counts executed ops and op pairs)."""
    import deadeye.lower.compile  # noqa: F401  (without lowering the engine is unavailable)

    level = int(getattr(config, "opt_level", 0))
    canon = bool(getattr(config, "nan_canonicalization", False))
    strict = bool(getattr(config, "strict_fuel", False))  # set by deadeye.bisect

    def provide(func: WasmFunction) -> tuple[CompiledCode, int]:
        i = func.defined_index
        return pipeline_for(func.instance.module).bytecode(i, level, canon, strict), i

    # The bytecode is lowered from canonicalizing IR: no interpreter-side NaN mode.
    return Interpreter(provide, stats=stats)


def native_executor(config: Any = None):
    """The executor factory of the "native" engine: the same bytecode as "interp", run by
    the llvmlite handlers (`deadeye.jit`) in `config.dispatch` mode."""
    import os

    import deadeye.lower.compile  # noqa: F401  (without lowering the engine is unavailable)
    from deadeye.jit.native import NativeExecutor

    level = int(getattr(config, "opt_level", 0))
    canon = bool(getattr(config, "nan_canonicalization", False))
    strict = bool(getattr(config, "strict_fuel", False))
    cache_dir = getattr(config, "cache_dir", None)

    def provide(func: WasmFunction) -> tuple[CompiledCode, int]:
        i = func.defined_index
        return pipeline_for(func.instance.module).bytecode(i, level, canon, strict), i

    return NativeExecutor(provide, dispatch=getattr(config, "dispatch", None) or "direct",
                          cache_dir=os.path.join(cache_dir, "jit") if cache_dir else None)
