"""Disassembly of bytecode: one line per op with its offset, name and operands.

Registers print as `r12` (a 64-bit slot), `v12` (a v128 in slots 12-13) and `@r12` (a callee
frame base); branch offsets print as absolute targets (`-> 0x2a`); indices as `func[3]`;
float immediates as their value and bits; pool operands with their value when the pool is
given.
"""

from __future__ import annotations

from deadeye.ir import numerics

from .encoding import decode_all
from .table import TRAP_MESSAGES, Op, expand

_INDEX = ("func", "type", "table", "mem", "global", "data", "elem")


def format_operand(kind: str, name: str, value, pc: int, pool=None) -> str:
    if kind in ("xd", "xs"):
        return f"r{value}"
    if kind in ("vd", "vs"):
        return f"v{value}"
    if kind == "frame":
        return f"@r{value}"
    if kind == "off":
        return f"-> {pc + value:#x}"
    if kind == "brtable":
        *cases, default = value
        return "[" + ", ".join([f"{pc + t:#x}" for t in cases] + [f"default {pc + default:#x}"]) + "]"
    if kind == "slots":
        return "[" + ", ".join(f"r{s}" for s in value) + "]"
    if kind in _INDEX:
        return f"{kind}[{value}]"
    if kind == "pool":
        if pool is not None and 0 <= value < len(pool):
            return f"pool[{value}]={pool[value]:#x}"
        return f"pool[{value}]"
    if kind == "f32":
        return f"{numerics.f32_to_float(value)!r} ({value:#010x})"
    if kind == "f64":
        return f"{numerics.f64_to_float(value)!r} ({value:#018x})"
    if kind == "v128":
        return f"{value:#034x}"
    if kind == "shuffle":
        return "[" + " ".join(map(str, value)) + "]"
    if kind == "sx32":
        return str(value - (1 << 64) if value >> 63 else value)
    if kind == "trap":
        return f"{value} ({TRAP_MESSAGES[value]})"
    if name == "offset":
        return f"+{value}"
    return str(value)


def format_op(pc: int, row: Op, values, pool=None) -> str:
    """One line; a fused op lists each part's operands (a linked one as the register the
    previous part wrote), separated by `;`."""
    ops = "; ".join(", ".join(format_operand(o.kind.name, o.name, v, pc, pool)
                              for o, v in zip(part.operands, vals))
                    for part, vals in expand(row, values))
    return f"{pc:#06x}: {row.name:<22} {ops}".rstrip()


def disassemble(code, start: int = 0, end: int | None = None, pool=None) -> list[str]:
    """Lines for the ops in code[start:end] (DecodeError on malformed code)."""
    return [format_op(pc, row, values, pool) for pc, row, values in decode_all(code, start, end)]
