"""The compile pipeline: from a decoded module's function to what an executor runs.

Stages, per function, lazily on its first call: (validate, when the module was decoded
lazily) -> lift to SSA IR -> optimize -> lower to bytecode. Results are cached per
(module, function), so every instance of a module, in every store, shares them.

The "ir" engine (`Config(engine="ir")`) is the IR evaluator fed by this pipeline:
`ir_executor(config)` is its factory in the API's engine registry. The "interp" engine is
the bytecode interpreter: `interp_executor(config)`; its provider lowers a function into
the module's `CompiledCode` (one per `Mode`: opt level, NaN mode, strict fuel) on the
function's first call; "native" runs the same bytecode.

With `Config.cache_dir`, the first request for a mode loads the whole module's code from
the compile cache, or compiles every function at once and stores it (`deadeye.cache`).
With `Config.consume_fuel`, the mode is strict-fuel (see `mode_of`)."""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

from deadeye.cache import CodeCache, Mode
from deadeye.frontend.lift import ModuleLifter, lift_function
from deadeye.interp.interpreter import Interpreter
from deadeye.interp.ireval import IREvaluator
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.runtime import WasmFunction
from deadeye.ir.errors import ValidationError, WasmError
from deadeye.ir.function import Function
from deadeye.opt.nan_canon import canonicalize_nans

__all__ = ["ModulePipeline", "pipeline_for", "ir_function", "ir_executor", "interp_executor",
           "native_executor", "mode_of"]


def mode_of(config: Any) -> Mode:
    """The code-changing settings of `config`. With fuel on, the optimizer merges a block
    into its predecessor only where the earlier charge cannot be observed (strict fuel),
    so a run that runs out of fuel part-way stops at the same point at every opt level
    and on every engine (fuel is charged per wasm instruction, per block on entry)."""
    level = int(getattr(config, "opt_level", 0) or 0)
    strict = bool(getattr(config, "strict_fuel", False)  # set by deadeye.bisect
                  or getattr(config, "consume_fuel", False))
    return Mode(level, bool(getattr(config, "nan_canonicalization", False)),
                strict and bool(level))


# The compiler keeps process-wide state (generated rule matchers, the pass registry,
# per-module caches), so compilation runs one function at a time whatever thread asks;
# it is Python work under the GIL anyway.
_COMPILE_LOCK = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _COMPILE_LOCK:
            return method(*args, **kwargs)
    return locked


class ModulePipeline:
    """The per-module cache of compiled stages (thread-safe: see `_COMPILE_LOCK`)."""

    def __init__(self, module: Any):
        self.lifter = ModuleLifter(module)
        self._optimized: dict[tuple[int, int, bool], Function] = {}
        self._bytecode: dict[Mode, CompiledCode] = {}

    @_serialized
    def bytecode(self, defined_index: int, opt_level: int = 0,
                 nan_canonicalization: bool = False, strict_fuel: bool = False,
                 cache_dir: str | os.PathLike | None = None) -> CompiledCode:
        """The module's CompiledCode for (opt level, NaN mode, fuel strictness), with
        defined function `defined_index` lowered into it (lifted, optimized and lowered on
        first request). `strict_fuel`: see `opt.manager` (fuel-consuming engines and the
        bisector need it). `cache_dir`: the compile cache (`deadeye.cache`): the code of
        the whole module is loaded from it, or compiled at once and stored there."""
        mode = Mode(opt_level, nan_canonicalization, strict_fuel and bool(opt_level))
        code = self._bytecode.get(mode)
        if code is None:
            code = self._bytecode[mode] = self._first_code(mode, cache_dir)
        if not code.is_compiled(defined_index):
            self._compile(code, defined_index, mode)
        return code

    @_serialized
    def compile_all(self, mode: Mode, stats: Any = None) -> CompiledCode:
        """The module's code in `mode` with every function compiled (`stats`: a
        `lower.compile.LowerStats` counting the functions compiled now)."""
        code = self._bytecode.get(mode)
        if code is None:
            code = self._bytecode[mode] = CompiledCode(len(self.lifter.module.func_types))
        for i in range(code.num_funcs):
            if not code.is_compiled(i):
                self._compile(code, i, mode, stats)
        return code

    @_serialized
    def install(self, mode: Mode, code: CompiledCode) -> None:
        """Use `code` (e.g. deserialized, see `deadeye.cache`) for `mode`."""
        if code.num_funcs != len(self.lifter.module.func_types):
            raise ValidationError("compiled code does not match the module's functions")
        self._bytecode[mode] = code

    def _first_code(self, mode: Mode, cache_dir: str | os.PathLike | None) -> CompiledCode:
        n = len(self.lifter.module.func_types)
        if cache_dir is None:
            return CompiledCode(n)
        cache = CodeCache(os.path.join(cache_dir, "code"))
        wasm = self.lifter.module.data
        code = cache.get(wasm, mode)
        if code is not None and code.num_funcs == n and code.compiled_count == n:
            return code
        code = self._bytecode[mode] = CompiledCode(n)
        try:
            self.compile_all(mode)
        except WasmError:  # a (lazily validated) invalid body: stay lazy, store nothing
            return code
        cache.put(wasm, mode, code)
        return code

    def _compile(self, code: CompiledCode, defined_index: int, mode: Mode,
                 stats: Any = None) -> None:
        """Lift, optimize and lower one function into `code`."""
        from deadeye.lower.compile import compile_function

        env = self.lifter.env
        try:
            # A fresh lift: the optimizer works in place, the "ir" engine's copy stays.
            func = lift_function(self.lifter.module, defined_index, env)
            if mode.opt_level:
                from deadeye.opt import optimize

                optimize(func, mode.opt_level, env=env,
                         nan_canonicalization=mode.nan_canonicalization,
                         strict_fuel=mode.strict_fuel)
            if mode.nan_canonicalization:
                canonicalize_nans(func)
            compile_function(func, env, code, defined_index, stats)
        except RecursionError:
            raise ValidationError("function body nested too deeply",
                                  func_index=defined_index) from None

    @_serialized
    def ir(self, defined_index: int) -> Function:
        """The IR of defined function `defined_index` (lifted, and validated first if
        the module was decoded lazily), cached."""
        try:
            return self.lifter.function(defined_index)
        except RecursionError:
            raise ValidationError("function body nested too deeply",
                                  func_index=defined_index) from None

    @_serialized
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


def pipeline_for(module: Any) -> ModulePipeline:
    """The module's pipeline, kept on the module itself (a global table would keep every
    module alive: the pipeline refers to its module)."""
    p = module.derived.get("pipeline")
    if p is None:
        p = module.derived["pipeline"] = ModulePipeline(module)
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
    mode = mode_of(config)

    def provide(func: WasmFunction) -> Function:
        return optimized_function(func.instance.module, func.defined_index, *mode)

    # NaN canonicalization is in the IR (the pass), not in the evaluator.
    return IREvaluator(provide)


def _bytecode_provider(config: Any):
    """provider(func) -> (CompiledCode, defined index) for the bytecode engines."""
    import deadeye.lower.compile  # noqa: F401  (without lowering the engine is unavailable)

    mode = mode_of(config)
    cache_dir = getattr(config, "cache_dir", None)

    def provide(func: WasmFunction) -> tuple[CompiledCode, int]:
        i = func.defined_index
        return pipeline_for(func.instance.module).bytecode(i, *mode, cache_dir=cache_dir), i

    return provide


def interp_executor(config: Any = None, *, stats: bool = False) -> Interpreter:
    """The executor factory of the "interp" engine (`stats=True`: the instrumented mode
    that counts executed ops and op pairs)."""
    # The bytecode is lowered from canonicalizing IR: no interpreter-side NaN mode.
    return Interpreter(_bytecode_provider(config), stats=stats)


def native_executor(config: Any = None):
    """The executor factory of the "native" engine: the same bytecode as "interp", run by
    the llvmlite handlers (`deadeye.jit`) in `config.dispatch` mode."""
    from deadeye.jit.native import NativeExecutor

    cache_dir = getattr(config, "cache_dir", None)
    return NativeExecutor(_bytecode_provider(config),
                          dispatch=getattr(config, "dispatch", None) or "direct",
                          cache_dir=os.path.join(cache_dir, "jit") if cache_dir else None)
