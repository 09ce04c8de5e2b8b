"""A tiny, slow, obviously-correct executor of bytecode for tests.

`RefMachine` implements the `semantics.Machine` interface over a plain register file (a list
of 64-bit slots; a v128 is split over two slots exactly as the calling convention says) and
the runtime's own memory/table/global objects. `run` executes a straight-line or branching
sequence of ops; `execute` runs one op given by name and operands (through the encoder and
decoder, so the encoding is exercised as well).

Lowering tests use it to check that an IR pattern and the bytecode emitted for it agree on
random inputs: evaluate the IR op with `ir.numerics`, run the bytecode here, compare slots.
Calls run through `call_function`: host functions (`callable(store, args)`) are called with
the machine as the store; anything else goes to the `on_call` hook given to the machine.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from deadeye.ir.errors import Trap, WasmError
from deadeye.ir.types import ValType
from deadeye.interp.memory import MemoryInstance, TableInstance
from deadeye.interp.runtime import GlobalInstance

from .encoding import ConstPool, decode, encode

MASK64 = (1 << 64) - 1


def make_memory(pages: int = 1, max_pages: int | None = None) -> MemoryInstance:
    return MemoryInstance(SimpleNamespace(limits=SimpleNamespace(min=pages, max=max_pages)))


def make_table(size: int, elem: ValType = ValType.FUNCREF, max_size: int | None = None,
               init: Any = None) -> TableInstance:
    return TableInstance(SimpleNamespace(elem=elem, limits=SimpleNamespace(min=size, max=max_size)),
                         init)


def make_global(valtype: ValType, value: Any, mutable: bool = True) -> GlobalInstance:
    return GlobalInstance(SimpleNamespace(valtype=valtype, mutable=mutable), value)


class RefMachine:
    """Machine state for the reference semantics (see `semantics.Machine`)."""

    def __init__(self, nslots: int = 64, *, memories=(), tables=(), globals=(), datas=(),
                 elems=(), funcs=(), types=(), pool: ConstPool | list = (), fuel: int | None = None,
                 on_call: Callable[[Any, list], list] | None = None):
        self.regs: list = [0] * nslots
        self.memories = list(memories)
        self.tables = list(tables)
        self.globals = list(globals)
        self.datas = list(datas)
        self.elems = list(elems)
        self.funcs = list(funcs)
        self.types = list(types)
        self.pool_values = pool.values if isinstance(pool, ConstPool) else list(pool)
        self.fuel = fuel
        self.on_call = on_call
        self.pc = 0
        self.next_pc = 0
        self.returned = False
        self.calls: list[tuple[Any, list]] = []  # every call made, for tests to inspect

    # -- registers --------------------------------------------------------------------------
    def _slot(self, r: int) -> int:
        if not 0 <= r < len(self.regs):
            raise WasmError(f"register r{r} outside the frame of {len(self.regs)} slots")
        return r

    def reg(self, r: int) -> Any:
        return self.regs[self._slot(r)]

    def set_reg(self, r: int, v: Any) -> None:
        if type(v) is int and not 0 <= v <= MASK64:
            raise WasmError(f"value {v:#x} written to r{r} is not a 64-bit pattern")
        self.regs[self._slot(r)] = v

    def v128(self, r: int) -> int:
        lo, hi = self.reg(r), self.reg(r + 1)
        if type(lo) is not int or type(hi) is not int:
            raise WasmError(f"v{r} holds a reference")
        return lo | hi << 64

    def set_v128(self, r: int, v: int) -> None:
        self._slot(r + 1)
        self.set_reg(r, v & MASK64)
        self.set_reg(r + 1, v >> 64)

    def pool(self, i: int) -> int:
        if not 0 <= i < len(self.pool_values):
            raise WasmError(f"constant pool index {i} out of range")
        return self.pool_values[i]

    # -- control ------------------------------------------------------------------------------
    def branch(self, offset: int) -> None:
        self.next_pc = self.pc + offset

    def finish(self) -> None:
        self.returned = True

    def trap(self, message: str) -> None:
        raise Trap(message)

    def consume_fuel(self, n: int) -> None:
        if self.fuel is None:
            return
        if n > self.fuel:
            self.fuel = 0
            raise Trap("all fuel consumed")
        self.fuel -= n

    # -- instance state -----------------------------------------------------------------------
    def _get(self, items: list, i: int, what: str):
        if not 0 <= i < len(items):
            raise WasmError(f"{what} index {i} out of range")
        return items[i]

    def memory(self, i):
        return self._get(self.memories, i, "memory")

    def data(self, i):
        return self._get(self.datas, i, "data")

    def table(self, i):
        return self._get(self.tables, i, "table")

    def elem(self, i):
        return self._get(self.elems, i, "elem")

    def global_(self, i):
        return self._get(self.globals, i, "global")

    def function(self, i):
        return self._get(self.funcs, i, "function")

    def sig(self, i):
        return self._get(self.types, i, "type")

    def call_function(self, f, args: list) -> list:
        self.calls.append((f, list(args)))
        fn = getattr(f, "callable", None)
        if fn is not None:
            return list(fn(self, list(args)) or [])
        if self.on_call is None:
            raise WasmError(f"the reference machine cannot run {f!r}")
        return list(self.on_call(f, list(args)))


def step(m: RefMachine, code, pc: int) -> int:
    """Execute the op at `pc`; the pc of the next op to run."""
    row, values, nxt = decode(code, pc)
    m.pc, m.next_pc = pc, nxt
    row.execute(m, values)
    return m.next_pc


def run(m: RefMachine, code, start: int = 0, end: int | None = None,
        max_steps: int = 1_000_000) -> int:
    """Run from `start` until control leaves [start, end), a return op finishes the frame,
    or a trap propagates. Returns the pc where execution stopped."""
    end = len(code) if end is None else end
    pc = start
    for _ in range(max_steps):
        if m.returned or not start <= pc < end:
            return pc
        pc = step(m, code, pc)
    raise WasmError(f"reference execution exceeded {max_steps} steps")


def execute(m: RefMachine, name: str, *operands, pool: ConstPool | None = None) -> None:
    """Run one op given by name (encoded and decoded first). With `pool`, an immediate that
    needs the pool goes there and the machine sees the pool's entries."""
    code = encode(name, *operands, pool=pool)
    if pool is not None:
        m.pool_values = pool.values
    step(m, code, 0)
