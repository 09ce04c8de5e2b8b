"""The exceptions every layer raises. They live in `ir` (the bottom layer) so that the
decoder, the numerics, the runtime and both executors share one hierarchy; `deadeye`
re-exports them."""

from __future__ import annotations


class WasmError(Exception):
    """Base of every error deadeye raises about a module or its execution."""


class _ModuleError(WasmError):
    """A problem found in a module's bytes: a message, the byte offset and, inside a
    function body, the function index."""

    def __init__(self, message: str, offset: int | None = None, func_index: int | None = None):
        self.message = message
        self.offset = offset
        self.func_index = func_index
        where = []
        if func_index is not None:
            where.append(f"func {func_index}")
        if offset is not None:
            where.append(f"offset 0x{offset:x}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class DecodeError(_ModuleError):
    """The bytes are not a well-formed Wasm binary (the spec's "malformed")."""


class ValidationError(_ModuleError):
    """The module is well-formed but does not type-check (the spec's "invalid")."""


class LinkError(WasmError):
    """Imports do not match what the module asks for (the spec's "unlinkable")."""


class Trap(WasmError):
    """A wasm trap. `message` is the spec's trap text (e.g. "integer divide by zero");
    `frames` is the wasm backtrace, innermost first, as (func_name, func_index, offset)."""

    def __init__(self, message: str, frames: list[tuple[str, int, int]] | None = None):
        self.message = message
        self.frames = list(frames or [])
        super().__init__(message)

    def __str__(self) -> str:
        if not self.frames:
            return self.message
        lines = [self.message, "wasm backtrace:"]
        for i, (name, index, offset) in enumerate(self.frames):
            lines.append(f"  {i}: {name} (func {index}) @ 0x{offset:x}")
        return "\n".join(lines)


class ExitTrap(WasmError):
    """The guest called WASI `proc_exit`; `code` is its exit status."""

    def __init__(self, code: int):
        self.code = code
        super().__init__(f"exit status {code}")
