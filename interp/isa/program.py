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

Serialized code (the compile cache, `deadeye compile -o`) carries `FORMAT_VERSION`.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

from .encoding import ConstPool

NOT_COMPILED = 0xFFFFFFFF


@dataclass(slots=True)
class CompiledCode:
    num_funcs: int  # defined functions (imports excluded)
    code: bytearray = field(default_factory=bytearray)
    entry: array = field(default_factory=lambda: array("L"))
    end: array = field(default_factory=lambda: array("L"))
    frame_size: array = field(default_factory=lambda: array("L"))
    pool: ConstPool = field(default_factory=ConstPool)
    srcmap_pc: array = field(default_factory=lambda: array("L"))
    srcmap_wasm: array = field(default_factory=lambda: array("L"))

    def __post_init__(self) -> None:
        if not self.entry:
            self.entry = array("L", [NOT_COMPILED]) * self.num_funcs
            self.end = array("L", [0]) * self.num_funcs
            self.frame_size = array("L", [0]) * self.num_funcs

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
