"""Every SIMD opcode of the frontend's table, end to end at the wasm level, on every deadeye
engine (ir, interp, native; opt levels 0 and 2) against wasmtime, lane by lane.

Each opcode gets one tiny module. Its `run(n)` walks n records in memory; a record holds the
operands (one 16-byte slot each, scalars in the low bytes) and one 16-byte result slot per
immediate variant (each lane index, or each shuffle mask of SHUFFLE_MASKS). Loads read their
bytes from the first slot, stores write into the result slots. One hypothesis example is one
batch of records and one `run` call per engine, so each module compiles once and the test
stays fast. v128 never crosses the wasmtime-py boundary (it aborts on v128 signatures): only
memory does.

A second function, `consts`, applies the op to constant operands (an edge grid), which at O2
exercises constant folding of SIMD (through ir.numerics) and v128 constant materialization.

Results must be bit-identical, except lanes of ops obeying the arithmetic-NaN rule, where
both sides must be NaNs of the class the spec allows (`nan_agreement_error`)."""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deadeye
import wasmtime
from deadeye.frontend.opcodes import OPS, PREFIX_SIMD, OpInfo
from deadeye.ir import numerics as nx
from deadeye.ir.types import ValType
from wasm_oracle import (SHUFFLE_MASKS, WasmModule, access_bytes, edge_grid, nan_agreement_error,
                         operand_strategy)

V128 = ValType.V128
SIMD_OPS: dict[str, OpInfo] = {
    n: i for n, i in OPS.items() if isinstance(i.code, tuple) and i.code[0] == PREFIX_SIMD}

# (engine, opt level): the native engine runs in its default dispatch mode.
CONFIGS = [(e, o) for e in ("ir", "interp", "native") for o in (0, 2)]

SLOT = 16
BASE = 3  # records (and the consts' results) start here: every v128 access is unaligned
BATCH = 32  # records per hypothesis example (at least half that many)
EXAMPLES = 6  # hypothesis examples per opcode
GRID = 24  # constant operand combinations per opcode
_FILL = b"\x5a" * SLOT  # what a result slot holds before the op (stores leave bytes of it)
_TYPE = {ValType.I32: "i32", ValType.I64: "i64", ValType.F32: "f32", ValType.F64: "f64", V128: "v128"}
_BYTES = {ValType.I32: 4, ValType.I64: 8, ValType.F32: 4, ValType.F64: 8, V128: 16}


def _is_memory(op: OpInfo) -> bool:
    return op.imm.startswith("memarg")


def _is_store(op: OpInfo) -> bool:
    return _is_memory(op) and not op.results


@dataclass(frozen=True)
class Case:
    """How one opcode is driven: its record layout and immediate variants."""

    op: OpInfo
    imms: tuple | None = None  # the immediate variants, when not every valid one

    @property
    def variants(self) -> list:
        """The immediate of each variant (None: the op has none)."""
        if self.imms is not None:
            return list(self.imms)
        if self.op.imm in ("lane", "memarg+lane"):
            return list(range(self.op.lanes))
        if self.op.imm == "shuffle16":
            return list(SHUFFLE_MASKS)
        return [None]

    @property
    def inputs(self) -> tuple[ValType, ...]:
        """Types of the operand slots. A load's address operand becomes a slot of bytes to
        load (typed V128: 16 random bytes); a store's address is its result slot."""
        params = self.op.params
        if _is_memory(self.op):
            return params[1:] if _is_store(self.op) else (V128, *params[1:])
        return params

    @property
    def record(self) -> int:
        return SLOT * (len(self.inputs) + len(self.variants))

    def out_at(self, k: int) -> int:
        return SLOT * (len(self.inputs) + k)

    @property
    def out_bytes(self) -> int:
        return _BYTES[self.op.results[0]] if self.op.results else SLOT

    def instr(self, imm, memarg: int = 0) -> str:
        text = self.op.name
        if _is_memory(self.op):
            text += f" offset={memarg}"
        if self.op.imm == "shuffle16":
            text += " " + " ".join(map(str, imm))
        elif imm is not None:
            text += f" {imm}"
        return text

    def _apply(self, k: int, imm, operands: list[str], out: str) -> list[str]:
        """The code of variant k: its operands, the op, the store of its result at `out`
        (an address expression; memarg offsets carry the rest)."""
        op = self.op
        if _is_store(op):
            return [out, *operands, self.instr(imm, self.out_at(k))]
        if _is_memory(op):  # load: the address of the bytes slot, then any v128 operand
            return [out, "local.get $p", *operands[1:], self.instr(imm, 0),
                    f"v128.store offset={self.out_at(k)}"]
        rt = _TYPE[op.results[0]]
        return [out, *operands, self.instr(imm), f"{rt}.store offset={self.out_at(k)}"]

    def run_wat(self) -> str:
        operands = [f"local.get $p {_TYPE[t]}.load offset={SLOT * j}" for j, t in enumerate(self.inputs)]
        body = []
        for k, imm in enumerate(self.variants):
            body += self._apply(k, imm, operands, "local.get $p")
        return f"""(func (export "run") (param $n i32) (local $p i32)
    (local.set $p (i32.const {BASE}))
    (block (loop
      (br_if 1 (i32.eqz (local.get $n)))
      {" ".join(body)}
      (local.set $p (i32.add (local.get $p) (i32.const {self.record})))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br 0))))"""

    def grid(self) -> list[tuple[int, ...]]:
        """Constant operand combinations (edge values)."""
        if self.op.name == "v128.const":
            return [(v,) for v, in edge_grid("v128", (V128,), GRID)]
        return edge_grid(self.op.name, self.op.params, GRID)

    def consts_wat(self) -> str:
        """`consts`: variant i % len(variants) of the op on constant combination i, each
        result stored at BASE + SLOT * i (a v128.const "op" just stores its constant)."""
        body = []
        for i, args in enumerate(self.grid()):
            k = i % len(self.variants)
            operands = [_const(t, a) for t, a in zip(self.op.params, args)]
            if self.op.name == "v128.const":
                body += [f"i32.const {BASE + SLOT * i}", _const(V128, args[0]), "v128.store"]
                continue
            rt = _TYPE[self.op.results[0]]
            body += [f"i32.const {BASE + SLOT * i}", *operands, self.instr(self.variants[k]),
                     f"{rt}.store"]
        return f'(func (export "consts")\n    {" ".join(body)})'

    def wat(self) -> str:
        funcs = [self.run_wat()] if self.op.name != "v128.const" else []
        if not _is_memory(self.op):
            funcs.append(self.consts_wat())
        return '(module (memory (export "mem") 1)\n  ' + "\n  ".join(funcs) + ")"


def _float_literal(bits: int, width: int) -> str:
    """Exact WAT text of a float's bits (NaN payloads included)."""
    mbits = 23 if width == 32 else 52
    sign = "-" if bits >> (width - 1) else ""
    exp, mant = (bits >> mbits) & ((1 << (width - 1 - mbits)) - 1), bits & ((1 << mbits) - 1)
    if exp == (1 << (width - 1 - mbits)) - 1:
        return sign + (f"nan:0x{mant:x}" if mant else "inf")
    fmt = "<I" if width == 32 else "<Q"
    value = struct.unpack("<f" if width == 32 else "<d", struct.pack(fmt, bits))[0]
    return value.hex()


def _const(t: ValType, bits: int) -> str:
    if t == V128:
        return f"v128.const i64x2 {bits & ((1 << 64) - 1)} {bits >> 64}"
    if t in (ValType.F32, ValType.F64):
        return f"{_TYPE[t]}.const {_float_literal(bits, 32 if t == ValType.F32 else 64)}"
    return f"{_TYPE[t]}.const {bits}"


# ---------------------------------------------------------------- the engines


@functools.cache
def _store(engine: str, opt_level: int):
    config = deadeye.Engine(deadeye.Config(engine=engine, opt_level=opt_level))
    return config, deadeye.Store(config)


class _Deadeye:
    def __init__(self, cfg, wasm: bytes):
        engine, self.store = _store(*cfg)
        inst = deadeye.Instance(self.store, deadeye.Module(engine, wasm), [])
        self.exports = inst.exports(self.store)
        self.mem = self.exports["mem"]

    def call(self, name: str, *args) -> None:
        self.exports[name](self.store, *args)

    def write(self, offset: int, data: bytes) -> None:
        self.mem.write(self.store, data, offset)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.mem.read(self.store, offset, offset + length))


@functools.cache
def _instances(name: str) -> tuple[Case, WasmModule, dict]:
    """The case of opcode `name`, its module on wasmtime and on every deadeye config
    (compiled once per session)."""
    case = Case(SIMD_OPS[name])
    oracle = WasmModule(case.wat())
    wasm = wasmtime.wat2wasm(case.wat())  # the very binary wasmtime runs
    return case, oracle, {cfg: _Deadeye(cfg, wasm) for cfg in CONFIGS}


def _results(inst, case: Case, fn: str, data: bytes, slots: list[int], *args) -> list[int]:
    """Write `data` at BASE, call `fn`, read the results at the offsets `slots` from BASE."""
    inst.write(BASE, data)
    inst.call(fn, *args)
    out = inst.read(BASE, max(slots) + SLOT)
    return [int.from_bytes(out[s:s + case.out_bytes], "little") for s in slots]


def _numerics(case: Case, rec: tuple[int, ...], imm) -> int:
    """What ir.numerics says variant `imm` of the op gives on record `rec` (the op's operands,
    a load's bytes first)."""
    name, extra = case.op.name, (() if imm is None else (imm,))
    if not _is_memory(case.op):
        return rec[0] if name == "v128.const" else nx.INFO[name].fn(*rec, *extra)
    info = nx.MEMORY_INFO.get(name)
    if info is None:  # v128.load / v128.store copy 16 bytes
        return rec[0]
    n = 8 * access_bytes(name)
    if _is_store(case.op):  # the stored bytes, then what the slot held
        return info.fn(*rec, *extra) | (int.from_bytes(_FILL, "little") >> n << n)
    return info.fn(*rec[1:], rec[0] & ((1 << n) - 1), *extra)


def _compare(case: Case, where: str, labels: list[str], operands: list[tuple], ours: list[int],
             theirs: list[int]) -> None:
    info = nx.INFO.get(case.op.name)
    nan = info.nan if info else None
    in_width = 64 if "demote" in case.op.name else 32 if "promote" in case.op.name else None
    for label, args, o, t in zip(labels, operands, ours, theirs):
        if o == t:
            continue
        err = (nan_agreement_error(nan, case.op.params, args, o, t, in_width) if nan
               else f"0x{o:x} != wasmtime 0x{t:x}")
        shown = ", ".join(hex(a) for a in args)
        assert err is None, f"{case.op.name} on {where}, {label}({shown}): {err}"


def _agree(name: str, fn: str, data: bytes, slots: list[int], operands: list[tuple], imms: list,
           *args: int) -> None:
    """Run export `fn` on wasmtime and every deadeye config, and check that the results at
    `slots` (from operands `operands` and immediates `imms`) agree, and with ir.numerics."""
    case, oracle, engines = _instances(name)
    labels = [f"#{i}" + ("" if imm is None else f", imm {imm}") for i, imm in enumerate(imms)]
    theirs = _results(oracle, case, fn, data, slots, *args)
    expected = [_numerics(case, rec, imm) for rec, imm in zip(operands, imms)]
    _compare(case, "ir.numerics", labels, operands, expected, theirs)
    for (engine, level), inst in engines.items():
        ours = _results(inst, case, fn, data, slots, *args)
        _compare(case, f"{engine} -O{level}", labels, operands, ours, theirs)


def _check_batch(name: str, records: list[tuple[int, ...]]) -> None:
    case = _instances(name)[0]
    data = b"".join(
        b"".join(v.to_bytes(SLOT, "little") for v in rec) + _FILL * len(case.variants) for rec in records)
    slots, operands, imms = [], [], []
    for r, rec in enumerate(records):
        for k, imm in enumerate(case.variants):
            slots.append(r * case.record + case.out_at(k))
            operands.append(rec)
            imms.append(imm)
    _agree(name, "run", data, slots, operands, imms, len(records))


# ---------------------------------------------------------------- the tests

MEMORY_DRIVEN = sorted(n for n in SIMD_OPS if n != "v128.const")
CONSTANT = sorted(n for n, i in SIMD_OPS.items() if not _is_memory(i))


def _record_strategy(case: Case) -> st.SearchStrategy:
    name = case.op.name
    return st.tuples(*[operand_strategy(name, t) for t in case.inputs])


@pytest.mark.parametrize("name", MEMORY_DRIVEN)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_simd_op_on_engines(name, data):
    case = _instances(name)[0]
    records = data.draw(st.lists(_record_strategy(case), min_size=BATCH // 2, max_size=BATCH),
                        label="records")
    _check_batch(name, records)


@pytest.mark.parametrize("name", CONSTANT)
def test_simd_op_folded(name):
    case = _instances(name)[0]
    grid = case.grid()
    imms = [case.variants[i % len(case.variants)] for i in range(len(grid))]
    _agree(name, "consts", bytes(SLOT * len(grid)), [SLOT * i for i in range(len(grid))], grid, imms)


def test_every_simd_opcode_is_covered():
    # Wasm 2.0 has 236 SIMD opcodes (relaxed SIMD is out of scope); each is tested here, and
    # ir.numerics gives the semantics of all but the full-width load/store and the constant.
    assert len(SIMD_OPS) == 236
    assert set(MEMORY_DRIVEN) | set(CONSTANT) == set(SIMD_OPS)
    with_semantics = {n for n, i in nx.INFO.items() if V128 in i.params or V128 in i.results}
    with_semantics |= {n for n in nx.MEMORY_INFO if n.startswith("v128.")}
    assert set(SIMD_OPS) == with_semantics | {"v128.load", "v128.store", "v128.const"}
    for name in SIMD_OPS:  # every op's module builds and validates on wasmtime
        _instances(name)


LANE_OPS = sorted(n for n, i in SIMD_OPS.items() if i.lanes)


@pytest.mark.parametrize("name", LANE_OPS)
def test_out_of_range_lane_immediate_is_invalid(name):
    # lane immediates must be below the lane count (32 for a shuffle's byte indices)
    op = SIMD_OPS[name]
    for bad in (op.lanes, 255):
        imm = (0,) * 15 + (bad,) if op.imm == "shuffle16" else bad
        wasm = wasmtime.wat2wasm(Case(op, imms=(imm,)).wat())
        with pytest.raises(wasmtime.WasmtimeError):
            wasmtime.Module(wasmtime.Engine(), wasm)
        with pytest.raises(deadeye.ValidationError, match="lane"):
            deadeye.Module(deadeye.Engine(), wasm)
