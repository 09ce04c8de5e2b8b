"""deadeye: WebAssembly through an optimizing pipeline into register bytecode.

The public API mirrors wasmtime-py, so `import deadeye as wasmtime` works for the calls
both provide."""

from deadeye.ir.errors import (
    DecodeError,
    ExitTrap,
    LinkError,
    Trap,
    ValidationError,
    WasmError,
)

__version__ = "0.1.0"

__all__ = [
    "DecodeError",
    "ExitTrap",
    "LinkError",
    "Trap",
    "ValidationError",
    "WasmError",
    "__version__",
]
