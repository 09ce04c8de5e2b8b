"""Build-and-call tiny wasmtime modules, for differential tests against wasmtime.

wasmtime-py 50 aborts the process on functions with v128 params/results and passes f32/f64
through C floats (NaN bits at risk), so the functions built here only take and return i32/i64
bit patterns: float operands are reinterpreted inside the module, and v128 operands/results
travel through linear memory (operand k at byte 16*k, a v128 result at RESULT_AT).

    f = op_function("f32.add", (F32, F32), (F32,))
    f(0x3f800000, 0x40000000)          # -> (0x40400000,)

Every call returns a tuple of unsigned bit patterns; a trap raises OracleTrap whose `message`
is the spec trap text ("integer divide by zero", ...).
"""

from __future__ import annotations

import functools
import itertools
import random
import re
import struct as _struct
from typing import Sequence

import wasmtime
from hypothesis import strategies as st

from deadeye.ir.errors import Trap
from deadeye.ir.types import ValType

RESULT_AT = 64  # where a v128 result is stored
SCRATCH_AT = 128  # bytes a load reads or a store writes

_CARRIER = {ValType.I32: "i32", ValType.I64: "i64", ValType.F32: "i32", ValType.F64: "i64"}
_FROM_BITS = {ValType.F32: "f32.reinterpret_i32", ValType.F64: "f64.reinterpret_i64"}
_TO_BITS = {ValType.F32: "i32.reinterpret_f32", ValType.F64: "i64.reinterpret_f64"}
_MASK = {ValType.I32: 0xFFFFFFFF, ValType.F32: 0xFFFFFFFF,
         ValType.I64: (1 << 64) - 1, ValType.F64: (1 << 64) - 1}

_engine = wasmtime.Engine()


class OracleTrap(Exception):
    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def _trap_message(err: Exception) -> str:
    m = re.search(r"wasm trap: ([^\n]*)", str(err))
    return m.group(1).strip() if m else str(err)


class WasmModule:
    """A compiled module with one exported memory "mem" and functions exported by name."""

    def __init__(self, wat: str):
        self.store = wasmtime.Store(_engine)
        module = wasmtime.Module(_engine, wasmtime.wat2wasm(wat))
        instance = wasmtime.Instance(self.store, module, [])
        self.exports = instance.exports(self.store)
        self.memory = self.exports["mem"]

    def write(self, offset: int, data: bytes) -> None:
        self.memory.write(self.store, data, offset)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.memory.read(self.store, offset, offset + length))

    def call(self, name: str, *args: int):
        try:
            return self.exports[name](self.store, *args)
        except wasmtime.Trap as err:
            raise OracleTrap(_trap_message(err)) from None


def _func_wat(name: str, instr: str, params: Sequence[ValType], results: Sequence[ValType]) -> str:
    scalar_params = [p for p in params if p != ValType.V128]
    sig = "".join(f" (param {_CARRIER[p]})" for p in scalar_params)
    scalar_results = [r for r in results if r != ValType.V128]
    sig += "".join(f" (result {_CARRIER[r]})" for r in scalar_results)
    body = []
    if ValType.V128 in results:
        body.append(f"i32.const {RESULT_AT}")
    local = v = 0
    for p in params:
        if p == ValType.V128:
            body.append(f"i32.const 0 v128.load offset={16 * v}")
            v += 1
        else:
            body.append(f"local.get {local}")
            local += 1
            if p in _FROM_BITS:
                body.append(_FROM_BITS[p])
    body.append(instr)
    if ValType.V128 in results:
        body.append("v128.store")
    elif results and results[0] in _TO_BITS:
        body.append(_TO_BITS[results[0]])
    return f'(func (export "{name}"){sig}\n    {" ".join(body)})'


class OpFunction:
    """Calls one instruction (immediates included in `instr`) inside a compiled module."""

    def __init__(self, module: WasmModule, name: str, params, results):
        self.module, self.name = module, name
        self.params, self.results = tuple(params), tuple(results)

    def __call__(self, *args: int) -> tuple[int, ...]:
        scalars = []
        v = 0
        for p, a in zip(self.params, args):
            if p == ValType.V128:
                self.module.write(16 * v, a.to_bytes(16, "little"))
                v += 1
            else:
                # wasmtime-py wants signed ints for i32/i64
                bits = _MASK[p].bit_length()
                scalars.append(a - ((a >> (bits - 1)) << bits))
        raw = self.module.call(self.name, *scalars)
        if ValType.V128 in self.results:
            return (int.from_bytes(self.module.read(RESULT_AT, 16), "little"),)
        if not self.results:
            return ()
        raw = raw if isinstance(raw, list) else [raw]
        return tuple(r & _MASK[t] for r, t in zip(raw, self.results))


@functools.lru_cache(maxsize=None)
def op_functions(instrs: tuple[str, ...], params: tuple[ValType, ...],
                 results: tuple[ValType, ...]) -> tuple[OpFunction, ...]:
    """One module holding a function per instruction text (e.g. the same op with each lane
    immediate), all with the given Wasm stack signature. Compiled once per session."""
    funcs = "\n  ".join(_func_wat(f"f{i}", ins, params, results) for i, ins in enumerate(instrs))
    module = WasmModule(f'(module (memory (export "mem") 1)\n  {funcs})')
    return tuple(OpFunction(module, f"f{i}", params, results) for i in range(len(instrs)))


def op_function(instr: str, params: Sequence[ValType], results: Sequence[ValType]) -> OpFunction:
    return op_functions((instr,), tuple(params), tuple(results))[0]


@functools.lru_cache(maxsize=None)
def wasm_module(wat: str) -> WasmModule:
    """A cached module from free-form WAT (it must export a memory "mem")."""
    return WasmModule(wat)


# ---------------------------------------------------------------- memory-op oracles


def access_bytes(name: str) -> int:
    """How many bytes the load/store `name` accesses ("v128.load8x8_s" -> 8, "i64.store16" -> 2)."""
    m = re.search(r"\.(?:load|store)(\d+)(x\d+)?", name)
    bits = int(m.group(1))
    return 8 if m.group(2) else bits // 8


def _memory_func_wat(name: str, instr: str, info_params, info_results) -> str:
    """A function applying the load/store `instr` to the bytes at SCRATCH_AT (loads) or
    writing them there (stores); v128 operands come from address 0, a v128 result goes to
    RESULT_AT. Scalar-store operands and scalar-load results travel as i32/i64."""
    op = instr.split()[0]
    is_store = ".store" in op
    sig, body = "", []
    if is_store:
        body.append(f"i32.const {SCRATCH_AT}")
        if info_params[0] == ValType.V128:
            body.append("i32.const 0 v128.load")
        else:
            sig = f" (param {_CARRIER[info_params[0]]})"
            body.append("local.get 0")
        body.append(instr)
    else:
        v128_result = info_results[0] == ValType.V128
        if v128_result:
            body.append(f"i32.const {RESULT_AT}")
        else:
            sig = f" (result {_CARRIER[info_results[0]]})"
        body.append(f"i32.const {SCRATCH_AT}")
        if info_params[0] == ValType.V128:  # loadN_lane: (address, vector)
            body.append("i32.const 0 v128.load")
        body.append(instr)
        if v128_result:
            body.append("v128.store")
    return f'(func (export "{name}"){sig}\n    {" ".join(body)})'


class MemoryOpFunction:
    """Calls a load/store like `numerics.MEMORY_OPS[name]` is called: loads take the loaded
    bits (plus the v128 operand first for loadN_lane), stores return the stored bits."""

    def __init__(self, module: WasmModule, fname: str, name: str, params, results):
        self.module, self.fname, self.name = module, fname, name
        self.params, self.results = tuple(params), tuple(results)
        self.nbytes = access_bytes(name)

    def __call__(self, *args: int) -> tuple[int, ...]:
        is_store = ".store" in self.name
        if self.params[0] == ValType.V128:
            self.module.write(0, args[0].to_bytes(16, "little"))
            args = args[1:]
        if is_store:
            self.module.write(SCRATCH_AT, bytes(16))
            if args:
                bits = _MASK[self.params[0]].bit_length()
                self.module.call(self.fname, args[0] - ((args[0] >> (bits - 1)) << bits))
            else:
                self.module.call(self.fname)
            return (int.from_bytes(self.module.read(SCRATCH_AT, self.nbytes), "little"),)
        self.module.write(SCRATCH_AT, args[0].to_bytes(self.nbytes, "little"))
        raw = self.module.call(self.fname)
        if self.results[0] == ValType.V128:
            return (int.from_bytes(self.module.read(RESULT_AT, 16), "little"),)
        return (raw & _MASK[self.results[0]],)


@functools.lru_cache(maxsize=None)
def memory_op_functions(name: str, params: tuple[ValType, ...], results: tuple[ValType, ...],
                        lanes: int = 0) -> tuple[MemoryOpFunction, ...]:
    """One function per lane immediate (or a single one when `lanes` is 0)."""
    instrs = [f"{name} {i}" for i in range(lanes)] if lanes else [name]
    funcs = "\n  ".join(_memory_func_wat(f"f{i}", ins, params, results) for i, ins in enumerate(instrs))
    module = WasmModule(f'(module (memory (export "mem") 1)\n  {funcs})')
    return tuple(MemoryOpFunction(module, f"f{i}", name, params, results) for i in range(len(instrs)))


# ---------------------------------------------------------------- comparing results

_NAN_GEOMETRY = {"f32": (32, 0x7FFFFFFF, 0x7F800000, 1 << 22), "f64": (64, (1 << 63) - 1, 0x7FF << 52, 1 << 51)}


def _lane_bits(kind: str) -> int:
    return 32 if kind.startswith("f32") else 64


def _lanes(v: int, width: int, count: int) -> list[int]:
    m = (1 << width) - 1
    return [(v >> (i * width)) & m for i in range(count)]


def _is_nan(bits: int, width: int) -> bool:
    _, absm, inf, _ = _NAN_GEOMETRY[f"f{width}"]
    return (bits & absm) > inf


def _is_canonical(bits: int, width: int) -> bool:
    _, absm, inf, quiet = _NAN_GEOMETRY[f"f{width}"]
    return (bits & absm) == inf | quiet


def _is_arithmetic(bits: int, width: int) -> bool:
    _, absm, inf, quiet = _NAN_GEOMETRY[f"f{width}"]
    return _is_nan(bits, width) and bool(bits & quiet)


def nan_agreement_error(nan_kind: str, params, args, ours: int, theirs: int,
                        in_width: int | None = None) -> str | None:
    """Compare two results of an operator whose NaN results follow the spec's arithmetic
    NaN rule: lanes must be bit-identical, or both NaN of the class the spec allows for the
    operands feeding that lane (canonical if every NaN operand lane is canonical, otherwise
    arithmetic). Result lane i depends on lane i of each float operand (true for lanewise
    ops, scalars, demote_zero and promote_low); `in_width` is the operands' lane width when
    it differs from the result's. Returns a description of the mismatch, or None."""
    width = _lane_bits(nan_kind)
    in_width = in_width or width
    count = 128 // width if "x" in nan_kind else 1
    in_count = 128 // in_width if "x" in nan_kind else 1
    operand_lanes = [_lanes(a, in_width, in_count) for p, a in zip(params, args)
                     if p in (ValType.F32, ValType.F64, ValType.V128)]
    for i, (o, t) in enumerate(zip(_lanes(ours, width, count), _lanes(theirs, width, count))):
        if o == t:
            continue
        if not (_is_nan(o, width) and _is_nan(t, width)):
            return f"lane {i}: 0x{o:x} != 0x{t:x}"
        ins = [lanes[i] for lanes in operand_lanes if i < len(lanes)]
        if all(_is_canonical(x, in_width) for x in ins if _is_nan(x, in_width)):
            ok = _is_canonical(o, width) and _is_canonical(t, width)
            want = "canonical"
        else:
            ok = _is_arithmetic(o, width) and _is_arithmetic(t, width)
            want = "arithmetic"
        if not ok:
            return f"lane {i}: 0x{o:x} vs 0x{t:x}: both should be {want} NaNs"
    return None


# ---------------------------------------------------------------- operand strategies
# Random operands biased toward the values where semantics are subtle.


def _f32(x: float) -> int:
    return _struct.unpack("<I", _struct.pack("<f", x))[0]


def _f64(x: float) -> int:
    return _struct.unpack("<Q", _struct.pack("<d", x))[0]


def _int_edges(n: int) -> list[int]:
    m = (1 << n) - 1
    vals = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 255, 256,
            0x7FFF, 0x8000, 0xFFFF, 0x10000, 1 << 24, (1 << 24) + 1, (1 << 24) + 3,
            (1 << 53) + 1, 1 << 31, (1 << 31) - 1, (1 << 31) + 1, 1 << 32, (1 << 32) - 1,
            1 << 63, (1 << 63) - 1, (1 << 63) + 1, m, m - 1, 1 << (n - 1), (1 << (n - 1)) - 1}
    return sorted({v & m for v in vals} | {(-v) & m for v in vals})


_FLOAT_SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 3.5, 0.49999997,
                   -0.49999997, 2.0 ** 23, 2.0 ** 23 + 1, 2.0 ** 24, 2.0 ** 31, -2.0 ** 31,
                   2.0 ** 32, 2.0 ** 31 - 1, -2.0 ** 31 - 1, 2.0 ** 32 - 1, 2.0 ** 52,
                   2.0 ** 53, 2.0 ** 63, -2.0 ** 63, 2.0 ** 64, 4294967295.5, -0.99,
                   2147483647.5, -2147483648.5, 1e-40, -1e-40, 1e38, 3e38, 1 + 2.0 ** -24,
                   1 + 2.0 ** -24 + 2.0 ** -52, 2.0 ** -150, 2.0 ** -149, 3.4028235677973366e38,
                   3.4028235677973362e38, 1e300, -1e300, 5e-324, 2.2250738585072014e-308]

EDGE_F32 = sorted({0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FA00000, 0xFFA00000,
                   0x7F800001, 0xFF800001, 0x7FC00001, 0xFFFFFFFF, 0x7FBFFFFF, 0x7FFFFFFF,
                   1, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF,
                   0x4F000000, 0x4EFFFFFF, 0xCF000000, 0xCF000001, 0x5F000000, 0x5EFFFFFF,
                   0xDF000000, 0xDF000001, 0x4F800000, 0x4F7FFFFF, 0x5F800000, 0x5F7FFFFF}
                  | {_f32(x) for x in _FLOAT_SPECIALS if abs(x) < 3.4e38 or x != x})
EDGE_F64 = sorted({0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
                   0xFFF8000000000000, 0x7FF4000000000000, 0x7FF0000000000001,
                   0xFFF0000000000001, 0x7FF8000000000001, 0xFFFFFFFFFFFFFFFF,
                   0x7FF7FFFFFFFFFFFF, 0x7FF00000E0000000, 0x7FF8000020000000, 1,
                   0x8000000000000001, 0x000FFFFFFFFFFFFF, 0x0010000000000000,
                   0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF}
                  | {_f64(x) for x in _FLOAT_SPECIALS})


def int_strategy(n: int) -> st.SearchStrategy[int]:
    m = (1 << n) - 1
    # values one rounding step away from a tie when converted to float
    ties = st.builds(lambda a, c: ((1 << a) + (1 << (a - 24)) + c) & m, st.integers(24, n - 1),
                     st.integers(-2, 2))
    return st.one_of(st.sampled_from(_int_edges(n)), st.integers(0, m), ties, ties,
                     st.integers(-300, 300).map(lambda v: v & m))


def float_strategy(n: int) -> st.SearchStrategy[int]:
    edges, m, bits = (EDGE_F32, 0xFFFFFFFF, _f32) if n == 32 else (EDGE_F64, (1 << 64) - 1, _f64)
    near = st.builds(lambda e, d: (e + d) & m, st.sampled_from(edges), st.integers(-2, 2))
    nice = st.integers(-40, 40).map(lambda k: bits(k / 4))
    return st.one_of(st.sampled_from(edges), near, st.integers(0, m), nice,
                     st.floats(width=n, allow_nan=False).map(bits))


SCALAR_STRATEGIES = {ValType.I32: int_strategy(32), ValType.I64: int_strategy(64),
                     ValType.F32: float_strategy(32), ValType.F64: float_strategy(64)}

_SHAPES = {"i8x16": (8, None), "i16x8": (16, None), "i32x4": (32, None), "i64x2": (64, None),
           "f32x4": (32, 32), "f64x2": (64, 64)}


def _shape_strategy(shape: str) -> st.SearchStrategy[int]:
    width, fl = _SHAPES[shape]
    lane = float_strategy(fl) if fl else st.one_of(
        st.sampled_from(_int_edges(width)), st.integers(0, (1 << width) - 1))
    count = 128 // width
    lanes = st.lists(lane, min_size=count, max_size=count).map(
        lambda ls: sum(x << (i * width) for i, x in enumerate(ls)))
    # splats make equal lanes in both operands likely (e.g. INT_MIN * INT_MIN)
    splat = sum(1 << (i * width) for i in range(count))
    return st.one_of(lanes, lane.map(lambda x: x * splat))


# swizzle indices: in range, just past it (16..31 select 0, not the other operand), high bit set
_SWIZZLE_INDICES = st.lists(st.sampled_from([0, 1, 7, 14, 15, 16, 17, 31, 32, 127, 128, 240, 255]),
                            min_size=16, max_size=16).map(lambda ls: int.from_bytes(bytes(ls), "little"))


def v128_strategy(op_name: str) -> st.SearchStrategy[int]:
    """v128 operands for `op_name`: lanes of the shapes its name mentions, or random bits."""
    shapes = [s for s in _SHAPES if s in op_name] or list(_SHAPES)
    extra = [_SWIZZLE_INDICES] if "swizzle" in op_name else []
    return st.one_of(*[_shape_strategy(s) for s in shapes], *extra, st.integers(0, (1 << 128) - 1))


def operand_strategy(op_name: str, t: ValType) -> st.SearchStrategy[int]:
    return v128_strategy(op_name) if t == ValType.V128 else SCALAR_STRATEGIES[t]


# A few shuffle masks: identity, reversals, broadcasts, all-from-b, interleavings, random.
def _shuffle_masks() -> list[tuple[int, ...]]:
    rng = random.Random(1234)
    masks = [tuple(range(16)), tuple(range(16, 32)), tuple(range(31, 15, -1)), tuple(range(15, -1, -1)),
             (0,) * 16, (31,) * 16, tuple(i // 2 + (16 if i % 2 else 0) for i in range(16)),
             tuple(range(8, 24))]
    masks += [tuple(rng.randrange(32) for _ in range(16)) for _ in range(8)]
    return masks


SHUFFLE_MASKS = _shuffle_masks()


# ---------------------------------------------------------------- one differential check


def oracle_for(name: str, params, results, imm_kind: str | None, imm_limit: int, memory: bool = False):
    """(imm values, oracle function per imm value) for an operator of deadeye's tables."""
    params, results = tuple(params), tuple(results)
    if memory:
        funcs = memory_op_functions(name, params, results, imm_limit if imm_kind else 0)
        return (list(range(imm_limit)) if imm_kind else [None]), funcs
    if imm_kind == "lane":
        instrs = tuple(f"{name} {i}" for i in range(imm_limit))
        return list(range(imm_limit)), op_functions(instrs, params, results)
    if imm_kind == "shuffle":
        instrs = tuple(f"{name} {' '.join(map(str, m))}" for m in SHUFFLE_MASKS)
        return SHUFFLE_MASKS, op_functions(instrs, params, results)
    return [None], op_functions((name,), params, results)


def check_differential(info, args, imm, oracle) -> None:
    """Run deadeye's `info.fn` and the wasmtime `oracle` on the same operands and assert
    that they agree: same trap message, or results bit-identical / NaNs of an allowed class."""
    call_args = (*args, imm) if imm is not None else args
    try:
        ours, our_trap = info.fn(*call_args), None
    except Trap as t:
        ours, our_trap = None, t.message
    try:
        theirs, their_trap = oracle(*args), None
    except OracleTrap as t:
        theirs, their_trap = None, t.message
    shown = ", ".join(hex(a) for a in args) + (f"; imm {imm}" if imm is not None else "")
    assert our_trap == their_trap, f"{info.name}({shown}): trap {our_trap!r} vs wasmtime {their_trap!r}"
    if our_trap is not None:
        return
    (theirs,) = theirs
    if info.nan:
        in_width = 64 if "demote" in info.name else 32 if "promote" in info.name else None
        err = nan_agreement_error(info.nan, info.params, args, ours, theirs, in_width)
        assert err is None, f"{info.name}({shown}): {err}"
    else:
        assert ours == theirs, f"{info.name}({shown}): 0x{ours:x} vs wasmtime 0x{theirs:x}"


# ---------------------------------------------------------------- a deterministic edge grid

_GRID_F32 = [0, 0x80000000, 0x3F800000, 0xBF800000, 0x3F000000, 0xBFC00000, 0x7F800000,
             0xFF800000, 0x7FC00000, 0xFFC00000, 0x7FA00001, 0x00000001, 0x4F000000, 0x7F7FFFFF]
_GRID_F64 = [0, 1 << 63, 0x3FF0000000000000, 0xBFF0000000000000, 0x3FE0000000000000,
             0xBFF8000000000000, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
             0xFFF8000000000000, 0x7FF4000000000001, 1, 0x41E0000000000000, 0x7FEFFFFFFFFFFFFF]
_TIES = [(1 << 24) + 1, (1 << 24) + 3, (1 << 53) + 1, (1 << 53) + (1 << 29) + 1,
         (1 << 62) + (1 << 38) + 1, (1 << 63) + (1 << 39) + 1]  # float-rounding ties and near-ties
GRID = {ValType.I32: [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 15, 31, 32, 33, 64, *_TIES[:2],
                      (-_TIES[1]) & 0xFFFFFFFF],
        ValType.I64: [0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 31, 63, 64, 1 << 32, *_TIES,
                      (-_TIES[4]) & ((1 << 64) - 1)],
        ValType.F32: _GRID_F32, ValType.F64: _GRID_F64}


def _v128_grid(op_name: str) -> list[int]:
    shapes = [s for s in _SHAPES if s in op_name] or list(_SHAPES)
    out = []
    for shape in shapes:
        width, fl = _SHAPES[shape]
        count = 128 // width
        splat = sum(1 << (i * width) for i in range(count))
        m, s = (1 << width) - 1, 1 << (width - 1)
        vals = (_GRID_F32 if fl == 32 else _GRID_F64) if fl else [0, 1, m, s, s - 1]
        out += [v * splat for v in vals]
        out.append(sum(vals[i % len(vals)] << (i * width) for i in range(count)))  # mixed lanes
    return sorted(set(out))


def edge_grid(op_name: str, kinds, limit: int = 200) -> list[tuple[int, ...]]:
    """Every combination of a few edge values per operand (all lanes equal, or mixed),
    thinned evenly to at most `limit` combinations."""
    pools = [_v128_grid(op_name) if k == ValType.V128 else GRID[k] for k in kinds]
    combos = list(itertools.product(*pools))
    step = max(1, len(combos) // limit)
    return combos[::step]
