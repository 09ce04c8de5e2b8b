"""The bytecode ISA: one table (`table.py`) from which the encoder/decoder (`encoding.py`),
the disassembler (`disasm.py`), the reference executor (`refexec.py`), the interpreters'
dispatch and the ISA reference page (`docs.py` -> docs/isa.md) are derived."""

from .disasm import disassemble
from .encoding import (ConstPool, decode, decode_all, encode, layout_hash, pack_code,
                       unpack_code)
from .table import (FORMAT_VERSION, IR_FORMS, OP_LIST, OPS, TRAP_MESSAGES, Flag, Op, Operand,
                    Status, op, trap_code)

__all__ = ["FORMAT_VERSION", "IR_FORMS", "OP_LIST", "OPS", "TRAP_MESSAGES", "Flag", "Op", "Operand",
           "Status", "op", "trap_code", "ConstPool", "encode", "decode", "decode_all",
           "layout_hash", "pack_code", "unpack_code", "disassemble"]
