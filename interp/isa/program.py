"""The compiled form of a module's code: what lowering produces and both executors run.

Per-function objects would cost a Python object graph per function; instead a module's
code lives in one `bytearray` and each defined function is a row of compact arrays:

- `code`: every compiled function's bytecode, concatenated (lazy compilation appends).
- `entry[i]` / `end[i]`: the byte range of defined function `i` in `code`, or
  `NOT_COMPILED` in `entry` until the function is compiled.
- `frame_size[i]`: the number of 64-bit slots its frame needs (parameters first, from
  slot 0, a v128 taking two slots; see the calling convention in `table.py`).
- `pool`: the module's constant pool (immediates that do not fit their field).
- `srcmap_*`: for backtraces, sorted `(bytecode offset, wasm byte offset)` pairs for
  every instruction that may trap or call, stored flat in two arrays; `wasm_offset(pc)`
  looks one up.
- `fuel_total`: nothing; fuel is charged by `fuel` ops in the code itself.

The arrays are `array("I")` (4 bytes an entry): 12 bytes per function before it is compiled.

Serialized form (`pack` / `unpack`; the compile cache and `deadeye compile -o` wrap it in
a container with the ISA's `FORMAT_VERSION`, a key and a checksum: see `deadeye.cache`).
All integers little-endian:

    u32 num_funcs, u32 code bytes, u32 pool entries, u32 srcmap entries
    u32 entry[num_funcs], u32 end[num_funcs], u32 frame_size[num_funcs]
    u64 pool[pool entries]
    u32 srcmap_pc[srcmap entries], u32 srcmap_wasm[srcmap entries]
    code bytes

`unpack` checks the structure (sizes add up, every compiled function's range lies inside
the code, the srcmap is sorted) and raises DecodeError otherwise.
"""

from __future__ import annotations

import bisect
import struct
import sys
from array import array
from dataclasses import dataclass, field

from deadeye.ir.errors import DecodeError

from .encoding import ConstPool

NOT_COMPILED = 0xFFFFFFFF
_HEAD = struct.Struct("<4I")


def _u32s(values=()) -> array:
    return array("I", values)


def _le(a: array) -> bytes:
    if sys.byteorder == "big":
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


@dataclass(slots=True)
class CompiledCode:
    num_funcs: int  # defined functions (imports excluded)
    code: bytearray = field(default_factory=bytearray)
    entry: array = field(default_factory=_u32s)
    end: array = field(default_factory=_u32s)
    frame_size: array = field(default_factory=_u32s)
    pool: ConstPool = field(default_factory=ConstPool)
    srcmap_pc: array = field(default_factory=_u32s)
    srcmap_wasm: array = field(default_factory=_u32s)

    def __post_init__(self) -> None:
        if not self.entry:
            self.entry = _u32s([NOT_COMPILED]) * self.num_funcs
            self.end = _u32s([0]) * self.num_funcs
            self.frame_size = _u32s([0]) * self.num_funcs

    def is_compiled(self, index: int) -> bool:
        return self.entry[index] != NOT_COMPILED

    def add_function(self, index: int, body: bytes, frame_size: int,
                     srcmap: list[tuple[int, int]] = ()) -> int:
        """Append function `index`'s bytecode (branch offsets inside `body` are relative,
        so it is position independent); `srcmap` pairs are relative to `body`'s start.
        Returns the entry offset."""
        start = len(self.code)
        self.code += body
        self.entry[index] = start
        self.end[index] = len(self.code)
        self.frame_size[index] = frame_size
        # Functions are appended in increasing code order, so the flat map stays sorted.
        for pc, wasm in srcmap:
            self.srcmap_pc.append(start + pc)
            self.srcmap_wasm.append(wasm)
        return start

    def wasm_offset(self, pc: int) -> int | None:
        """The wasm byte offset of the instruction at bytecode offset `pc` (or of the
        nearest mapped instruction before it), for backtraces."""
        i = bisect.bisect_right(self.srcmap_pc, pc) - 1
        return self.srcmap_wasm[i] if i >= 0 else None

    def function_at(self, pc: int) -> int | None:
        """Which defined function's code contains `pc`."""
        for i in range(self.num_funcs):
            if self.entry[i] != NOT_COMPILED and self.entry[i] <= pc < self.end[i]:
                return i
        return None

    @property
    def compiled_count(self) -> int:
        return self.num_funcs - self.entry.count(NOT_COMPILED)

    def pack(self) -> bytes:
        """The serialized form (see the module docstring)."""
        pool = self.pool.values
        return b"".join([
            _HEAD.pack(self.num_funcs, len(self.code), len(pool), len(self.srcmap_pc)),
            _le(self.entry), _le(self.end), _le(self.frame_size),
            struct.pack(f"<{len(pool)}Q", *pool),
            _le(self.srcmap_pc), _le(self.srcmap_wasm), bytes(self.code)])

    @classmethod
    def unpack(cls, blob: bytes) -> "CompiledCode":
        """Inverse of `pack`; DecodeError for data that is not a consistent CompiledCode."""
        try:
            n, ncode, npool, nsrc = _HEAD.unpack_from(blob, 0)
        except struct.error:
            raise DecodeError("compiled code: truncated header", 0) from None
        if len(blob) != _HEAD.size + 12 * n + 8 * npool + 8 * nsrc + ncode:
            raise DecodeError("compiled code: sizes do not add up", 0)
        pos = _HEAD.size

        def take(count: int) -> array:
            nonlocal pos
            a = array("I")
            a.frombytes(blob[pos:pos + 4 * count])
            if sys.byteorder == "big":
                a.byteswap()
            pos += 4 * count
            return a

        entry, end, frame = take(n), take(n), take(n)
        pool = ConstPool()
        pool.values = list(struct.unpack_from(f"<{npool}Q", blob, pos))
        pool._index = {v: i for i, v in enumerate(pool.values)}
        pos += 8 * npool
        src_pc, src_wasm = take(nsrc), take(nsrc)
        code = bytearray(blob[pos:])
        for i in range(n):
            if entry[i] != NOT_COMPILED and not entry[i] <= end[i] <= ncode:
                raise DecodeError(f"compiled code: function {i} lies outside the code", 0)
        if any(a > b for a, b in zip(src_pc, src_pc[1:])) or (nsrc and src_pc[-1] > ncode):
            raise DecodeError("compiled code: the source map is not sorted", 0)
        return cls(n, code, entry, end, frame, pool, src_pc, src_wasm)
