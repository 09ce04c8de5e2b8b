"""deadeye.lower: instruction selection, register allocation and encoding.

Entry point: `deadeye.lower.compile.compile_function(func, env, code, index, stats=None)`
lowers one IR function into a module's `CompiledCode`. The stages:

- `isel.py`: IR -> `vcode.VFunc` (bytecode ops over virtual registers) through the rules
  in `rules/lower/*.isle` (compiled by `lower/dsl`);
- `regalloc.py`: liveness and linear-scan slot assignment, call windows;
- `moves.py`: parallel-move sequencing (cycles through a scratch slot);
- `emit.py`: layout, branch offsets, constant pool, srcmap, fuel;
- `coverage.py`: which (IR op, type) pairs the rules cover (`deadeye rules check`);
- `ruletest_domain.py`: the rules' domain for `deadeye rules test --rules lower`;
- `cli.py`: `deadeye disas` and `deadeye compile`.
"""
