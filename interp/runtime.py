"""The runtime: the store, function instances, globals, the shared call stack, fuel and the
executor seam.

Everything here works on bit-pattern values (see `deadeye.ir.types`). Memories, tables and
segment instances live in `memory.py` (re-exported here); instantiation is
`deadeye.interp.instantiate.instantiate(store, module, externs)`.

The executor seam
-----------------
The store runs no wasm code itself. It holds an *executor*: any object with

    call(store, func: WasmFunction, args: list[int]) -> list[int]

(the IR evaluator, the Python interpreter, the native one). The store calls it for start
functions, exported calls and calls from host code back into wasm. An executor:

- pushes a frame with `store.push_frame(func)` for every wasm function it enters and
  `store.pop_frame()` when the function returns normally (on an exception it may leave
  frames behind: the outermost `Store.call` truncates the stack back);
- before raising a `Trap`, or calling out (host functions, `memory.grow`...), stores the
  current instruction's byte offset in `frame.offset` so backtraces name it;
- calls host functions (and functions of unknown kind, e.g. from a table) through
  `store.call(func, args)`, which converts host exceptions into traps;
- charges fuel with `store.consume_fuel(n)`;
- finds the running instance with `store.current_instance()` (the side stack below).

Call stack (wasmi's design): frames do not each store their instance; a side stack of
`(height, instance)` entries gets a new entry only when a call crosses into another
instance, so intra-instance calls cost nothing extra and "which instance is running" is a
look at the top entry.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

from deadeye.ir.errors import ExitTrap, Trap, WasmError
from deadeye.ir.types import FuncType, ValType
from deadeye.interp.memory import (
    MAX_PAGES,
    MAX_TABLE_SIZE,
    PAGE_SIZE,
    DataInstance,
    ElemInstance,
    MemoryInstance,
    TableInstance,
)

if TYPE_CHECKING:  # the decoded module is data to us; the frontend is not imported
    from deadeye.frontend.module import Module

__all__ = [
    "PAGE_SIZE",
    "MAX_PAGES",
    "MAX_TABLE_SIZE",
    "Executor",
    "Store",
    "Frame",
    "ModuleInstance",
    "WasmFunction",
    "HostFunction",
    "GlobalInstance",
    "MemoryInstance",
    "TableInstance",
    "ElemInstance",
    "DataInstance",
    "value_mask",
    "check_value",
]

T = TypeVar("T")

DEFAULT_MAX_CALL_DEPTH = 10_000

_BITS = {ValType.I32: 32, ValType.I64: 64, ValType.F32: 32, ValType.F64: 64, ValType.V128: 128}


def value_mask(t: ValType) -> int | None:
    """The all-ones mask of a numeric/vector type, None for reference types."""
    bits = _BITS.get(t)
    return None if bits is None else (1 << bits) - 1


def check_value(t: ValType, v: Any) -> bool:
    """Whether `v` is a well-formed runtime value of type `t` (bit pattern in range, or a
    reference of the right kind)."""
    bits = _BITS.get(t)
    if bits is not None:
        return type(v) is int and v >= 0 and v >> bits == 0
    if v is None:
        return True
    if t == ValType.FUNCREF:
        return isinstance(v, (WasmFunction, HostFunction))
    return True  # an externref is any Python object


class Executor(Protocol):
    def call(self, store: "Store", func: "WasmFunction", args: list[int]) -> list[int]: ...


class Frame:
    """One wasm activation. `offset` is the byte offset (in the module) of the instruction
    being executed, kept current by the executor at traps and calls; `state` belongs to the
    executor (registers, pc...)."""

    __slots__ = ("func", "offset", "state")

    def __init__(self, func: "WasmFunction"):
        self.func = func
        self.offset = 0
        self.state: Any = None


class WasmFunction:
    """A function defined by a module instance. `defined_index` counts only defined
    functions (the position in `module.func_types`); `index` is in the module's function
    index space. `code` is a slot for the executor's compiled form (lazily filled)."""

    __slots__ = ("instance", "defined_index", "type", "code", "_name")

    def __init__(self, instance: "ModuleInstance", defined_index: int, type: FuncType):
        self.instance = instance
        self.defined_index = defined_index
        self.type = type
        self.code: Any = None
        self._name: str | None = None

    @property
    def index(self) -> int:
        return self.instance.module.num_imported_funcs + self.defined_index

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self.instance.module.func_name(self.index)
        return self._name

    def __repr__(self) -> str:
        return f"<WasmFunction {self.name} {self.type}>"


class HostFunction:
    """A function implemented in Python at the bit level: `callable(store, args)` gets the
    argument bit patterns and returns a sequence of result bit patterns (checked against
    `type`). The public API wraps user callables into this shape."""

    __slots__ = ("type", "callable", "name")

    def __init__(self, type: FuncType, callable: Callable[["Store", list], Any], name: str = "host"):
        self.type = type
        self.callable = callable
        self.name = name

    def __repr__(self) -> str:
        return f"<HostFunction {self.name} {self.type}>"


class GlobalInstance:
    """`type` has `.valtype` and `.mutable`; `value` is a bit pattern or a reference."""

    __slots__ = ("type", "value")

    def __init__(self, type: Any, value: Any):
        if not check_value(type.valtype, value):
            raise WasmError(f"global initial value {value!r} is not a {type.valtype}")
        self.type = type
        self.value = value

    def set(self, value: Any) -> None:
        """Host-side write: checks mutability and the value (wasm code, already validated,
        assigns `value` directly)."""
        if not self.type.mutable:
            raise WasmError("cannot set an immutable global")
        if not check_value(self.type.valtype, value):
            raise WasmError(f"value {value!r} is not a {self.type.valtype}")
        self.value = value


class FuncSpace(dict):
    """An instance's function index space, as a sequence (`funcs[i]`, `len`, iteration,
    `append`), whose defined functions become `WasmFunction` objects only when first
    looked up: a module of 20,000 functions of which a program calls ten costs ten
    objects, not 20,000 (lazy compilation's memory bound: see DESIGN.md).

    A dict subclass so that `funcs[i]`, on the executors' call paths, stays a C-level
    lookup once the function exists; `__missing__` makes it on the first lookup (and
    keeps it: a function's identity matters to tables and `ref.func`)."""

    __slots__ = ("_inst", "_first_defined", "_len")

    def __init__(self, inst: "ModuleInstance", imports: list):
        super().__init__(enumerate(imports))
        self._inst = inst
        self._first_defined = len(imports)
        self._len = len(imports) + len(inst.module.func_types)

    def __missing__(self, index: Any) -> "WasmFunction":
        if type(index) is not int:  # (a slice never gets here: it is unhashable)
            raise TypeError(f"function indices are integers, not {type(index).__name__}")
        if index < 0 and index + self._len >= 0:
            return self[index + self._len]
        if not self._first_defined <= index < self._len:
            raise IndexError(f"function index {index} out of range")
        module = self._inst.module
        defined = index - self._first_defined
        f = WasmFunction(self._inst, defined, module.types[module.func_types[defined]])
        dict.__setitem__(self, index, f)
        return f

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        return (self[i] for i in range(self._len))

    def __contains__(self, func: Any) -> bool:
        return any(f is func for f in self)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, (list, tuple, FuncSpace)) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<FuncSpace {self._len} functions, {dict.__len__(self)} made>"

    def append(self, func: Any) -> None:
        """Add a function after the others (tools that build instances by hand)."""
        dict.__setitem__(self, self._len, func)
        self._len += 1

    def extend(self, funcs: Any) -> None:
        for f in funcs:
            self.append(f)

    def index(self, func: Any) -> int:
        for i, f in enumerate(self):
            if f is func:
                return i
        raise ValueError("function not in this instance")


def indirect_callee(inst: "ModuleInstance", type_index: int, table_index: int, i: int):
    """The function `call_indirect` (type `type_index`, table `table_index`) calls at
    element `i`, or the Trap the spec gives. Types compare structurally: functions of other
    modules match."""
    elements = inst.tables[table_index].elements
    if i >= len(elements):
        raise Trap("undefined element")
    f = elements[i]
    if f is None:
        raise Trap("uninitialized element")
    want = inst.types[type_index]
    if f.type is not want and f.type != want:
        raise Trap("indirect call type mismatch")
    return f


class ModuleInstance:
    """The runtime side of an instantiated module: its index spaces (imports first) and
    exports (name -> runtime extern)."""

    __slots__ = ("module", "store", "types", "funcs", "tables", "memories", "globals",
                 "elems", "datas", "exports", "export_list", "executor_state", "__weakref__")

    def __init__(self, module: "Module", store: "Store"):
        self.module = module
        self.store = store
        self.types: list[FuncType] = list(module.types)
        self.funcs: list[WasmFunction | HostFunction] = []
        self.tables: list[TableInstance] = []
        self.memories: list[MemoryInstance] = []
        self.globals: list[GlobalInstance] = []
        self.elems: list[ElemInstance] = []
        self.datas: list[DataInstance] = []
        self.exports: dict[str, Any] = {}
        self.export_list: list[tuple[str, Any]] = []
        # What executors keep per instance (executor -> state): it dies with the instance.
        self.executor_state: dict[Any, Any] = {}

    @property
    def name(self) -> str | None:
        return self.module.names.module


class Store:
    """Owns every instance and the state shared by executions: the call stack, fuel,
    limits and the embedder's host data.

    - `executor`: runs wasm functions (see the module docstring); may be None for stores
      that only hold host objects — calling wasm then raises `WasmError`.
    - `max_call_depth`: wasm frames allowed before `Trap("call stack exhausted")`.
    - `max_memory_pages`, `max_table_elements`: store-wide growth limits on top of the
      declared maximums (growth past them fails like a declared max: -1).
    - fuel: disabled (None) unless `consume_fuel=True`; `set_fuel`/`get_fuel`.
    - interrupt (epoch-style): `interrupt()`, callable from any thread, only sets a flag.
      Executors poll `store.interrupted` (a plain attribute: one load) at block entries
      or loop headers and, when it is set, `raise store.take_interrupt()` — a
      `Trap("interrupted")` with the backtrace; taking it clears the flag, so the store
      runs again afterwards. An interrupt requested while no wasm runs stops the next
      call at its first poll. Native code polls `interrupt_cell()` (a ctypes byte whose
      address it can load from; `interrupt()` sets it to 1, taking the trap clears it).
    """

    def __init__(
        self,
        executor: Executor | None = None,
        *,
        max_call_depth: int = DEFAULT_MAX_CALL_DEPTH,
        max_memory_pages: int = MAX_PAGES,
        max_table_elements: int = 10_000_000,
        consume_fuel: bool = False,
        host_data: Any = None,
        lock: Any = None,
    ):
        if max_call_depth < 1:
            raise ValueError("max_call_depth must be at least 1")
        self.executor = executor
        # Held while wasm runs: executors keep per-engine state (register stacks, native
        # activation buffers), so stores sharing an executor pass one lock (re-entrant:
        # host functions may call back into wasm).
        self.lock = threading.RLock() if lock is None else lock
        self.max_call_depth = max_call_depth
        self.max_memory_pages = min(max_memory_pages, MAX_PAGES)
        self.max_table_elements = min(max_table_elements, MAX_TABLE_SIZE)
        self.fuel: int | None = 0 if consume_fuel else None
        self._host_data = host_data
        self.instances: list[ModuleInstance] = []
        self.frames: list[Frame] = []
        self.instance_stack: list[tuple[int, ModuleInstance]] = []
        self.interrupted = False
        self._interrupt_cell: Any = None

    # -- interrupt ------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Ask running wasm code to stop with `Trap("interrupted")` (thread-safe: one
        attribute store, then the executor's next poll sees it)."""
        self.interrupted = True
        cell = self._interrupt_cell
        if cell is not None:
            cell.value = 1

    def interrupt_cell(self) -> Any:
        """A `ctypes.c_uint8` mirroring the flag, for native executors to poll
        (`ctypes.addressof(cell)`); created on first request."""
        if self._interrupt_cell is None:
            import ctypes

            self._interrupt_cell = ctypes.c_uint8(1 if self.interrupted else 0)
        return self._interrupt_cell

    def take_interrupt(self) -> Trap:
        """Clear a pending interrupt and return its trap (the executor raises it after
        making `frame.offset` current)."""
        self.interrupted = False
        if self._interrupt_cell is not None:
            self._interrupt_cell.value = 0
        return self.trap("interrupted")

    # -- host data (one typed accessor: executors never see the embedder's type) ------
    def host_data(self, expected: type[T]) -> T:
        """The embedder's data, checked to be an instance of `expected`."""
        data = self._host_data
        if not isinstance(data, expected):
            raise TypeError(f"store host data is {type(data).__name__}, not {expected.__name__}")
        return data

    def set_host_data(self, data: Any) -> None:
        self._host_data = data

    # -- fuel -------------------------------------------------------------------------
    @property
    def fuel_enabled(self) -> bool:
        return self.fuel is not None

    def set_fuel(self, fuel: int) -> None:
        if self.fuel is None:
            raise WasmError("fuel is not configured in this store")
        if type(fuel) is not int or fuel < 0:
            raise ValueError("fuel must be a non-negative int")
        self.fuel = fuel

    def get_fuel(self) -> int:
        if self.fuel is None:
            raise WasmError("fuel is not configured in this store")
        return self.fuel

    def consume_fuel(self, amount: int) -> None:
        """Charge `amount` units; traps (leaving 0) when not enough remain. A no-op when
        fuel is disabled."""
        fuel = self.fuel
        if fuel is None:
            return
        if amount > fuel:
            self.fuel = 0
            raise self.trap("all fuel consumed")
        self.fuel = fuel - amount

    # -- call stack ---------------------------------------------------------------------
    def push_frame(self, func: WasmFunction) -> Frame:
        frames = self.frames
        if len(frames) >= self.max_call_depth:
            raise self.trap("call stack exhausted")
        inst = func.instance
        stack = self.instance_stack
        if not stack or stack[-1][1] is not inst:
            stack.append((len(frames), inst))
        frame = Frame(func)
        frames.append(frame)
        return frame

    def pop_frame(self) -> None:
        frames = self.frames
        frames.pop()
        stack = self.instance_stack
        if stack and stack[-1][0] == len(frames):
            stack.pop()

    def current_instance(self) -> ModuleInstance | None:
        """The instance whose code is running (None outside wasm)."""
        return self.instance_stack[-1][1] if self.instance_stack else None

    @property
    def depth(self) -> int:
        return len(self.frames)

    def backtrace(self) -> list[tuple[str, int, int]]:
        """The wasm frames, innermost first, as (func name, func index, offset)."""
        return [(f.func.name, f.func.index, f.offset) for f in reversed(self.frames)]

    def trap(self, message: str) -> Trap:
        """A Trap carrying the current backtrace (raise it)."""
        return Trap(message, self.backtrace())

    def _unwind(self, height: int) -> None:
        del self.frames[height:]
        stack = self.instance_stack
        while stack and stack[-1][0] >= height:
            stack.pop()

    # -- calls ------------------------------------------------------------------------
    def call(self, func: WasmFunction | HostFunction, args: list) -> list:
        """Call any function with bit-pattern arguments; returns the result list.

        The entry point for embedders, start functions, host-to-wasm calls, and executors
        calling host functions. Argument count and values are checked (the embedder's
        inputs are untrusted). Traps get the backtrace of the frames live when they were
        raised; host exceptions become traps with the original as `__cause__`; `ExitTrap`
        passes through unchanged."""
        ty = func.type
        if len(args) != len(ty.params):
            raise WasmError(f"{func.name} expects {len(ty.params)} arguments, got {len(args)}")
        for t, v in zip(ty.params, args):
            if not check_value(t, v):
                raise WasmError(f"argument {v!r} is not a {t} value")
        with self.lock:
            return self._call(func, list(args))

    def call_from_wasm(self, func: WasmFunction | HostFunction, args: list) -> list:
        """`call` for an executor calling an import or another instance's function: the
        arguments come from validated code (no checks) and the store's lock is already
        held. `args` is a fresh list the callee may keep."""
        if type(func) is HostFunction:
            return self._call_host(func, args)
        return self._call(func, args)

    def _call(self, func: WasmFunction | HostFunction, args: list) -> list:
        height = len(self.frames)
        try:
            if isinstance(func, HostFunction):
                results = self._call_host(func, args)
            elif isinstance(func, WasmFunction):
                if self.executor is None:
                    raise WasmError("this store has no executor to run wasm code")
                results = self.executor.call(self, func, args)
            else:
                raise WasmError(f"{func!r} is not a function")
        except Trap as t:
            if not t.frames:
                t.frames = self.backtrace()
            raise
        except RecursionError:
            # Host -> wasm -> host recursion uses the Python stack; treat its end like
            # the wasm stack's.
            raise self.trap("call stack exhausted") from None
        finally:
            self._unwind(height)
        return results

    def _call_host(self, func: HostFunction, args: list) -> list:
        """Run a host function: its traps get the current backtrace, its other exceptions
        (but `ExitTrap`) become traps, its results are checked."""
        try:
            results = func.callable(self, args)
        except Trap as t:
            if not t.frames:
                t.frames = self.backtrace()
            raise
        except ExitTrap:
            raise
        except RecursionError:  # host -> wasm -> host recursion reached Python's limit
            raise self.trap("call stack exhausted") from None
        except Exception as e:
            raise self.trap(f"host function `{func.name}` raised {type(e).__name__}: {e}") from e
        rtys = func.type.results
        if not rtys and results is None:  # the common void host call
            return []
        results = [] if results is None else list(results)
        if len(results) != len(rtys):
            raise self.trap(
                f"host function `{func.name}` returned {len(results)} values, expected {len(rtys)}")
        for t, v in zip(rtys, results):
            if not check_value(t, v):
                raise self.trap(f"host function `{func.name}` returned {v!r}, not a {t}")
        return results
