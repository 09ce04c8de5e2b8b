"""The exact semantics of every Wasm 2.0 numeric operator, scalar and SIMD: the project's
single source of truth (constant folding, the IR evaluator and the Python interpreter call
these; the LLVM handlers are tested against them).

Values are bit-pattern ints (see `ir/types.py`). Each operator is a plain function named
after its text-format name with dots as underscores (`i32_add`, `f32x4_add`,
`i8x16_extract_lane_s`), also reachable through `OPS["i32.add"]`.

Tables:
  OPS         name -> function, for every pure operator.
  INFO        name -> OpInfo (params/results as ValTypes, immediate kind, traps, NaN shape).
  SIGNATURES  name -> FuncType of the Wasm stack operands (immediates excluded).
  TRAPPING    names of the operators that may raise `Trap`.
  IMMEDIATE   name -> (kind, limit), for OPS and MEMORY_OPS: "lane" (an int < limit) or
              "shuffle" (16 ints < 32); the function takes the immediate as its LAST argument.
  NAN_CANONICALIZE  name -> canonicalizer of its result, for the operators whose NaN results
              follow the arithmetic NaN rule (what NaN canonicalization mode rewrites).
  MEMORY_OPS / MEMORY_INFO / MEMORY_SIGNATURES  the value part of narrow and SIMD loads/stores ("i32.load8_s",
              "v128.load8x8_s", "v128.load16_lane", "v128.store32_lane", ...) as pure
              functions of the accessed bytes: a load takes the little-endian int of the bytes
              read, a store returns the int of the bytes to write. Their signatures list the
              loaded bits as an i32 (up to 32 bits) or i64 operand instead of the address.

The NaN rule and the rounding strategy are documented in `numerics_scalar`.
"""

from __future__ import annotations

from typing import Callable

from . import numerics_scalar as _sc
from . import numerics_simd as _simd
from .numerics_scalar import (  # noqa: F401  (re-exported API)
    CANONICAL_NAN_F32,
    CANONICAL_NAN_F64,
    DIV_BY_ZERO,
    INT_OVERFLOW,
    INVALID_CONVERSION,
    OpInfo,
    canonicalize_nan_f32,
    canonicalize_nan_f64,
    f32_to_float,
    f64_to_float,
    float_to_f32,
    float_to_f64,
    int_to_f32,
    int_to_f64,
)
from .numerics_simd import (  # noqa: F401
    V128_MASK,
    canonicalize_nan_v128_f32x4,
    canonicalize_nan_v128_f64x2,
    v128_from_lanes,
    v128_lanes,
)
from .types import FuncType

INFO: dict[str, OpInfo] = {**_sc.TABLE, **_simd.TABLE}
OPS: dict[str, Callable] = {name: info.fn for name, info in INFO.items()}
SIGNATURES: dict[str, FuncType] = {n: FuncType(i.params, i.results) for n, i in INFO.items()}
TRAPPING: frozenset[str] = frozenset(n for n, i in INFO.items() if i.traps)

CANONICALIZERS: dict[str, Callable[[int], int]] = {
    "f32": canonicalize_nan_f32,
    "f64": canonicalize_nan_f64,
    "f32x4": canonicalize_nan_v128_f32x4,
    "f64x2": canonicalize_nan_v128_f64x2,
}
NAN_CANONICALIZE: dict[str, Callable[[int], int]] = {
    n: CANONICALIZERS[i.nan] for n, i in INFO.items() if i.nan
}

MEMORY_INFO: dict[str, OpInfo] = {**_sc.MEMORY_TABLE, **_simd.MEMORY_TABLE}
MEMORY_OPS: dict[str, Callable] = {name: info.fn for name, info in MEMORY_INFO.items()}
MEMORY_SIGNATURES: dict[str, FuncType] = {n: FuncType(i.params, i.results) for n, i in MEMORY_INFO.items()}
IMMEDIATE: dict[str, tuple[str, int]] = {
    n: (i.imm, i.imm_limit) for n, i in {**INFO, **MEMORY_INFO}.items() if i.imm
}

# Every operator function under its Python name (i32_add, ...).
globals().update({name.replace(".", "_"): fn for name, fn in {**OPS, **MEMORY_OPS}.items()})

__all__ = sorted(
    [name.replace(".", "_") for name in (*OPS, *MEMORY_OPS)]
    + ["OPS", "INFO", "SIGNATURES", "TRAPPING", "IMMEDIATE", "NAN_CANONICALIZE", "CANONICALIZERS",
       "MEMORY_OPS", "MEMORY_INFO", "MEMORY_SIGNATURES", "OpInfo", "CANONICAL_NAN_F32", "CANONICAL_NAN_F64",
       "DIV_BY_ZERO", "INT_OVERFLOW", "INVALID_CONVERSION", "canonicalize_nan_f32",
       "canonicalize_nan_f64", "canonicalize_nan_v128_f32x4", "canonicalize_nan_v128_f64x2",
       "f32_to_float", "f64_to_float", "float_to_f32", "float_to_f64", "int_to_f32",
       "int_to_f64", "v128_lanes", "v128_from_lanes", "V128_MASK"]
)
