"""Lowering entry point: IR function -> bytecode appended to the module's CompiledCode.

    compile_function(func, env, code, index, stats=None)

runs instruction selection (`isel.py`, driven by `rules/lower/*.isle`), register
allocation (`regalloc.py`) and emission (`emit.py`), then appends the function's code,
frame size and srcmap to `code` (an `interp.isa.program.CompiledCode`). `stats`, when a
`LowerStats`, accumulates counts for `deadeye compile --stats`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.table import OPS
from deadeye.ir.cfg import reverse_postorder
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Function, IRModule
from deadeye.ir.types import ValType

from . import isel
from .emit import Emitter
from .regalloc import allocate
from .vcode import VFunc


@dataclass
class LowerStats:
    functions: int = 0
    ir_instructions: int = 0
    wasm_instructions: int = 0  # the IR's fuel: wasm instructions of reachable blocks
    bytecode_ops: int = 0
    bytecode_bytes: int = 0
    frame_slots: int = 0
    moves: int = 0
    fused: int = 0  # fused ops written
    fused_parts: int = 0  # the ops they stand for
    ops: Counter = field(default_factory=Counter)

    def add(self, other: "LowerStats") -> None:
        for k in ("functions", "ir_instructions", "wasm_instructions", "bytecode_ops",
                  "bytecode_bytes", "frame_slots", "moves", "fused", "fused_parts"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.ops.update(other.ops)

    def report(self) -> str:
        n = max(self.functions, 1)
        w = max(self.wasm_instructions, 1)
        return "\n".join([
            f"functions:            {self.functions}",
            f"wasm instructions:    {self.wasm_instructions}",
            f"IR instructions:      {self.ir_instructions}",
            f"bytecode ops:         {self.bytecode_ops} ({self.bytecode_ops / w:.3f} per wasm "
            f"instruction, {self.bytecode_ops - self.ops['fuel']} without fuel ops: "
            f"{(self.bytecode_ops - self.ops['fuel']) / w:.3f})",
            f"fused ops:            {self.fused} (standing for {self.fused_parts} ops)",
            f"bytecode bytes:       {self.bytecode_bytes}",
            f"moves:                {self.moves}",
            f"average frame size:   {self.frame_slots / n:.1f} slots",
        ])


def _slots(types) -> int:
    return sum(2 if t == ValType.V128 else 1 for t in types)


def lower_function(func: Function, env: IRModule, num_imports: int) -> VFunc:
    """Instruction selection only: the VCode of `func` (layout: reverse postorder)."""
    return isel.select(func, env, num_imports, reverse_postorder(func))


def compile_function(func: Function, env: IRModule, code: CompiledCode, index: int,
                     stats: LowerStats | None = None) -> int:
    """Lower `func` (defined function `index` of the module `env` describes) and append it
    to `code`. Returns its entry offset. Errors (e.g. a frame past 65536 slots) raise
    ValidationError."""
    num_imports = len(env.func_types) - code.num_funcs
    if num_imports < 0 or not 0 <= index < code.num_funcs:
        raise ValidationError(f"function index {index} out of range", func_index=index)
    try:
        vf = lower_function(func, env, num_imports)
        alloc = allocate(vf, max(_slots(func.sig.results), _slots(func.sig.params)))
        em = Emitter(vf, alloc, code.pool)
        body = em.run()
    except ValidationError as e:
        if e.func_index is None:
            e.func_index = index
        raise
    entry = code.add_function(index, body, alloc.frame_size, em.srcmap)
    if stats is not None:
        stats.functions += 1
        stats.ir_instructions += sum(len(b.instrs) for b in func.blocks)
        stats.wasm_instructions += sum(b.fuel for b in reverse_postorder(func))
        stats.bytecode_ops += sum(em.ops.values())
        stats.bytecode_bytes += len(body)
        stats.frame_slots += alloc.frame_size
        stats.moves += em.parts["mov"] + em.parts["mov128"]
        fused = [(OPS[n], k) for n, k in em.ops.items() if OPS[n].parts]
        stats.fused += sum(k for _row, k in fused)
        stats.fused_parts += sum(k * len(row.parts) for row, k in fused)
        stats.ops.update(em.ops)
    return entry
