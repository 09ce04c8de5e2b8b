"""Helpers for the lowering tests: lower a module's functions, and run lowered bytecode
with the ISA's reference executor (`interp/isa/refexec.py`) as an engine of the public
API ("lower-ref"), independent of the production interpreter."""

from __future__ import annotations

import deadeye
from deadeye.api import register_executor
from deadeye.frontend.lift import ModuleLifter
from deadeye.frontend.module import parse_module
from deadeye.interp.isa.encoding import decode_all
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.refexec import RefMachine, run as ref_run
from deadeye.interp.isa.semantics import read_values, write_values
from deadeye.interp.runtime import WasmFunction
from deadeye.ir.errors import Trap
from deadeye.lower.compile import LowerStats, compile_function


def lower_module(data: bytes, stats: LowerStats | None = None, opt_level: int = 0):
    """(module, CompiledCode) with every defined function lowered; checks that the code
    of each function decodes op by op up to its end."""
    module = parse_module(data)
    lifter = ModuleLifter(module)
    code = CompiledCode(len(module.func_types))
    for i in range(len(module.func_types)):
        func = lifter.function(i) if not opt_level else None
        if opt_level:
            from deadeye.frontend.lift import lift_function
            from deadeye.opt import optimize

            func = optimize(lift_function(module, i, lifter.env), opt_level, env=lifter.env)
        compile_function(func, lifter.env, code, i, stats)
        last = None
        for pc, row, _ in decode_all(code.code, code.entry[i], code.end[i]):
            last = pc + len(row.prefix)
        assert last is None or last <= code.end[i]
    return module, code


class RefExecutor:
    """Runs lowered bytecode on `RefMachine`s, one machine per activation (calls recurse in
    Python: only for small test programs)."""

    def __init__(self, max_depth: int = 200):
        self.codes: dict[int, CompiledCode] = {}
        self.lifters: dict[int, ModuleLifter] = {}
        self.max_depth = max_depth
        self.depth = 0

    def code_for(self, func: WasmFunction) -> CompiledCode:
        module = func.instance.module
        key = id(module)
        if key not in self.codes:
            self.codes[key] = CompiledCode(len(module.func_types))
            self.lifters[key] = ModuleLifter(module)
        code = self.codes[key]
        if not code.is_compiled(func.defined_index):
            lifter = self.lifters[key]
            compile_function(lifter.function(func.defined_index), lifter.env, code,
                             func.defined_index)
        return code

    def call(self, store, func, args):
        if not isinstance(func, WasmFunction):
            return list(func.callable(store, list(args)) or [])
        if self.depth >= self.max_depth:
            raise Trap("call stack exhausted")
        code = self.code_for(func)
        i = func.defined_index
        inst = func.instance
        m = RefMachine(code.frame_size[i] + 2 * len(func.type.results) + 4,
                       memories=inst.memories, tables=inst.tables, globals=inst.globals,
                       datas=inst.datas, elems=inst.elems, funcs=inst.funcs, types=inst.types,
                       pool=code.pool, fuel=None,
                       on_call=lambda f, a: self.call(store, f, a))
        m.regs.extend([0] * 8)
        write_values(m, 0, func.type.params, list(args))
        self.depth += 1
        try:
            m.call_function = lambda f, a: self.call(store, f, a)  # hosts get the store
            ref_run(m, code.code, code.entry[i], code.end[i], max_steps=2_000_000)
        finally:
            self.depth -= 1
        if not m.returned:
            raise AssertionError("bytecode ran off the end of its function")
        return read_values(m, 0, func.type.results)


def use_ref_engine() -> None:
    register_executor("lower-ref", lambda config: RefExecutor())


def instantiate(wat: str, engine: str = "interp", imports=()):
    eng = deadeye.Engine(deadeye.Config(engine=engine))
    module = deadeye.Module(eng, wat)
    store = deadeye.Store(eng)
    inst = deadeye.Instance(store, module, list(imports))
    return store, inst
