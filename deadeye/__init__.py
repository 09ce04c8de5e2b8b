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

from deadeye.api import (
    Caller,
    Config,
    Engine,
    ExportType,
    Func,
    FuncType,
    Global,
    GlobalType,
    ImportType,
    Instance,
    InstanceExports,
    Limits,
    Linker,
    Memory,
    MemoryType,
    Module,
    Store,
    Table,
    TableType,
    Val,
    ValType,
    WasmtimeError,
    available_engines,
    builtin_engines,
    register_executor,
    wat2wasm,
)

from deadeye.wasi import WasiConfig

from deadeye import wast_backend as _wast_backend  # registers the API's spec-runner engines

__version__ = "0.1.0"

__all__ = [
    "Caller",
    "Config",
    "DecodeError",
    "Engine",
    "ExitTrap",
    "ExportType",
    "Func",
    "FuncType",
    "Global",
    "GlobalType",
    "ImportType",
    "Instance",
    "InstanceExports",
    "Limits",
    "LinkError",
    "Linker",
    "Memory",
    "MemoryType",
    "Module",
    "Store",
    "Table",
    "TableType",
    "Trap",
    "Val",
    "ValType",
    "ValidationError",
    "WasiConfig",
    "WasmError",
    "WasmtimeError",
    "__version__",
    "available_engines",
    "builtin_engines",
    "register_executor",
    "wat2wasm",
]
