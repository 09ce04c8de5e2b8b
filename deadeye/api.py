"""The public API, shaped like wasmtime-py so that code written for it runs with
`import deadeye as wasmtime` (for the calls both provide).

Values at the boundary are converted as wasmtime-py does: i32/i64 are Python ints (both
the signed and the unsigned range are accepted, results come back signed), f32/f64 are
Python floats, funcref is a `Func` or None, externref any Python object (None = null),
v128 a non-negative int below 2**128 (lane 0 in the low bits). Results: None for no
result, the value for one, a list for several.

For tools that need exact bits (NaN payloads, the spec runner) `Func.call_bits(store,
args)` takes and returns the runtime's representation: ints holding the unsigned bit
patterns (floats as their IEEE bits), runtime function objects / Python objects / None
for references.

Executors: `Config.engine` names one; the factory comes from `_EXECUTORS` below (engine
name -> factory(config) -> executor). An executor author registers theirs by adding one
line to that dict (or calling `register_executor`).

Differences from wasmtime-py: `FuncType.params/results` are tuples; objects are not tied
to the store that created them (a store only matters for calls, fuel and host data);
memories expose `buffer(store)` (a memoryview, valid until the memory next grows) instead
of raw pointers.
"""

from __future__ import annotations

import importlib
import math
import os
import struct
import threading
import weakref
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator, Mapping, Sequence

from deadeye.frontend import module as _fm
from deadeye.interp import runtime as _rt
from deadeye.interp.instantiate import instantiate as _instantiate
from deadeye.ir.errors import (
    DecodeError,
    ExitTrap,
    LinkError,
    Trap,
    ValidationError,
    WasmError,
)
from deadeye.ir.types import FuncType as _FuncType
from deadeye.ir.types import ValType as _ValType

# wasmtime-py spells the base error WasmtimeError.
WasmtimeError = WasmError

# -- executor registry ---------------------------------------------------------------

ENGINE_NAMES = ("ir", "interp", "native")


def _lazy(module: str, attr: str) -> Callable[["Config"], Any]:
    """A factory importing `module.attr(config)` on first use (keeps `import deadeye`
    light)."""

    def factory(config: "Config") -> Any:
        return getattr(importlib.import_module(module), attr)(config)

    return factory


# Engine name -> factory(config) -> executor (an object with
# `call(store, func, args) -> results`, see deadeye.interp.runtime). Register an engine
# with one line here, e.g.  "interp": _lazy("deadeye.interp.interpreter", "Interpreter"),
_EXECUTORS: dict[str, Callable[["Config"], Any]] = {
    "ir": _lazy("deadeye.pipeline", "ir_executor"),
    "interp": _lazy("deadeye.pipeline", "interp_executor"),
    "native": _lazy("deadeye.pipeline", "native_executor"),
}


def register_executor(name: str, factory: Callable[["Config"], Any] | None) -> None:
    """Make `Config(engine=name)` use executors made by `factory(config)` (None removes
    the engine). The spec-script runner's engines follow."""
    if factory is None:
        _EXECUTORS.pop(name, None)
    else:
        _EXECUTORS[name] = factory
    from deadeye.wast_backend import sync_engines

    sync_engines()


def available_engines() -> list[str]:
    """Every registered engine, including ones added with `register_executor`."""
    return sorted(_EXECUTORS)


def builtin_engines() -> list[str]:
    """deadeye's own engines (what tools check by default; plug-ins are opt-in)."""
    return [e for e in ENGINE_NAMES if e in _EXECUTORS]


# -- configuration ---------------------------------------------------------------------

_CHOICES = {
    "dispatch": ("direct", "indirect", "loop"),
    "opt_level": (0, 1, 2),
}


@dataclass
class Config:
    """Engine configuration (DESIGN.md). Fields can be set after construction, as with
    wasmtime-py's `config.consume_fuel = True`; values are checked on every assignment.

    `lazy`: validate function bodies on first call instead of at load (decoder mode
    "lazy"); the default validates everything when the Module is created. Compilation
    (lift -> opt -> lower) is lazy on every engine whatever this says: a function is
    compiled on its first call, and until then costs a few compact-array entries (about
    25 bytes of Python heap per function for a Module plus an Instance, see
    tests/test_lazy.py). `cache_dir`: a directory for the compile cache (`deadeye.cache`:
    a module's bytecode, keyed by the module, the code-changing settings and the compiler
    build; a miss compiles the whole module once) and the native engine's handler
    objects. With `consume_fuel`, the optimizer keeps every fuel charge observable where
    Wasm charges it, so the fuel used (and where a run runs out) is the same at every
    opt level and on every engine. The `wasm_*`
    fields select the post-2.0 proposals; a module using a disabled one is rejected. The
    Wasm 2.0 features (`wasm_simd`, `wasm_bulk_memory`, `wasm_reference_types`,
    `wasm_multi_value`) are always on: setting them to True is accepted (for code
    written for wasmtime-py), False raises ValueError. `max_memory_pages` and
    `max_table_elements` cap every memory and table of the engine's stores (growth past
    them fails as past a declared maximum)."""

    engine: str = "interp"
    dispatch: str = "direct"
    opt_level: int = 2
    nan_canonicalization: bool = False
    consume_fuel: bool = False
    max_call_depth: int = _rt.DEFAULT_MAX_CALL_DEPTH
    lazy: bool = False
    cache_dir: str | None = None
    max_memory_pages: int = _rt.MAX_PAGES
    max_table_elements: int = 10_000_000
    wasm_tail_call: bool = True
    wasm_extended_const: bool = True
    wasm_multi_memory: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ALWAYS_ON:
            if value is not True:
                raise ValueError(f"{name} is part of Wasm 2.0 and cannot be disabled")
            return
        _check_config_field(name, value)
        object.__setattr__(self, name, value)


_ALWAYS_ON = frozenset({"wasm_simd", "wasm_bulk_memory", "wasm_reference_types", "wasm_multi_value"})


_CONFIG_TYPES = {f.name: f.type for f in fields(Config)}


def _check_config_field(name: str, value: Any) -> None:
    kind = _CONFIG_TYPES.get(name)
    if kind is None:
        raise AttributeError(f"Config has no option {name!r}")
    if name in _CHOICES:
        if type(value) is bool or value not in _CHOICES[name]:
            raise ValueError(f"Config.{name} must be one of {_CHOICES[name]}, not {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"Config.{name} must be a bool, not {value!r}")
    elif kind == "int":
        if type(value) is not int or value < 1:
            raise ValueError(f"Config.{name} must be a positive int, not {value!r}")
    elif name == "engine":
        if not isinstance(value, str):
            raise TypeError(f"Config.engine must be a str, not {value!r}")
    elif name == "cache_dir":
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"Config.cache_dir must be a path or None, not {value!r}")


class Engine:
    """Holds a configuration and the executor it selects."""

    def __init__(self, config: Config | None = None):
        config = Config() if config is None else config
        if not isinstance(config, Config):
            raise TypeError("Engine expects a deadeye.Config")
        # A private copy: later changes to the caller's Config do not reach this engine.
        self.config = Config(**{f.name: getattr(config, f.name) for f in fields(Config)})
        factory = _EXECUTORS.get(config.engine)
        if factory is None:
            have = ", ".join(available_engines()) or "none"
            raise ValueError(
                f"engine {config.engine!r} is not available in this build (available: {have})")
        try:
            self.executor = factory(self.config)
        except ImportError as e:
            raise ValueError(f"engine {config.engine!r} is not available in this build: {e}") from e
        self._stores: "weakref.WeakSet[_rt.Store]" = weakref.WeakSet()
        # One executor serves every store of the engine: stores on different threads
        # take turns running wasm (see `deadeye.interp.runtime.Store`).
        self._lock = threading.RLock()

    def interrupt(self) -> None:
        """Interrupt every store of this engine (see `Store.interrupt`)."""
        for s in list(self._stores):
            s.interrupt()


class Store:
    """All instances and objects of one program, plus fuel and the embedder's data."""

    def __init__(self, engine: Engine | None = None, data: Any = None):
        engine = Engine() if engine is None else engine
        c = engine.config
        self.engine = engine
        self._rt = _rt.Store(
            engine.executor,
            max_call_depth=c.max_call_depth,
            max_memory_pages=c.max_memory_pages,
            max_table_elements=c.max_table_elements,
            consume_fuel=c.consume_fuel,
            host_data=data,
            lock=engine._lock,
        )
        engine._stores.add(self._rt)

    def interrupt(self) -> None:
        """Stop the wasm code running in this store with `Trap("interrupted")`; safe to
        call from another thread (it only sets a flag the executor polls at block entries).
        If nothing runs, the next call is interrupted at its first poll."""
        self._rt.interrupt()

    def data(self) -> Any:
        return self._rt._host_data

    def host_data(self, expected: type) -> Any:
        """The data given at creation, checked to be an `expected` (TypeError if not)."""
        return self._rt.host_data(expected)

    def set_fuel(self, fuel: int) -> None:
        """Set the remaining fuel (needs `Config.consume_fuel`)."""
        self._rt.set_fuel(fuel)

    def get_fuel(self) -> int:
        return self._rt.get_fuel()

    def gc(self) -> None:
        """Present for wasmtime-py compatibility: Python's GC owns externrefs."""

    def set_wasi(self, wasi: Any) -> None:
        """Give this store's WASI imports (`Linker.define_wasi`) a `WasiConfig`."""
        from deadeye.wasi import attach

        attach(self._rt, wasi)


def _rt_store(store: Any) -> _rt.Store:
    if isinstance(store, Store):
        return store._rt
    if isinstance(store, Caller):
        return store._store
    raise TypeError(f"expected a deadeye.Store or Caller, not {type(store).__name__}")


# -- types ---------------------------------------------------------------------------


class _WrapsMeta(type):
    """`isinstance(x, ValType)` holds for the IR's types, which these factories return."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls._wraps)


class ValType(metaclass=_WrapsMeta):
    """`ValType.i32()` ... return `deadeye.ir.types.ValType` members (equal to each other,
    `str()` gives "i32")."""

    _wraps = _ValType
    I32, I64, F32, F64, V128 = _ValType.I32, _ValType.I64, _ValType.F32, _ValType.F64, _ValType.V128
    FUNCREF, EXTERNREF = _ValType.FUNCREF, _ValType.EXTERNREF

    def __new__(cls, *args: Any) -> Any:
        raise TypeError("use ValType.i32(), ValType.f64(), ValType.funcref() ...")

    @staticmethod
    def i32() -> _ValType:
        return _ValType.I32

    @staticmethod
    def i64() -> _ValType:
        return _ValType.I64

    @staticmethod
    def f32() -> _ValType:
        return _ValType.F32

    @staticmethod
    def f64() -> _ValType:
        return _ValType.F64

    @staticmethod
    def v128() -> _ValType:
        return _ValType.V128

    @staticmethod
    def funcref() -> _ValType:
        return _ValType.FUNCREF

    @staticmethod
    def externref() -> _ValType:
        return _ValType.EXTERNREF


class FuncType(metaclass=_WrapsMeta):
    """`FuncType(params, results)` builds a `deadeye.ir.types.FuncType` (tuples)."""

    _wraps = _FuncType

    def __new__(cls, params: Sequence[_ValType], results: Sequence[_ValType]) -> _FuncType:  # type: ignore[misc]
        for t in (*params, *results):
            if not isinstance(t, _ValType):
                raise TypeError(f"FuncType expects ValTypes, not {t!r}")
        return _FuncType(tuple(params), tuple(results))


Limits = _fm.Limits
MemoryType = _fm.MemoryType


class TableType(_fm.TableType):
    """`TableType(element, limits)`; `.element` as in wasmtime-py (also `.elem`)."""

    __slots__ = ()

    @property
    def element(self) -> _ValType:
        return self.elem


class GlobalType(_fm.GlobalType):
    """`GlobalType(valtype, mutable)`; `.content` as in wasmtime-py (also `.valtype`)."""

    __slots__ = ()

    @property
    def content(self) -> _ValType:
        return self.valtype


@dataclass(frozen=True)
class ImportType:
    module: str
    name: str
    type: Any


@dataclass(frozen=True)
class ExportType:
    name: str
    type: Any


def _api_type(t: Any) -> Any:
    """Frontend/runtime type objects as the API's (with wasmtime-py's accessor names)."""
    if isinstance(t, _fm.TableType) and not isinstance(t, TableType):
        return TableType(t.elem, t.limits)
    if isinstance(t, _fm.GlobalType) and not isinstance(t, GlobalType):
        return GlobalType(t.valtype, t.mutable)
    return t


# -- values --------------------------------------------------------------------------

_INT_BITS = {_ValType.I32: 32, _ValType.I64: 64, _ValType.V128: 128}
_FLOAT_FMT = {_ValType.F32: "<f", _ValType.F64: "<d"}


def _float_to_bits(fmt: str, v: float) -> int:
    try:
        return int.from_bytes(struct.pack(fmt, v), "little")
    except OverflowError:  # beyond f32's range: rounds to infinity, as a C cast does
        return int.from_bytes(struct.pack(fmt, math.copysign(math.inf, v)), "little")


def _to_bits(ty: _ValType, v: Any) -> Any:
    """A Python value (or Val) of type `ty` as the runtime's bits."""
    if isinstance(v, Val):
        if v.type != ty:
            raise TypeError(f"expected a {ty} value, got a Val of type {v.type}")
        v = v._val
    bits = _INT_BITS.get(ty)
    if bits is not None:
        if type(v) is bool or not isinstance(v, int):
            raise TypeError(f"expected an int for {ty}, got {type(v).__name__}")
        lo = -(1 << (bits - 1))
        if not lo <= v < (1 << bits):
            raise ValueError(f"{v} is out of range for {ty}")
        return v & ((1 << bits) - 1)
    fmt = _FLOAT_FMT.get(ty)
    if fmt is not None:
        if type(v) is bool or not isinstance(v, (int, float)):
            raise TypeError(f"expected a float for {ty}, got {type(v).__name__}")
        try:
            v = float(v)
        except OverflowError:
            raise ValueError(f"{v} is out of range for {ty}") from None
        return _float_to_bits(fmt, v)
    if ty == _ValType.FUNCREF:
        if v is None:
            return None
        if isinstance(v, Func):
            return v._rt
        raise TypeError(f"expected a Func or None for funcref, got {type(v).__name__}")
    return v  # externref: any object; None is null


def _from_bits(ty: _ValType, b: Any) -> Any:
    """The runtime's bits of type `ty` as a Python value (ints signed)."""
    bits = _INT_BITS.get(ty)
    if bits is not None:
        if ty == _ValType.V128:
            return b
        return b - (1 << bits) if b >> (bits - 1) else b
    fmt = _FLOAT_FMT.get(ty)
    if fmt is not None:
        return struct.unpack(fmt, b.to_bytes(struct.calcsize(fmt), "little"))[0]
    if ty == _ValType.FUNCREF:
        return None if b is None else Func._wrap(b)
    return b


class Val:
    """A typed value, as wasmtime-py's `Val.i32(5)`, `Val.f64(1.5)`, `Val.externref(x)`.
    Integers are kept signed; floats rounded to their type."""

    __slots__ = ("_type", "_val")

    def __init__(self, type: _ValType, value: Any):
        self._type = type
        self._val = _from_bits(type, _to_bits(type, value))

    @classmethod
    def i32(cls, v: int) -> "Val":
        return cls(_ValType.I32, v)

    @classmethod
    def i64(cls, v: int) -> "Val":
        return cls(_ValType.I64, v)

    @classmethod
    def f32(cls, v: float) -> "Val":
        return cls(_ValType.F32, v)

    @classmethod
    def f64(cls, v: float) -> "Val":
        return cls(_ValType.F64, v)

    @classmethod
    def v128(cls, v: int) -> "Val":
        return cls(_ValType.V128, v)

    @classmethod
    def funcref(cls, f: "Func | None") -> "Val":
        return cls(_ValType.FUNCREF, f)

    @classmethod
    def externref(cls, x: Any) -> "Val":
        return cls(_ValType.EXTERNREF, x)

    @classmethod
    def ref_null(cls, ty: _ValType) -> "Val":
        if ty not in (_ValType.FUNCREF, _ValType.EXTERNREF):
            raise WasmError(f"ref_null needs a reference type, not {ty}")
        return cls(ty, None)

    @property
    def type(self) -> _ValType:
        return self._type

    @property
    def value(self) -> Any:
        return self._val

    def _as(self, ty: _ValType) -> Any:
        return self._val if self._type == ty else None

    def as_i32(self) -> int | None:
        return self._as(_ValType.I32)

    def as_i64(self) -> int | None:
        return self._as(_ValType.I64)

    def as_f32(self) -> float | None:
        return self._as(_ValType.F32)

    def as_f64(self) -> float | None:
        return self._as(_ValType.F64)

    def as_funcref(self) -> "Func | None":
        return self._as(_ValType.FUNCREF)

    def as_externref(self) -> Any:
        return self._as(_ValType.EXTERNREF)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Val):
            return self._type == other._type and self._val == other._val
        return self._val == other

    def __hash__(self) -> int:
        return hash((self._type, self._val if self._type != _ValType.EXTERNREF else id(self._val)))

    def __repr__(self) -> str:
        return f"Val.{self._type}({self._val!r})"


def _pack_results(types: Sequence[_ValType], bits: Sequence[Any]) -> Any:
    vals = [_from_bits(t, b) for t, b in zip(types, bits)]
    if not vals:
        return None
    return vals[0] if len(vals) == 1 else vals


def _results_to_bits(types: Sequence[_ValType], out: Any) -> list:
    """A host function's return value (None / value / sequence) as result bits."""
    n = len(types)
    if n == 0:
        if out is not None and out != () and out != []:
            raise TypeError(f"the host function has no results but returned {out!r}")
        return []
    if n == 1:
        return [_to_bits(types[0], out)]
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise TypeError(f"the host function must return a tuple of {n} values, not {out!r}")
    return [_to_bits(t, v) for t, v in zip(types, out)]


# -- externs ---------------------------------------------------------------------------


class _Extern:
    """Common plumbing: `_rt` is the runtime object; wrappers are equal when they wrap
    the same one."""

    __slots__ = ("_rt",)

    @classmethod
    def _wrap(cls, obj: Any) -> Any:
        self = object.__new__(cls)
        self._rt = obj
        return self

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Extern) and other._rt is self._rt

    def __hash__(self) -> int:
        return hash(id(self._rt))


class Caller:
    """Given first to host functions defined with `access_caller=True`. It is usable as
    a store (`memory.read(caller, ...)`); `get(name)` finds an export of the calling
    instance (None when called directly from Python)."""

    __slots__ = ("_store", "_instance")

    def __init__(self, store: _rt.Store):
        self._store = store
        self._instance = store.current_instance()

    def get(self, name: str) -> Any:
        if self._instance is None:
            return None
        ext = self._instance.exports.get(name)
        return None if ext is None else _wrap_extern(ext)

    def __getitem__(self, name: str) -> Any:
        ext = self.get(name)
        if ext is None:
            raise KeyError(f"failed to find export {name}")
        return ext

    def data(self) -> Any:
        return self._store._host_data


def _make_host(ty: _FuncType, fn: Callable, access_caller: bool) -> _rt.HostFunction:
    if not isinstance(ty, _FuncType):
        raise TypeError("expected a FuncType")
    if not callable(fn):
        raise TypeError("expected a callable")
    params, results = ty.params, ty.results

    if not params and not results and not access_caller:
        def host(store: _rt.Store, args: list) -> list:  # a void callback, e.g. a probe
            out = fn()
            return [] if out is None else _results_to_bits(results, out)
    else:
        def host(store: _rt.Store, args: list) -> list:
            vals = [_from_bits(t, a) for t, a in zip(params, args)]
            out = fn(Caller(store), *vals) if access_caller else fn(*vals)
            return _results_to_bits(results, out)

    return _rt.HostFunction(ty, host, name=getattr(fn, "__name__", "host"))


class Func(_Extern):
    """A function: host (`Func(store, ty, callable, access_caller=False)`) or exported
    from an instance. Call with `func(store, *args)` or `func.call(store, *args)`."""

    __slots__ = ()

    def __init__(self, store: Any, ty: _FuncType, func: Callable, access_caller: bool = False):
        _rt_store(store)
        self._rt = _make_host(ty, func, access_caller)

    def type(self, store: Any = None) -> _FuncType:
        return self._rt.type

    def __call__(self, store: Any, *params: Any) -> Any:
        ty = self._rt.type
        if len(params) != len(ty.params):
            raise WasmError(
                f"wrong number of parameters: given {len(params)}, expected {len(ty.params)}")
        bits = [_to_bits(t, v) for t, v in zip(ty.params, params)]
        return _pack_results(ty.results, _rt_store(store).call(self._rt, bits))

    call = __call__

    def call_bits(self, store: Any, args: Sequence[Any]) -> list:
        """Exact call: arguments and results in the runtime representation (unsigned int
        bit patterns, floats as IEEE bits, references as runtime objects)."""
        return _rt_store(store).call(self._rt, list(args))

    def __repr__(self) -> str:
        return f"<deadeye.Func {self._rt.name} {self._rt.type}>"


class Memory(_Extern):
    """A linear memory. `buffer(store)` is a zero-copy memoryview, valid until the
    memory next grows (take a fresh one after growing)."""

    __slots__ = ()

    def __init__(self, store: Any, ty: Any):
        rts = _rt_store(store)
        lim = ty.limits
        if lim.max is not None and lim.min > lim.max:
            raise WasmError("memory minimum exceeds its maximum")
        self._rt = _rt.MemoryInstance(ty, rts.max_memory_pages)

    def type(self, store: Any = None) -> Any:
        """The declared type (as wasmtime-py: growth does not change it)."""
        return MemoryType(self._rt.type.limits)

    def size(self, store: Any = None) -> int:
        return self._rt.pages

    def data_len(self, store: Any = None) -> int:
        return len(self._rt.data)

    def grow(self, store: Any, delta: int) -> int:
        """Grow by `delta` pages; returns the old size (raises WasmError if it cannot)."""
        if type(delta) is not int or delta < 0:
            raise WasmError("cannot grow memory by a negative or non-integer amount")
        old = self._rt.grow(delta)
        if old < 0:
            raise WasmError(f"failed to grow memory by {delta} pages")
        return old

    def buffer(self, store: Any = None) -> memoryview:
        return self._rt.view()

    def read(self, store: Any, start: int | None = 0, stop: int | None = None) -> bytearray:
        """A copy of bytes [start:stop) (slice semantics, as wasmtime-py)."""
        data = self._rt.data
        s, e, _ = slice(start, stop).indices(len(data))
        return bytearray(data[s:e]) if e > s else bytearray()

    def write(self, store: Any, value: bytes | bytearray, start: int | None = None) -> int:
        """Write `value` at `start` (negative counts from the end); IndexError when it
        does not fit. Returns the number of bytes written."""
        data = self._rt.data
        s = slice(start, None).indices(len(data))[0]
        if s >= len(data) or s + len(value) > len(data):
            raise IndexError("index out of range")
        data[s : s + len(value)] = value
        return len(value)


class Table(_Extern):
    __slots__ = ()

    def __init__(self, store: Any, ty: Any, init: Any):
        rts = _rt_store(store)
        lim = ty.limits
        if lim.max is not None and lim.min > lim.max:
            raise WasmError("table minimum exceeds its maximum")
        self._rt = _rt.TableInstance(ty, _to_bits(ty.elem, init), rts.max_table_elements)

    def type(self, store: Any = None) -> TableType:
        """The declared type (as wasmtime-py: growth does not change it)."""
        return _api_type(self._rt.type)

    def size(self, store: Any = None) -> int:
        return len(self._rt.elements)

    def get(self, store: Any, idx: int) -> Any:
        """The element (a Func, an externref's object) or None for null or out of
        bounds."""
        els = self._rt.elements
        if not 0 <= idx < len(els):
            return None
        return _from_bits(self._rt.type.elem, els[idx])

    def set(self, store: Any, idx: int, val: Any) -> None:
        bits = _to_bits(self._rt.type.elem, val)
        if not 0 <= idx < len(self._rt.elements):
            raise WasmError("table element index out of bounds")
        self._rt.elements[idx] = bits

    def grow(self, store: Any, amt: int, init: Any) -> int:
        if type(amt) is not int or amt < 0:
            raise WasmError("cannot grow a table by a negative or non-integer amount")
        old = self._rt.grow(amt, _to_bits(self._rt.type.elem, init))
        if old < 0:
            raise WasmError(f"failed to grow table by {amt} elements")
        return old


class Global(_Extern):
    __slots__ = ()

    def __init__(self, store: Any, ty: Any, val: Any):
        _rt_store(store)
        self._rt = _rt.GlobalInstance(ty, _to_bits(ty.valtype, val))

    def type(self, store: Any = None) -> GlobalType:
        return _api_type(self._rt.type)

    def value(self, store: Any = None) -> Any:
        return _from_bits(self._rt.type.valtype, self._rt.value)

    def set_value(self, store: Any, val: Any) -> None:
        self._rt.set(_to_bits(self._rt.type.valtype, val))


_WRAPPERS = (
    ((_rt.WasmFunction, _rt.HostFunction), Func),
    (_rt.MemoryInstance, Memory),
    (_rt.TableInstance, Table),
    (_rt.GlobalInstance, Global),
)


def _wrap_extern(obj: Any) -> Any:
    for rt_types, cls in _WRAPPERS:
        if isinstance(obj, rt_types):
            return cls._wrap(obj)
    raise TypeError(f"{obj!r} is not an extern")


def _unwrap_extern(item: Any) -> Any:
    if isinstance(item, _Extern):
        return item._rt
    raise TypeError(f"expected a Func, Memory, Table or Global, not {type(item).__name__}")


# -- modules and instances ------------------------------------------------------------


def _binary(wasm: Any) -> bytes:
    """The bytes of a binary module; a str is WAT text (bytes are always taken as a
    binary, as the wasmtime C API does, so malformed binaries are reported as such)."""
    if isinstance(wasm, str):
        from deadeye.wat import wat_to_wasm

        return wat_to_wasm(wasm)
    if isinstance(wasm, (bytes, bytearray, memoryview)):
        return bytes(wasm)
    raise TypeError(f"expected bytes or str, not {type(wasm).__name__}")


def _decode(engine: Engine, data: bytes, validate: str) -> Any:
    c = engine.config
    features = _fm.Features(
        tail_call=c.wasm_tail_call,
        extended_const=c.wasm_extended_const,
        multi_memory=c.wasm_multi_memory,
    )
    try:
        return _fm.parse_module(data, validate=validate, features=features)
    except (RecursionError, MemoryError):
        raise DecodeError("module too deeply nested or too large") from None


class Module:
    """A decoded (and validated) module."""

    def __init__(self, engine: Engine, wasm: bytes | str):
        if not isinstance(engine, Engine):
            raise TypeError("expected a deadeye.Engine")
        self.engine = engine
        self._module = _decode(engine, _binary(wasm), "lazy" if engine.config.lazy else "eager")

    @classmethod
    def from_file(cls, engine: Engine, path: str | os.PathLike) -> "Module":
        """Load a .wasm, or a .wat (text) file."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise WasmError(f"cannot read {os.fspath(path)!r}: {e.strerror}") from e
        if os.fspath(path).endswith(".wat") and not data.startswith(b"\0asm"):
            from deadeye.wat import wat_to_wasm

            try:
                data = wat_to_wasm(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise DecodeError("a .wat file must be UTF-8 text") from None
        return cls(engine, data)

    @classmethod
    def validate(cls, engine: Engine, wasm: bytes) -> None:
        """Raise DecodeError/ValidationError unless `wasm` is a valid module."""
        _decode(engine, _binary(wasm), "eager")

    def serialize(self) -> bytes:
        """The module with its code compiled (every function) for this engine's
        configuration, as `deadeye compile -o` writes it (format: `deadeye.cache`)."""
        from deadeye import cache, pipeline

        mode = pipeline.mode_of(self.engine.config)
        code = pipeline.pipeline_for(self._module).compile_all(mode)
        return cache.dump(code, mode, self._module.data, embed=True)

    @classmethod
    def deserialize(cls, engine: Engine, encoded: bytes | bytearray) -> "Module":
        """A module from `serialize()` or `deadeye compile -o` output, its functions not
        compiled again. DecodeError for a corrupt, truncated or stale file (another
        deadeye build or ISA version); WasmError when it was compiled for other settings
        (opt level, NaN canonicalization, fuel) than the engine's."""
        from deadeye import cache, pipeline

        art = cache.load(bytes(encoded))
        mode = pipeline.mode_of(engine.config)
        if art.mode != mode:
            raise WasmError(f"the code was compiled with {cache.describe(art.mode)}, the "
                            f"engine runs with {cache.describe(mode)}")
        self = cls(engine, art.wasm)
        pipeline.pipeline_for(self._module).install(mode, art.code)
        return self

    @classmethod
    def deserialize_file(cls, engine: Engine, path: str | os.PathLike) -> "Module":
        with open(path, "rb") as f:
            return cls.deserialize(engine, f.read())

    @classmethod
    def _from_decoded(cls, engine: Engine, module: Any) -> "Module":
        """Wrap an already decoded `deadeye.frontend.module.Module`."""
        self = object.__new__(cls)
        self.engine = engine
        self._module = module
        return self

    @property
    def name(self) -> str | None:
        return self._module.names.module

    @property
    def imports(self) -> list[ImportType]:
        m = self._module
        out = []
        for imp in m.imports:
            ty = m.types[imp.desc] if imp.kind == "func" else _api_type(imp.desc)
            out.append(ImportType(imp.module, imp.name, ty))
        return out

    @property
    def exports(self) -> list[ExportType]:
        m = self._module
        getters = {"func": m.func_type, "table": m.table_type, "memory": m.memory_type,
                   "global": m.global_type}
        return [ExportType(e.name, _api_type(getters[e.kind](e.index))) for e in m.exports]


class InstanceExports(Mapping):
    """An instance's exports by name (`exports["f"]`) and by position (`exports[0]`,
    `by_index`)."""

    def __init__(self, inst: _rt.ModuleInstance):
        self._seq = tuple((name, _wrap_extern(ext)) for name, ext in inst.export_list)
        self._map = dict(self._seq)

    @property
    def by_index(self) -> tuple:
        return tuple(ext for _, ext in self._seq)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int) and not isinstance(key, bool):
            return self._seq[key][1]
        return self._map[key]

    def __len__(self) -> int:
        return len(self._seq)

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)


class Instance:
    """`Instance(store, module, imports)`: imports are externs in the module's import
    order."""

    def __init__(self, store: Any, module: Module, imports: Sequence[Any]):
        if not isinstance(module, Module):
            raise TypeError("expected a deadeye.Module")
        externs = [_unwrap_extern(x) for x in imports]
        self._rt = _instantiate(_rt_store(store), module._module, externs)

    @classmethod
    def _from_rt(cls, inst: _rt.ModuleInstance) -> "Instance":
        self = object.__new__(cls)
        self._rt = inst
        return self

    def exports(self, store: Any = None) -> InstanceExports:
        return InstanceExports(self._rt)


class Linker:
    """Resolves imports by (module, name)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._defs: dict[tuple[str, str], Any] = {}
        self._shadowing = False

    @property
    def allow_shadowing(self) -> bool:
        return self._shadowing

    @allow_shadowing.setter
    def allow_shadowing(self, allow: bool) -> None:
        self._shadowing = bool(allow)

    def _define(self, module: str, name: str, ext: Any) -> None:
        key = (module, name)
        if key in self._defs and not self._shadowing:
            raise WasmError(f"import of `{module}::{name}` defined twice")
        self._defs[key] = ext

    def define(self, store: Any, module: str, name: str, item: Any) -> None:
        self._define(module, name, _unwrap_extern(item))

    def define_func(self, module: str, name: str, ty: _FuncType, func: Callable,
                    access_caller: bool = False) -> None:
        self._define(module, name, _make_host(ty, func, access_caller))

    def define_instance(self, store: Any, name: str, instance: Instance) -> None:
        for export, ext in instance._rt.export_list:
            self._define(name, export, ext)

    def define_module(self, store: Any, name: str, module: Module) -> None:
        """Instantiate `module` now and define its exports under `name`."""
        self.define_instance(store, name, self.instantiate(store, module))

    def define_wasi(self) -> None:
        """Define every `wasi_snapshot_preview1` import (see `Store.set_wasi`)."""
        from deadeye.wasi import MODULE, host_functions

        for name, fn in host_functions().items():
            self._define(MODULE, name, fn)

    def get(self, store: Any, module: str, name: str) -> Any:
        ext = self._defs.get((module, name))
        if ext is None:
            raise WasmError(f"`{module}::{name}` is not defined")
        return _wrap_extern(ext)

    def instantiate(self, store: Any, module: Module) -> Instance:
        externs = []
        for imp in module._module.imports:
            ext = self._defs.get((imp.module, imp.name))
            if ext is None:
                raise LinkError(f"unknown import: `{imp.module}::{imp.name}` has not been defined")
            externs.append(ext)
        return Instance._from_rt(_instantiate(_rt_store(store), module._module, externs))


def wat2wasm(text: str | bytes) -> bytes:
    """wasmtime-py's helper: WAT text to a binary module."""
    from deadeye.wat import wat_to_wasm

    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("WAT text must be UTF-8") from None
    return wat_to_wasm(text)


__all__ = [
    "Caller", "Config", "DecodeError", "Engine", "ExitTrap", "ExportType", "Func", "FuncType",
    "Global", "GlobalType", "ImportType", "Instance", "InstanceExports", "LinkError", "Limits",
    "Linker", "Memory", "MemoryType", "Module", "Store", "Table", "TableType", "Trap", "Val",
    "ValType", "ValidationError", "WasmError", "WasmtimeError", "available_engines",
    "register_executor", "wat2wasm", "ENGINE_NAMES",
]
