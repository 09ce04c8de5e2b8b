"""The decoded shape of a Wasm module, shared by the validator, the lifter and the runtime.

Metadata is compact: function bodies stay as (start, end) byte offsets into the module's
bytes (`array('I')` columns: 12 bytes a function) until something needs them; only
module-level entities (types, imports, exports, segments...) become Python objects.

The decoder lives in `decoder.py` and the validator in `validator.py`; `parse_module`
below is the entry point everybody else uses."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Literal

from deadeye.ir.types import FuncType, ValType

ExternKind = Literal["func", "table", "memory", "global"]
SegmentMode = Literal["active", "passive", "declarative"]


@dataclass(frozen=True, slots=True)
class Limits:
    min: int
    max: int | None = None


@dataclass(frozen=True, slots=True)
class TableType:
    elem: ValType  # FUNCREF or EXTERNREF
    limits: Limits


@dataclass(frozen=True, slots=True)
class MemoryType:
    limits: Limits  # in 64 KiB pages


@dataclass(frozen=True, slots=True)
class GlobalType:
    valtype: ValType
    mutable: bool


@dataclass(frozen=True, slots=True)
class Instr:
    """One decoded instruction: `op` is its text name ("i32.add", "memory.load" forms are
    spelled as in the text format, e.g. "i32.load8_u"), `imm` its immediates (a tuple whose
    shape depends on the op; see `opcodes.py`), `offset` its byte offset in the module."""

    op: str
    imm: tuple
    offset: int


@dataclass(frozen=True, slots=True)
class ConstExpr:
    """A constant expression (global initialisers, segment offsets, element items),
    without its final `end`."""

    instrs: tuple[Instr, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Import:
    module: str
    name: str
    kind: ExternKind
    # FuncType index (int) for "func", TableType, MemoryType or GlobalType otherwise.
    desc: int | TableType | MemoryType | GlobalType


@dataclass(frozen=True, slots=True)
class Export:
    name: str
    kind: ExternKind
    index: int


@dataclass(frozen=True, slots=True)
class Global:
    type: GlobalType
    init: ConstExpr


@dataclass(frozen=True, slots=True)
class ElemSegment:
    mode: SegmentMode
    elem_type: ValType
    items: tuple[ConstExpr, ...]  # each `ref.func i`, `ref.null t` or `global.get g`
    table: int = 0  # active only
    offset: ConstExpr | None = None  # active only


@dataclass(frozen=True, slots=True)
class DataSegment:
    mode: SegmentMode  # "active" or "passive"
    start: int  # the bytes are module.data[start:end], no copy until instantiation
    end: int
    memory: int = 0  # active only
    offset: ConstExpr | None = None  # active only


@dataclass(frozen=True, slots=True)
class Features:
    """Proposals beyond Wasm 2.0 that the decoder and validator accept. All on by
    default; the spec's core tests predate them (e.g. a non-zero `memory.size` byte is
    malformed there but a memory index with multi-memory)."""

    tail_call: bool = True
    extended_const: bool = True
    multi_memory: bool = True


@dataclass(slots=True)
class Names:
    """The `name` custom section (kept for backtraces and disassembly)."""

    module: str | None = None
    funcs: dict[int, str] = field(default_factory=dict)
    locals: dict[int, dict[int, str]] = field(default_factory=dict)


class IndexSet:
    """A set of small non-negative ints kept as one flag byte each (the validated bodies:
    a byte a function, where a `set` costs ~60)."""

    __slots__ = ("_flags", "_count")

    def __init__(self, items=()):
        self._flags = bytearray()
        self._count = 0
        for i in items:
            self.add(i)

    def add(self, i: int) -> None:
        flags = self._flags
        if i >= len(flags):
            flags.extend(bytes(i + 1 - len(flags)))
        if not flags[i]:
            flags[i] = 1
            self._count += 1

    def __contains__(self, i: object) -> bool:
        return type(i) is int and 0 <= i < len(self._flags) and self._flags[i] != 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self):
        return (i for i, f in enumerate(self._flags) if f)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (IndexSet, set, frozenset)):
            return set(self) == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IndexSet({sorted(self)})"


@dataclass(slots=True, weakref_slot=True)  # weakref: per-module caches (deadeye.pipeline)
class Module:
    data: bytes  # the whole binary; bodies and data segments are slices of it
    types: list[FuncType] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    # Defined functions: type index, and the body's byte range (from the locals
    # declaration to just past the final `end`).
    func_types: array = field(default_factory=lambda: array("I"))
    body_start: array = field(default_factory=lambda: array("I"))
    body_end: array = field(default_factory=lambda: array("I"))
    tables: list[TableType] = field(default_factory=list)
    memories: list[MemoryType] = field(default_factory=list)
    globals: list[Global] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    start: int | None = None
    elems: list[ElemSegment] = field(default_factory=list)
    datas: list[DataSegment] = field(default_factory=list)
    data_count: int | None = None
    names: Names = field(default_factory=Names)
    customs: list[tuple[str, bytes]] = field(default_factory=list)
    # Index spaces count imports first; these are filled by the decoder.
    num_imported_funcs: int = 0
    num_imported_tables: int = 0
    num_imported_memories: int = 0
    num_imported_globals: int = 0
    # Set of defined-function indices whose bodies passed validation (lazy mode).
    validated: IndexSet = field(default_factory=IndexSet)
    features: Features = field(default_factory=Features)
    # Byte offsets of module-level entities for error messages: "import", "func" (the
    # function section's type index), "table", "memory", "export", "start" -> one offset
    # per entry, in order (compact arrays: a function costs 4 bytes here).
    entity_offsets: dict[str, array] = field(default_factory=dict, repr=False, compare=False)
    # The validator's flattened index spaces (built on first validation, reused by
    # lazy `validate_function` calls).
    validation_context: object | None = field(default=None, repr=False, compare=False)
    # Caches that higher layers derive from this module (deadeye.pipeline keeps its
    # compiled code here): they live exactly as long as the module.
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    # -- index spaces (imports first, then definitions) -------------------------------
    def func_type(self, func_index: int) -> FuncType:
        """The type of function `func_index` in the module's function index space."""
        if func_index < self.num_imported_funcs:
            return self.types[self._imported(func_index, "func")]
        return self.types[self.func_types[func_index - self.num_imported_funcs]]

    def table_type(self, index: int) -> TableType:
        if index < self.num_imported_tables:
            return self._imported(index, "table")
        return self.tables[index - self.num_imported_tables]

    def memory_type(self, index: int) -> MemoryType:
        if index < self.num_imported_memories:
            return self._imported(index, "memory")
        return self.memories[index - self.num_imported_memories]

    def global_type(self, index: int) -> GlobalType:
        if index < self.num_imported_globals:
            return self._imported(index, "global")
        return self.globals[index - self.num_imported_globals].type

    @property
    def num_funcs(self) -> int:
        return self.num_imported_funcs + len(self.func_types)

    @property
    def num_tables(self) -> int:
        return self.num_imported_tables + len(self.tables)

    @property
    def num_memories(self) -> int:
        return self.num_imported_memories + len(self.memories)

    @property
    def num_globals(self) -> int:
        return self.num_imported_globals + len(self.globals)

    def func_name(self, func_index: int) -> str:
        """A readable name for backtraces: the `name` section's, else an export's, else
        `func[N]`."""
        name = self.names.funcs.get(func_index)
        if name is not None:
            return name
        for e in self.exports:
            if e.kind == "func" and e.index == func_index:
                return e.name
        return f"func[{func_index}]"

    def _imported(self, index: int, kind: str):
        seen = 0
        for imp in self.imports:
            if imp.kind == kind:
                if seen == index:
                    return imp.desc
                seen += 1
        raise IndexError(index)


def parse_module(
    data: bytes,
    validate: Literal["eager", "lazy", "none"] = "eager",
    features: Features | None = None,
) -> Module:
    """Decode a binary module. "eager" also validates the module and every function
    body; "lazy" validates the module but leaves each body to `validate_function` (call
    it before first use); "none" only decodes. Raises DecodeError / ValidationError."""
    from .decoder import decode_module
    from .validator import validate_module

    if validate not in ("eager", "lazy", "none"):
        raise ValueError(f"validate must be 'eager', 'lazy' or 'none', not {validate!r}")
    module = decode_module(data, features)
    if validate != "none":
        validate_module(module, bodies=validate == "eager")
    return module


def validate_function(module: Module, defined_index: int) -> None:
    """Validate one defined function's body (once; success is recorded in
    `module.validated`)."""
    from .validator import validate_function as _validate_function

    _validate_function(module, defined_index)
