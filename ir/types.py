"""Value and function types, shared by the decoder, the IR, the runtime and the API.

Values travel through deadeye as Python ints holding bit patterns: i32/i64 unsigned
(0 <= v < 2**N), f32/f64 as their IEEE bits (so NaN payloads survive exactly), v128 as a
128-bit unsigned int (lane 0 in the low bits, as little-endian memory has it). References
are None (null) or an opaque object."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ValType(enum.IntEnum):
    """A Wasm value type; the enum value is its binary encoding."""

    I32 = 0x7F
    I64 = 0x7E
    F32 = 0x7D
    F64 = 0x7C
    V128 = 0x7B
    FUNCREF = 0x70
    EXTERNREF = 0x6F

    def __str__(self) -> str:
        return _NAMES[self]

    @property
    def is_ref(self) -> bool:
        return self in (ValType.FUNCREF, ValType.EXTERNREF)

    @property
    def is_num(self) -> bool:
        return self in (ValType.I32, ValType.I64, ValType.F32, ValType.F64)

    @classmethod
    def from_name(cls, name: str) -> "ValType":
        return _BY_NAME[name]


_NAMES = {
    ValType.I32: "i32",
    ValType.I64: "i64",
    ValType.F32: "f32",
    ValType.F64: "f64",
    ValType.V128: "v128",
    ValType.FUNCREF: "funcref",
    ValType.EXTERNREF: "externref",
}
_BY_NAME = {name: vt for vt, name in _NAMES.items()}


@dataclass(frozen=True, slots=True)
class FuncType:
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]

    def __str__(self) -> str:
        p = " ".join(map(str, self.params))
        r = " ".join(map(str, self.results))
        return f"[{p}] -> [{r}]"
