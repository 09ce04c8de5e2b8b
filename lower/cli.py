"""`deadeye disas` and `deadeye compile` (registered by `deadeye/cli.py`).

disas FILE [--func NAME|INDEX] [--stage wasm|ir|opt|bytecode] [-O N] [--dot FILE]
    prints one stage of each selected function: the decoded wasm instructions with their
    byte offsets, the lifted IR, the IR after the optimizer, or the bytecode disassembly
    (offsets, ops, registers, decoded immediates) with the frame size and constant pool.
    `--dot` writes the IR CFG (of the stage shown, ir or opt) as Graphviz DOT.
compile FILE [-O N] [--stats] [-o OUT] [--nan-canonicalization] [--fuel]
    lowers every defined function; `--stats` prints IR and bytecode counts, bytecode ops
    per wasm instruction and the average frame size; `-o` writes the module with its
    code (`deadeye.cache`). The command runs in `deadeye.cache.run_compile`.
"""

from __future__ import annotations

import argparse

from deadeye.ir.errors import ValidationError

STAGES = ("wasm", "ir", "opt", "bytecode")


def add_disas_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.wasm")
    p.add_argument("--func", dest="func_spec", metavar="NAME|INDEX",
                   help="one function: its name (name section or export) or function index")
    p.add_argument("--stage", choices=STAGES, default="bytecode")
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2), default=2,
                   help="optimization level of the opt and bytecode stages (default 2)")
    p.add_argument("--dot", metavar="FILE", help="write the IR CFG as Graphviz DOT")


def add_compile_arguments(p: argparse.ArgumentParser) -> None:
    """`deadeye compile`'s options (the command itself is `deadeye.cache.run_compile`:
    it writes artifacts through the compile pipeline, above this package)."""
    p.add_argument("file", metavar="FILE.wasm")
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2), default=2,
                   help="optimization level (default 2, as Config's)")
    p.add_argument("--stats", action="store_true", help="print lowering statistics")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the module and its compiled code (run it with `deadeye run FILE`)")
    p.add_argument("--nan-canonicalization", action="store_true",
                   help="compile for runs that canonicalize NaNs")
    p.add_argument("--fuel", action="store_true",
                   help="compile for fuel-metered runs (`deadeye run --fuel N`)")


def _optimizer():
    """`deadeye.opt.optimize`, or None while the optimizer is not available."""
    try:
        from deadeye.opt import optimize
    except ImportError:
        return None
    return optimize


def _load(path: str):
    from deadeye.cli import _read_input
    from deadeye.frontend.lift import ModuleLifter
    from deadeye.frontend.module import parse_module

    module = parse_module(_read_input(path), validate="eager")
    return module, ModuleLifter(module)


def _select(module, spec: str | None) -> list[int]:
    """Defined-function indices chosen by --func (all when absent)."""
    n_imp = module.num_imported_funcs
    if spec is None:
        return list(range(len(module.func_types)))
    if spec.isdigit():
        index = int(spec)
    else:
        found = [i for i in range(module.num_funcs) if module.func_name(i) == spec]
        found += [e.index for e in module.exports if e.kind == "func" and e.name == spec]
        if not found:
            raise ValidationError(f"no function named {spec!r}")
        index = found[0]
    if not n_imp <= index < module.num_funcs:
        raise ValidationError(f"function {spec} is not a defined function "
                              f"(defined functions are {n_imp}..{module.num_funcs - 1})")
    return [index - n_imp]


def _ir(lifter, module, i: int, level: int | None):
    from deadeye.frontend.lift import lift_function

    func = lift_function(module, i, lifter.env)
    if level:
        optimize = _optimizer()
        if optimize is None:
            return None
        optimize(func, level, env=lifter.env)
    return func


def run_disas(args: argparse.Namespace) -> int:
    from deadeye.frontend.decoder import decode_body
    from deadeye.interp.isa.disasm import disassemble
    from deadeye.interp.isa.program import CompiledCode
    from deadeye.ir.cfg import to_dot

    from .compile import compile_function

    module, lifter = _load(args.file)
    chosen = _select(module, args.func_spec)
    if args.stage == "opt" and _optimizer() is None:
        print("the opt stage is unavailable: the optimizer (deadeye.opt) is not installed")
        return 1
    code = CompiledCode(len(module.func_types))
    dots = []
    for i in chosen:
        fi = i + module.num_imported_funcs
        print(f";; function {fi} {module.func_name(fi)}: {module.func_type(fi)}")
        if args.stage == "wasm":
            local_types, instrs = decode_body(module, i)
            if local_types:
                print(f";; locals: {' '.join(map(str, local_types))}")
            for ins in instrs:
                imm = " ".join(map(str, ins.imm))
                print(f"{ins.offset:#08x}: {ins.op} {imm}".rstrip())
        else:
            level = args.opt_level if args.stage in ("opt", "bytecode") else 0
            func = _ir(lifter, module, i, level)
            if func is None:  # bytecode at -O>0 without the optimizer: say so, use -O0
                print(";; optimizer unavailable: bytecode of the unoptimized IR")
                func = _ir(lifter, module, i, 0)
            if args.dot:
                dots.append(to_dot(func))
            if args.stage in ("ir", "opt"):
                print(func)
            else:
                compile_function(func, lifter.env, code, i)
                start, end = code.entry[i], code.end[i]
                print(f";; frame size {code.frame_size[i]} slots, {end - start} bytes")
                for line in disassemble(code.code, start, end, pool=code.pool):
                    print(f"{int(line.split(':')[0], 16) - start:#06x}:{line.split(':', 1)[1]}")
        print()
    if args.dot:
        with open(args.dot, "w") as f:
            f.write("\n".join(dots))
    return 0
