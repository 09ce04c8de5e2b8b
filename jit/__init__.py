"""deadeye.jit: native handlers for the bytecode ISA, generated with llvmlite.

- `llvmgen`: one LLVM function per ISA op (from the table's layouts and `ir.numerics`
  templates), ending in a `musttail` call to the next handler; dispatch modes `direct`,
  `indirect` and `loop` (`generate(mode, triple)`, `native_ops()`).
- `compiler`: optimizes and compiles a mode's handler module once, caches the object code
  on disk, loads it with `add_object_file` (`load(mode, cache_dir)`, `emit_assembly(mode,
  triple, cpu)`, `timings`).
- `native`: `NativeExecutor(provider, dispatch=..., cache_dir=...)`, the executor seam
  (`call(store, func, args)`) that runs a `CompiledCode` natively and services the
  statuses the handlers return (traps, host calls, growth, slow ops, fuel, stack limits,
  interrupts); globals, table sizes, call_indirect and memory 0's bulk ops stay native.

Engine factory for the public API (`Config(engine="native")`), given the pipeline's
bytecode provider: `NativeExecutor(provide, dispatch=config.dispatch,
cache_dir=config.cache_dir)`.
"""
