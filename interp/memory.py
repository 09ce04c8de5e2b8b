"""Linear memories, tables and segment instances, with the bounds-checked bulk operations
(`memory.fill/copy/init`, `table.get/set/grow/fill/copy/init`) every executor shares.

Out-of-bounds accesses raise `Trap` with the spec's text and no frames; `Store.call` adds
the backtrace of the frames live at the trap.

Memory buffers and growth
-------------------------
A memory's bytes are `MemoryInstance.data`, a `bytearray` (64 KiB pages). `view()` returns
a fresh `memoryview` over it (buffer protocol: `numpy.frombuffer(mem.view(), numpy.uint8)`
wraps it without copying). A bytearray cannot be resized while views of it are alive, so
`grow` first tries to extend in place and, if views are exported, moves the contents to a
new, larger bytearray instead: growth never fails because of a view, but a view taken
before a growth keeps showing the old buffer. Take a view after growing (or per access),
and executors must re-read `mem.data` after anything that may grow the memory (calls,
`memory.grow`).
"""

from __future__ import annotations

from typing import Any

from deadeye.ir.errors import Trap, WasmError
from deadeye.ir.types import ValType

PAGE_SIZE = 65536
MAX_PAGES = 65536  # 4 GiB: the most a 32-bit memory can address
MAX_TABLE_SIZE = 2**32 - 1

_MEM_OOB = "out of bounds memory access"
_TABLE_OOB = "out of bounds table access"


def _effective_max(declared: int | None, absolute: int, store_limit: int) -> int:
    return min(absolute if declared is None else declared, store_limit)


class DataInstance:
    """A data segment's bytes; dropping it (data.drop, or after active initialisation)
    leaves it empty."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def drop(self) -> None:
        self.data = b""

    def __len__(self) -> int:
        return len(self.data)


class ElemInstance:
    """An element segment's evaluated references; dropped = length 0."""

    __slots__ = ("elem_type", "elements")

    def __init__(self, elem_type: ValType, elements: list):
        self.elem_type = elem_type
        self.elements = elements

    def drop(self) -> None:
        self.elements = []

    def __len__(self) -> int:
        return len(self.elements)


class MemoryInstance:
    """`type` has `.limits.min/.max` (pages). `limit_pages` is the effective maximum: the
    declared max, capped by 65536 and the store-wide limit."""

    __slots__ = ("type", "data", "limit_pages")

    def __init__(self, type: Any, store_max_pages: int = MAX_PAGES):
        limits = type.limits
        self.type = type
        self.limit_pages = _effective_max(limits.max, MAX_PAGES, store_max_pages)
        if limits.min > self.limit_pages:
            raise WasmError(
                f"memory minimum of {limits.min} pages exceeds the limit of {self.limit_pages} pages")
        self.data = bytearray(limits.min * PAGE_SIZE)

    @property
    def pages(self) -> int:
        return len(self.data) // PAGE_SIZE

    def __len__(self) -> int:
        return len(self.data)

    def view(self) -> memoryview:
        """A fresh writable view of the current bytes (see the module docstring)."""
        return memoryview(self.data)

    def grow(self, delta: int) -> int:
        """`memory.grow`: the old size in pages, or -1 (the executor stores it as the u32
        0xFFFFFFFF) when the maximum or the host's memory would be exceeded."""
        old = len(self.data) // PAGE_SIZE
        if delta < 0 or old + delta > self.limit_pages:
            return -1
        if delta:
            extra = delta * PAGE_SIZE
            try:
                try:
                    self.data.extend(bytes(extra))
                except BufferError:  # views are exported: move to a new buffer
                    new = bytearray(len(self.data) + extra)
                    new[: len(self.data)] = self.data
                    self.data = new
            except MemoryError:
                return -1
        return old

    # -- bounds-checked access ------------------------------------------------------
    def check(self, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > len(self.data):
            raise Trap(_MEM_OOB)

    def read(self, addr: int, n: int) -> bytes:
        self.check(addr, n)
        return bytes(self.data[addr : addr + n])

    def write(self, addr: int, data: bytes) -> None:
        n = len(data)
        self.check(addr, n)
        self.data[addr : addr + n] = data

    def fill(self, dst: int, value: int, n: int) -> None:
        self.check(dst, n)
        self.data[dst : dst + n] = bytes([value & 0xFF]) * n

    def copy(self, dst: int, src_mem: "MemoryInstance", src: int, n: int) -> None:
        """memory.copy from `src_mem` (possibly self; overlapping ranges are fine)."""
        src_mem.check(src, n)
        self.check(dst, n)
        self.data[dst : dst + n] = src_mem.data[src : src + n]

    def init(self, dst: int, seg: DataInstance, src: int, n: int) -> None:
        """memory.init from a data segment (bounds-checked on both sides first)."""
        if src < 0 or n < 0 or src + n > len(seg.data):
            raise Trap(_MEM_OOB)
        self.check(dst, n)
        self.data[dst : dst + n] = seg.data[src : src + n]


class TableInstance:
    """`type` has `.elem` (FUNCREF/EXTERNREF) and `.limits`; `elements` is a list of
    references (None = null)."""

    __slots__ = ("type", "elements", "limit")

    def __init__(self, type: Any, init: Any = None, store_max_elements: int = MAX_TABLE_SIZE):
        limits = type.limits
        self.type = type
        self.limit = _effective_max(limits.max, MAX_TABLE_SIZE, store_max_elements)
        if limits.min > self.limit:
            raise WasmError(
                f"table minimum of {limits.min} elements exceeds the limit of {self.limit}")
        self.elements: list = [init] * limits.min

    @property
    def elem_type(self) -> ValType:
        return self.type.elem

    def __len__(self) -> int:
        return len(self.elements)

    def get(self, i: int) -> Any:
        if not 0 <= i < len(self.elements):
            raise Trap(_TABLE_OOB)
        return self.elements[i]

    def set(self, i: int, value: Any) -> None:
        if not 0 <= i < len(self.elements):
            raise Trap(_TABLE_OOB)
        self.elements[i] = value

    def grow(self, delta: int, init: Any = None) -> int:
        """`table.grow`: the old size, or -1 past the maximum."""
        old = len(self.elements)
        if delta < 0 or old + delta > self.limit:
            return -1
        try:
            self.elements.extend([init] * delta)
        except MemoryError:
            return -1
        return old

    def _check(self, i: int, n: int, size: int) -> None:
        if i < 0 or n < 0 or i + n > size:
            raise Trap(_TABLE_OOB)

    def fill(self, i: int, value: Any, n: int) -> None:
        self._check(i, n, len(self.elements))
        self.elements[i : i + n] = [value] * n

    def copy(self, dst: int, src_table: "TableInstance", src: int, n: int) -> None:
        """table.copy from `src_table` (possibly self; overlap is fine: the source slice
        is taken before the store)."""
        self._check(src, n, len(src_table.elements))
        self._check(dst, n, len(self.elements))
        self.elements[dst : dst + n] = src_table.elements[src : src + n]

    def init(self, dst: int, seg: ElemInstance, src: int, n: int) -> None:
        self._check(src, n, len(seg.elements))
        self._check(dst, n, len(self.elements))
        self.elements[dst : dst + n] = seg.elements[src : src + n]
