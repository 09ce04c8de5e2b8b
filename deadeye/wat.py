"""Wasm text input, through `wasmtime.wat2wasm` (install the `text` extra)."""

from __future__ import annotations

from deadeye.ir.errors import DecodeError


def wat_to_wasm(text: str) -> bytes:
    try:
        import wasmtime
    except ImportError:  # pragma: no cover - depends on the environment
        raise DecodeError("reading .wat needs the `text` extra: pip install 'deadeye[text]'")
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid text"
        raise DecodeError(f"wat: {first}") from None
