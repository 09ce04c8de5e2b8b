"""A generator of valid Wasm modules, emitted straight to the binary format.

Every choice goes through a `Chooser`: `RandomChooser` (seeded, for campaigns) or
`ByteChooser` (reads a byte string, for hypothesis: shrinking the bytes towards zeros
shrinks the module, because choice 0 is always the simplest option — a leaf, the end of
a statement list, a zero count).

The modules are built so that running them terminates quickly and deterministically:
loops count down a reserved local, direct calls only go to lower-numbered functions (or
to the function itself, guarded by a depth parameter), the table holds only leaf
functions, and — unless the module is meant for a NaN-canonicalizing engine — every
float result that may be NaN (the spec lets its payload vary) is replaced by a fixed NaN
that keeps only whether it was quiet. Exported functions take and return only i32/i64
(wasmtime-py passes floats through C floats and cannot handle v128 signatures); floats
and vectors reach the outside through reinterpretation and linear memory.
"""

from __future__ import annotations

import abc
import random
from dataclasses import dataclass, field

from deadeye.frontend import opcodes as _ops
from deadeye.ir import numerics as _numerics
from deadeye.ir.types import ValType

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
SCALARS = (I32, I64, F32, F64)
INTS = (I32, I64)

PAGE = 65536
MEM_MIN, MEM_MAX = 1, 3
TABLE_SIZE = 8
MAX_RECURSION = 3  # a recursive function returns at once when its depth param >= this
STATE_EXPORT = "__state"  # returns every global's bits (as i64s)

# -------------------------------------------------------------------------- choosers


class Chooser(abc.ABC):
    @abc.abstractmethod
    def int(self, lo: int, hi: int) -> int:
        """A number in [lo, hi]; `lo` is the simplest choice."""

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]

    def chance(self, percent: int) -> bool:
        """True with about `percent`% probability (False when choices run out)."""
        return self.int(0, 99) >= 100 - percent

    def weighted(self, options):
        """`options`: [(weight, value)]; the first is the fallback choice."""
        total = sum(w for w, _ in options)
        k = self.int(0, total - 1)
        for w, v in options:
            if k < w:
                return v
            k -= w
        return options[-1][1]


class RandomChooser(Chooser):
    def __init__(self, seed_or_rng):
        self.rng = seed_or_rng if isinstance(seed_or_rng, random.Random) else random.Random(seed_or_rng)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class ByteChooser(Chooser):
    """Consumes a byte string; once it is exhausted every choice is `lo`."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def int(self, lo: int, hi: int) -> int:
        span = hi - lo + 1
        if span <= 1:
            return lo
        nbytes = (span.bit_length() + 7) // 8
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        if not chunk:
            return lo
        return lo + int.from_bytes(chunk, "little") % span


# -------------------------------------------------------------------------- encoding


def uleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if (v == 0 and not b & 0x40) or (v == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def name(s: str) -> bytes:
    b = s.encode()
    return uleb(len(b)) + b


def section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + uleb(len(payload)) + payload


def functype(params, results) -> bytes:
    return b"\x60" + vec([bytes([t]) for t in params]) + vec([bytes([t]) for t in results])


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


# -------------------------------------------------------------------------- operator tables

OPS = _ops.OPS
_PLAIN = [i for i in OPS.values() if i.is_plain and i.imm == "" and "relaxed" not in i.name]
OPS_BY_RESULT = {t: [i for i in _PLAIN if i.results == (t,)] for t in (*SCALARS, V128)}
LANE_OPS = {t: [i for i in OPS.values() if i.imm == "lane" and i.results == (t,)] for t in (*SCALARS, V128)}
LOADS = {t: [i for i in OPS.values() if i.imm == "memarg" and i.results == (t,)] for t in (*SCALARS, V128)}
STORES = [i for i in OPS.values() if i.imm == "memarg" and i.results == ()]
LOAD_LANES = [i for i in OPS.values() if i.imm == "memarg+lane" and i.results == (V128,)]
STORE_LANES = [i for i in OPS.values() if i.imm == "memarg+lane" and i.results == ()]
# Operators whose NaN results the spec leaves partly unspecified.
NAN_OPS = frozenset(_numerics.NAN_CANONICALIZE)
_REINTERPRET = {F32: ("i32.reinterpret_f32", I32), F64: ("i64.reinterpret_f64", I64)}
_QUIET = {F32: 1 << 22, F64: 1 << 51}
_NAN_MARK = {F32: (0x7FC00000, 0x7FA00000), F64: (0x7FF8000000000000, 0x7FF4000000000000)}

_I32_EDGES = [0, 1, 2, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 7, 8, 31, 32, 33, 255, 0xFFFF, 0x10000, 0xFFFFFFFE]
_I64_EDGES = [0, 1, 2, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 63, 64, 65, 1 << 32, 0xFFFFFFFF, 0x80000000]
_F32_EDGES = [0, 0x80000000, 0x3F800000, 0xBF800000, 0x3F000000, 0x40490FDB, 0x7F800000, 0xFF800000,
              0x7FC00000, 0xFFC00000, 0x7FA00001, 0x7FC00123, 0x00000001, 0x4F000000, 0xCF000000,
              0x7F7FFFFF, 0x5F000000, 0x4F800000, 0x3FC00000, 0x40200000, 0xBF000001]
_F64_EDGES = [0, 1 << 63, 0x3FF0000000000000, 0xBFF0000000000000, 0x3FE0000000000000,
              0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000, 0xFFF8000000000000,
              0x7FF4000000000001, 0x7FF8000000000123, 1, 0x41E0000000000000, 0xC1E0000000000000,
              0x43E0000000000000, 0x7FEFFFFFFFFFFFFF, 0x3FF8000000000000, 0x4004000000000000]
EDGES = {I32: _I32_EDGES, I64: _I64_EDGES, F32: _F32_EDGES, F64: _F64_EDGES}
BITS = {I32: 32, I64: 64, F32: 32, F64: 64, V128: 128}


def random_bits(c: Chooser, t: ValType) -> int:
    """A value of type `t` as bits, biased to edge cases."""
    if t == V128:
        how = c.int(0, 3)
        if how == 0:
            return 0
        if how == 1:  # a splat of an edge value of some lane type
            lt = c.pick(SCALARS)
            v = c.pick(EDGES[lt])
            n = 128 // BITS[lt]
            return sum(v << (i * BITS[lt]) for i in range(n))
        if how == 2:
            return sum(random_bits(c, I32) << (32 * i) for i in range(4))
        return c.int(0, (1 << 128) - 1)
    how = c.int(0, 3)
    if how == 0:
        return c.int(0, 16)
    if how == 1 or how == 2:
        return c.pick(EDGES[t])
    return c.int(0, (1 << BITS[t]) - 1)


# -------------------------------------------------------------------------- the generator


@dataclass
class GenConfig:
    nan_canonical: bool = False  # False: NaN results are made deterministic in the code
    simd: bool = True
    max_funcs: int = 6
    max_stmts: int = 5
    max_depth: int = 4
    max_budget: int = 50  # expression/statement nodes per function


@dataclass
class FuncSig:
    params: tuple
    results: tuple


@dataclass
class GeneratedModule:
    wasm: bytes
    exports: list  # (name, params, results) of the exported functions
    recursive: set  # names of exports whose first param is a recursion depth
    nan_canonical: bool
    config: GenConfig = field(default_factory=GenConfig)


@dataclass
class _Label:
    kind: str  # "block", "loop", "if", "func"
    types: tuple  # what a branch to it carries


class _Func:
    def __init__(self, index: int, sig: FuncSig, leaf: bool, recursive: bool):
        self.index = index
        self.sig = sig
        self.leaf = leaf
        self.recursive = recursive
        self.locals = list(sig.params)
        self.reserved: set[int] = set()  # never written by generated code
        self.hidden: set[int] = set()  # never read either (they may hold a raw NaN)
        self.code = bytearray()


class ModuleGen:
    def __init__(self, c: Chooser, cfg: GenConfig | None = None):
        self.c = c
        self.cfg = cfg or GenConfig()
        self.types: list[FuncSig] = []
        self.type_index: dict[tuple, int] = {}

    # -- module level --------------------------------------------------------------

    def type_idx(self, params, results) -> int:
        key = (tuple(params), tuple(results))
        idx = self.type_index.get(key)
        if idx is None:
            idx = self.type_index[key] = len(self.types)
            self.types.append(FuncSig(*key))
        return idx

    def gen_sig(self, exported: bool) -> FuncSig:
        c = self.c
        pool = INTS if exported else SCALARS
        params = tuple(c.pick(pool) for _ in range(c.int(0, 3)))
        results = tuple(c.pick(pool) for _ in range(c.weighted([(1, 0), (5, 1), (2, 2), (1, 3)])))
        return FuncSig(params, results)

    def generate(self) -> GeneratedModule:
        c, cfg = self.c, self.cfg
        nfuncs = c.int(1, cfg.max_funcs)
        nleaves = c.int(1, nfuncs)
        self.funcs: list[_Func] = []
        for i in range(nfuncs):
            exported = i == nfuncs - 1 or c.chance(50)
            sig = self.gen_sig(exported)
            recursive = i >= nleaves and c.chance(25)
            if recursive:
                sig = FuncSig((I32, *sig.params), sig.results)
            self.funcs.append(_Func(i, sig, leaf=i < nleaves, recursive=recursive))
        for f in self.funcs:
            self.type_idx(f.sig.params, f.sig.results)
        # A duplicate of an existing type: call_indirect must compare types structurally.
        if c.chance(30):
            self.types.append(self.types[c.int(0, len(self.types) - 1)])
        # Globals: one mutable of each type (plus an immutable one sometimes).
        self.globals: list[tuple[ValType, bool, int]] = []
        gtypes = [*SCALARS, V128] if cfg.simd else list(SCALARS)
        for t in gtypes:
            self.globals.append((t, True, random_bits(c, t)))
        for _ in range(c.int(0, 2)):
            t = c.pick(gtypes)
            self.globals.append((t, False, random_bits(c, t)))
        # The table: leaves from `elem_offset` on, the rest null.
        self.elem_offset = c.int(0, 2)
        leaves = [f.index for f in self.funcs if f.leaf]
        self.elems = [c.pick(leaves) for _ in range(c.int(1, TABLE_SIZE - self.elem_offset))]
        for f in self.funcs:
            self.gen_func(f)
        return self.emit()

    def exportable(self, f: _Func) -> bool:
        return all(t in INTS for t in (*f.sig.params, *f.sig.results))

    def emit(self) -> GeneratedModule:
        c = self.c
        state_results = []
        for t, _, _ in self.globals:
            state_results += [I64, I64] if t == V128 else [I64]
        state_type = self.type_idx((), tuple(state_results))
        types = b"".join(functype(s.params, s.results) for s in self.types)
        out = bytearray(b"\0asm\x01\0\0\0")
        out += section(1, uleb(len(self.types)) + types)
        funcsec = [uleb(self.type_idx(f.sig.params, f.sig.results)) for f in self.funcs]
        funcsec.append(uleb(state_type))
        out += section(3, vec(funcsec))
        out += section(4, vec([b"\x70\x00" + uleb(TABLE_SIZE)]))
        out += section(5, vec([b"\x01" + uleb(MEM_MIN) + uleb(MEM_MAX)]))
        gl = []
        for t, mut, v in self.globals:
            gl.append(bytes([t, 1 if mut else 0]) + self.const_bytes(t, v) + b"\x0b")
        out += section(6, vec(gl))
        exports, recursive = [], set()
        ex = [name("mem") + b"\x02\x00"]
        for f in self.funcs:
            if self.exportable(f):
                n = f"f{f.index}"
                ex.append(name(n) + b"\x00" + uleb(f.index))
                exports.append((n, f.sig.params, f.sig.results))
                if f.recursive:
                    recursive.add(n)
        ex.append(name(STATE_EXPORT) + b"\x00" + uleb(len(self.funcs)))
        out += section(7, vec(ex))
        out += section(9, vec([b"\x00\x41" + sleb(self.elem_offset) + b"\x0b"
                               + vec([uleb(i) for i in self.elems])]))
        bodies = [self.body_bytes(f) for f in self.funcs]
        bodies.append(self.state_body())
        out += section(10, vec([uleb(len(b)) + b for b in bodies]))
        data = []
        for _ in range(c.int(0, 2)):
            at = c.int(0, 256)
            blob = bytes(c.int(0, 255) for _ in range(c.int(1, 24)))
            data.append(b"\x00\x41" + sleb(at) + b"\x0b" + uleb(len(blob)) + blob)
        if data:
            out += section(11, vec(data))
        return GeneratedModule(bytes(out), exports, recursive, self.cfg.nan_canonical, self.cfg)

    def state_body(self) -> bytes:
        code = bytearray(b"\x00")  # no locals
        for i, (t, _, _) in enumerate(self.globals):
            get = b"\x23" + uleb(i)
            if t == V128:
                code += get + op_bytes("i64x2.extract_lane") + b"\x00"
                code += get + op_bytes("i64x2.extract_lane") + b"\x01"
                continue
            code += get
            if t in _REINTERPRET:
                code += op_bytes(_REINTERPRET[t][0])
                t = _REINTERPRET[t][1]
            if t == I32:
                code += op_bytes("i64.extend_i32_u")
        return bytes(code + b"\x0b")

    @staticmethod
    def const_bytes(t: ValType, v: int) -> bytes:
        if t == I32:
            return b"\x41" + sleb(_signed(v, 32))
        if t == I64:
            return b"\x42" + sleb(_signed(v, 64))
        if t == F32:
            return b"\x43" + v.to_bytes(4, "little")
        if t == F64:
            return b"\x44" + v.to_bytes(8, "little")
        return op_bytes("v128.const") + v.to_bytes(16, "little")

    def body_bytes(self, f: _Func) -> bytes:
        groups = []
        for t in f.locals[len(f.sig.params):]:
            if groups and groups[-1][1] == t:
                groups[-1][0] += 1
            else:
                groups.append([1, t])
        head = vec([uleb(n) + bytes([t]) for n, t in groups])
        return head + bytes(f.code) + b"\x0b"

    # -- function bodies -------------------------------------------------------------

    def gen_func(self, f: _Func) -> None:
        self.f = f
        self.code = f.code
        self.labels = [_Label("func", f.sig.results)]
        self.budget = self.c.int(4, self.cfg.max_budget)
        self.in_loop = 0
        self.calls_left = 3
        self.self_calls = 2
        if f.recursive:
            f.reserved.add(0)
            # if depth >= MAX_RECURSION: return defaults
            self.code += b"\x20\x00" + self.const_bytes(I32, MAX_RECURSION) + op_bytes("i32.ge_u")
            self.code += b"\x04\x40"
            self.labels.append(_Label("if", ()))
            for t in f.sig.results:
                self.leaf(t)
            self.code += b"\x0f\x0b"
            self.labels.pop()
        self.stmts(self.cfg.max_depth)
        for t in f.sig.results:
            self.expr(t, self.cfg.max_depth)

    def new_local(self, t: ValType) -> int:
        self.f.locals.append(t)
        return len(self.f.locals) - 1

    def locals_of(self, t: ValType, writable: bool = False) -> list[int]:
        f = self.f
        return [i for i, lt in enumerate(f.locals) if lt == t and i not in f.hidden
                and not (writable and i in f.reserved)]

    def emit_op(self, opname: str) -> None:
        self.code += op_bytes(opname)

    def leaf(self, t: ValType) -> None:
        locs = self.locals_of(t)
        if locs and self.c.chance(50):
            self.code += b"\x20" + uleb(self.c.pick(locs))
        else:
            self.code += self.const_bytes(t, random_bits(self.c, t))

    def value_types(self) -> tuple:
        return (*SCALARS, V128) if self.cfg.simd else SCALARS

    # -- expressions: each pushes exactly one value of type t -------------------------

    def expr(self, t: ValType, depth: int) -> None:
        if depth <= 0 or self.budget <= 0:
            self.leaf(t)
            return
        self.budget -= 1
        c = self.c
        opts = [(6, self.leaf_expr), (14, self.op_expr), (3, self.global_expr), (3, self.load_expr),
                (2, self.select_expr), (2, self.block_expr), (2, self.if_expr), (2, self.tee_expr),
                (2, self.multi_block_expr)]
        if not self.f.leaf:
            opts += [(3, self.call_expr), (2, self.call_indirect_expr)]
        if t == I32:
            opts += [(1, self.memory_size_expr), (1, self.memory_grow_expr)]
        if self.cfg.simd and (LANE_OPS[t] or t == V128):
            opts += [(3, self.lane_expr)]
        c.weighted(opts)(t, depth - 1)

    def leaf_expr(self, t, depth):
        self.leaf(t)

    def op_expr(self, t, depth):
        ops = OPS_BY_RESULT[t]
        if not self.cfg.simd:
            ops = [o for o in ops if V128 not in o.params]
        if not ops:
            self.leaf(t)
            return
        info = self.c.pick(ops)
        for k, p in enumerate(info.params):
            self.expr(p, depth)
            # Keep most divisions from trapping (some still do: x/0, INT_MIN/-1).
            if k == 1 and p in INTS and ("div" in info.name or "rem" in info.name) \
                    and self.c.chance(70):
                self.code += self.const_bytes(p, 1) + op_bytes(f"{p.name.lower()}.or")
        self.code += _ops.encode_opcode(info)
        if info.name in NAN_OPS and not self.cfg.nan_canonical:
            self.normalize_nan(t, info.name)

    def normalize_nan(self, t: ValType, opname: str) -> None:
        """Replace a NaN on the stack by a fixed NaN telling only whether it was quiet
        (arithmetic NaNs must be): the rest of its bits are up to the engine."""
        code = self.code
        if t == V128:
            lane = F64 if opname.startswith("f64x2") else F32
            shape = "f64x2" if lane == F64 else "f32x4"
            ishape = "i64x2" if lane == F64 else "i32x4"
            n = 128 // BITS[lane]
            splat = lambda v: sum(v << (i * BITS[lane]) for i in range(n))  # noqa: E731
            s = self.new_local(V128)
            self.f.hidden.add(s)
            q, sig = _NAN_MARK[lane]
            code += b"\x21" + uleb(s)
            code += b"\x20" + uleb(s)  # kept where not NaN
            code += self.const_bytes(V128, splat(q)) + self.const_bytes(V128, splat(sig))
            code += b"\x20" + uleb(s) + self.const_bytes(V128, splat(_QUIET[lane])) + op_bytes("v128.and")
            code += self.const_bytes(V128, 0) + op_bytes(f"{ishape}.ne") + op_bytes("v128.bitselect")
            code += b"\x20" + uleb(s) + b"\x20" + uleb(s) + op_bytes(f"{shape}.eq")
            code += op_bytes("v128.bitselect")
            return
        s = self.new_local(t)
        self.f.hidden.add(s)
        q, sig = _NAN_MARK[t]
        it = _REINTERPRET[t][1]
        tn, itn = t.name.lower(), it.name.lower()
        code += b"\x21" + uleb(s) + b"\x20" + uleb(s)
        code += self.const_bytes(t, q) + self.const_bytes(t, sig)
        code += b"\x20" + uleb(s) + op_bytes(_REINTERPRET[t][0]) + self.const_bytes(it, _QUIET[t])
        code += op_bytes(f"{itn}.and")
        if it == I64:
            code += op_bytes("i64.eqz") + op_bytes("i32.eqz")
        code += b"\x1b"  # select: quiet ? q : sig
        code += b"\x20" + uleb(s) + b"\x20" + uleb(s) + op_bytes(f"{tn}.eq")
        code += b"\x1b"  # select: x == x ? x : marker

    def global_expr(self, t, depth):
        gs = [i for i, (gt, _, _) in enumerate(self.globals) if gt == t]
        if not gs:
            self.leaf(t)
            return
        self.code += b"\x23" + uleb(self.c.pick(gs))

    def memarg(self, info) -> bytes:
        c = self.c
        align = c.int(0, info.align)
        offset = c.weighted([(20, None), (1, "far")])
        if offset is None:
            offset = c.int(0, 64)
        else:
            offset = c.pick([PAGE - 4, PAGE, 2 * PAGE - 8, 0xFFFFFFFF])
        return uleb(align) + uleb(offset)

    def address(self, depth) -> None:
        c = self.c
        how = c.weighted([(10, "low"), (3, "expr"), (1, "edge")])
        if how == "low":
            self.code += self.const_bytes(I32, c.int(0, 1024))
        elif how == "edge":  # around the end of the first page (and of a grown memory)
            self.code += self.const_bytes(I32, (c.pick([PAGE, 2 * PAGE, 3 * PAGE]) + c.int(-20, 4)) & 0xFFFFFFFF)
        else:
            self.expr(I32, depth)
            self.code += self.const_bytes(I32, 0x7FF) + op_bytes("i32.and")

    def load_expr(self, t, depth):
        loads = LOADS[t] if (self.cfg.simd or t != V128) else []
        if not loads:
            self.leaf(t)
            return
        info = self.c.pick(loads)
        self.address(depth)
        self.code += _ops.encode_opcode(info) + self.memarg(info)

    def select_expr(self, t, depth):
        self.expr(t, depth)
        self.expr(t, depth)
        self.expr(I32, depth)
        if t == V128 or self.c.chance(30):
            self.code += b"\x1c\x01" + bytes([t])
        else:
            self.code += b"\x1b"

    def tee_expr(self, t, depth):
        locs = self.locals_of(t, writable=True)
        idx = self.c.pick(locs) if locs and self.c.chance(70) else self.new_local(t)
        self.expr(t, depth)
        self.code += b"\x22" + uleb(idx)

    def block_expr(self, t, depth):
        loop = self.c.chance(20)  # a loop with a result that runs once
        self.code += (b"\x03" if loop else b"\x02") + bytes([t])
        self.labels.append(_Label("loop" if loop else "block", () if loop else (t,)))
        self.stmts(depth)
        self.expr(t, depth)
        self.labels.pop()
        self.code += b"\x0b"

    def if_expr(self, t, depth):
        self.expr(I32, depth)
        self.code += b"\x04" + bytes([t])
        self.labels.append(_Label("if", (t,)))
        self.stmts(depth)
        self.expr(t, depth)
        self.code += b"\x05"
        self.stmts(depth)
        self.expr(t, depth)
        self.labels.pop()
        self.code += b"\x0b"

    def take_one(self, results: tuple, t: ValType) -> None:
        """The stack holds `results`: keep one value of type t (it must be among them)."""
        want = self.c.pick([i for i, r in enumerate(results) if r == t])
        tmp = [self.new_local(r) for r in results]
        for i in reversed(range(len(results))):
            self.code += b"\x21" + uleb(tmp[i])
        self.code += b"\x20" + uleb(tmp[want])

    def multi_block_expr(self, t, depth):
        c = self.c
        params = tuple(c.pick(self.value_types()) for _ in range(c.int(0, 2)))
        results = [c.pick(self.value_types()) for _ in range(c.int(0, 2))]
        results.insert(c.int(0, len(results)), t)
        results = tuple(results)
        ti = self.type_idx(params, results)
        for p in params:
            self.expr(p, depth)
        loop = c.chance(25)
        self.code += (b"\x03" if loop else b"\x02") + sleb(ti)
        self.labels.append(_Label("loop" if loop else "block", params if loop else results))
        tmp = [self.new_local(p) for p in params]
        for i in reversed(range(len(params))):
            self.code += b"\x21" + uleb(tmp[i])
        self.stmts(depth)
        for r in results:
            self.expr(r, depth)
        self.labels.pop()
        self.code += b"\x0b"
        self.take_one(results, t)

    def callees(self, t: ValType | None):
        f = self.f
        out = []
        for g in self.funcs[: f.index]:
            if self.in_loop and not g.leaf:
                continue
            if t is None or t in g.sig.results:
                out.append(g)
        if f.recursive and self.self_calls and not self.in_loop and (t is None or t in f.sig.results):
            out.append(f)
        return out

    def call_args(self, g: _Func, depth) -> None:
        params = g.sig.params
        if g.recursive:
            if g is self.f:
                self.code += b"\x20\x00" + self.const_bytes(I32, 1) + op_bytes("i32.add")
            else:
                self.code += self.const_bytes(I32, self.c.int(0, MAX_RECURSION))
            params = params[1:]
        for p in params:
            self.expr(p, depth)

    def call_expr(self, t, depth):
        cands = self.callees(t)
        if not cands or not self.calls_left:
            self.leaf(t)
            return
        g = self.c.pick(cands)
        self.calls_left -= 1
        if g is self.f:
            self.self_calls -= 1
        self.call_args(g, depth)
        self.code += b"\x10" + uleb(g.index)
        self.take_one(g.sig.results, t)

    def indirect_types(self, t: ValType | None):
        # Signatures of functions (leaves may match them) and the other declared types.
        return [i for i, s in enumerate(self.types) if (t is None or t in s.results)
                and all(x in SCALARS for x in (*s.params, *s.results))]

    def call_indirect_expr(self, t, depth):
        cands = self.indirect_types(t)
        if not cands:
            self.leaf(t)
            return
        ti = self.c.pick(cands)
        sig = self.types[ti]
        for p in sig.params:
            self.expr(p, depth)
        self.table_index(depth)
        self.code += b"\x11" + uleb(ti) + b"\x00"
        if t is None:
            for _ in sig.results:
                self.code += b"\x1a"
        else:
            self.take_one(sig.results, t)

    def table_index(self, depth) -> None:
        c = self.c
        if c.chance(80):
            self.code += self.const_bytes(I32, c.int(0, TABLE_SIZE + 1))
        else:
            self.expr(I32, depth)
            self.code += self.const_bytes(I32, 15) + op_bytes("i32.and")

    def memory_size_expr(self, t, depth):
        self.code += b"\x3f\x00"

    def memory_grow_expr(self, t, depth):
        c = self.c
        if c.chance(80):
            self.code += self.const_bytes(I32, c.weighted([(6, 0), (4, 1), (1, 2), (1, 0x10000)]))
        else:
            self.expr(I32, depth)
            self.code += self.const_bytes(I32, 3) + op_bytes("i32.and")
        self.code += b"\x40\x00"

    def lane_expr(self, t, depth):
        c = self.c
        if t == V128:
            kind = c.weighted([(3, "replace"), (2, "shuffle"), (2, "load_lane")])
            if kind == "replace":
                info = c.pick(LANE_OPS[V128])
                for p in info.params:
                    self.expr(p, depth)
                self.code += _ops.encode_opcode(info) + bytes([c.int(0, info.lanes - 1)])
            elif kind == "shuffle":
                self.expr(V128, depth)
                self.expr(V128, depth)
                self.emit_op("i8x16.shuffle")
                self.code += bytes(c.int(0, 31) for _ in range(16))
            else:
                info = c.pick(LOAD_LANES)
                self.address(depth)
                self.expr(V128, depth)
                self.code += _ops.encode_opcode(info) + self.memarg(info) + bytes([c.int(0, info.lanes - 1)])
            return
        info = c.pick(LANE_OPS[t])
        self.expr(V128, depth)
        self.code += _ops.encode_opcode(info) + bytes([c.int(0, info.lanes - 1)])

    # -- statements: leave the stack as they found it ---------------------------------

    def stmts(self, depth: int) -> None:
        """A statement list; ends early after an unconditional branch."""
        c = self.c
        for _ in range(c.int(0, self.cfg.max_stmts)):
            if self.budget <= 0 or depth <= 0:
                return
            self.budget -= 1
            opts = [(8, self.set_stmt), (2, self.global_set_stmt), (5, self.store_stmt),
                    (1, self.drop_stmt), (2, self.if_stmt), (2, self.block_stmt),
                    (2, self.loop_stmt), (3, self.br_if_stmt), (1, self.bulk_stmt)]
            if not self.f.leaf:
                opts += [(2, self.call_stmt)]
            enders = [(1, self.br_stmt), (1, self.br_table_stmt), (1, self.return_stmt)]
            if c.chance(8):
                c.weighted(enders)(depth - 1)
                return
            if c.chance(1):
                self.code += b"\x00"  # unreachable
                return
            c.weighted(opts)(depth - 1)

    def set_stmt(self, depth):
        t = self.c.pick(self.value_types())
        locs = self.locals_of(t, writable=True)
        idx = self.c.pick(locs) if locs and self.c.chance(75) else self.new_local(t)
        self.expr(t, depth)
        self.code += b"\x21" + uleb(idx)

    def global_set_stmt(self, depth):
        gs = [i for i, (t, mut, _) in enumerate(self.globals) if mut]
        g = self.c.pick(gs)
        self.expr(self.globals[g][0], depth)
        self.code += b"\x24" + uleb(g)

    def store_stmt(self, depth):
        c = self.c
        if self.cfg.simd and c.chance(15):
            info = c.pick(STORE_LANES)
            self.address(depth)
            self.expr(V128, depth)
            self.code += _ops.encode_opcode(info) + self.memarg(info) + bytes([c.int(0, info.lanes - 1)])
            return
        stores = [s for s in STORES if self.cfg.simd or V128 not in s.params]
        info = c.pick(stores)
        self.address(depth)
        self.expr(info.params[1], depth)
        self.code += _ops.encode_opcode(info) + self.memarg(info)

    def drop_stmt(self, depth):
        self.expr(self.c.pick(self.value_types()), depth)
        self.code += b"\x1a"

    def if_stmt(self, depth):
        self.expr(I32, depth)
        self.code += b"\x04\x40"
        self.labels.append(_Label("if", ()))
        self.stmts(depth)
        if self.c.chance(50):
            self.code += b"\x05"
            self.stmts(depth)
        self.labels.pop()
        self.code += b"\x0b"

    def block_stmt(self, depth):
        self.code += b"\x02\x40"
        self.labels.append(_Label("block", ()))
        self.stmts(depth)
        self.labels.pop()
        self.code += b"\x0b"

    def loop_stmt(self, depth):
        if self.in_loop >= 2:
            self.block_stmt(depth)
            return
        c = self.c
        counter = self.new_local(I32)
        self.f.reserved.add(counter)
        code = self.code
        code += self.const_bytes(I32, c.int(0, 4)) + b"\x21" + uleb(counter)
        code += b"\x02\x40\x03\x40"  # block loop
        code += b"\x20" + uleb(counter) + op_bytes("i32.eqz") + b"\x0d\x01"  # br_if 1 (exit)
        code += b"\x20" + uleb(counter) + self.const_bytes(I32, 1) + op_bytes("i32.sub")
        code += b"\x21" + uleb(counter)
        self.labels += [_Label("block", ()), _Label("loop", ())]
        self.in_loop += 1
        self.stmts(depth)
        self.in_loop -= 1
        del self.labels[-2:]
        self.code += b"\x0c\x00\x0b\x0b"  # br 0 (continue), end loop, end block

    def targets(self):
        """(relative depth, label) of the labels a branch may take (not loops: a branch
        back to a loop could run forever)."""
        n = len(self.labels)
        return [(n - 1 - i, lab) for i, lab in enumerate(self.labels) if lab.kind != "loop"]

    def br_if_stmt(self, depth):
        rel, lab = self.c.pick(self.targets())
        for t in lab.types:
            self.expr(t, depth)
        self.expr(I32, depth)
        self.code += b"\x0d" + uleb(rel)
        for _ in lab.types:
            self.code += b"\x1a"

    def br_stmt(self, depth):
        rel, lab = self.c.pick(self.targets())
        for t in lab.types:
            self.expr(t, depth)
        self.code += b"\x0c" + uleb(rel)

    def br_table_stmt(self, depth):
        c = self.c
        targets = self.targets()
        rel, lab = c.pick(targets)
        same = [r for r, l in targets if l.types == lab.types]
        table = [c.pick(same) for _ in range(c.int(0, 4))]
        for t in lab.types:
            self.expr(t, depth)
        if c.chance(70):
            self.code += self.const_bytes(I32, c.int(0, len(table) + 1))
        else:
            self.expr(I32, depth)
        self.code += b"\x0e" + vec([uleb(r) for r in table]) + uleb(rel)

    def return_stmt(self, depth):
        for t in self.f.sig.results:
            self.expr(t, depth)
        self.code += b"\x0f"

    def call_stmt(self, depth):
        c = self.c
        if c.chance(60):
            cands = self.callees(None)
            if not cands or not self.calls_left:
                return
            g = c.pick(cands)
            self.calls_left -= 1
            if g is self.f:
                self.self_calls -= 1
            self.call_args(g, depth)
            self.code += b"\x10" + uleb(g.index)
            for _ in g.sig.results:
                self.code += b"\x1a"
        else:
            cands = self.indirect_types(None)
            if cands:
                self.call_indirect_expr(None, depth)

    def bulk_stmt(self, depth):
        c = self.c
        fill = c.chance(50)
        self.address(depth)  # destination
        if fill:
            self.expr(I32, depth)
        else:
            self.address(depth)
        # length: mostly small, sometimes past the end
        self.code += self.const_bytes(I32, c.weighted([(10, c.int(0, 64)), (1, PAGE), (1, 0xFFFFFFFF)]))
        self.code += b"\xfc" + (b"\x0b\x00" if fill else b"\x0a\x00\x00")


def op_bytes(opname: str) -> bytes:
    return _ops.encode_opcode(OPS[opname])


def generate(c: Chooser, cfg: GenConfig | None = None) -> GeneratedModule:
    """A valid module (see the module docstring) from the choices of `c`."""
    return ModuleGen(c, cfg).generate()


def generate_args(c: Chooser, gm: GeneratedModule, export: tuple) -> list[int]:
    """Argument bits for one exported function (a recursion depth stays small mostly)."""
    name_, params, _ = export
    args = [random_bits(c, p) for p in params]
    if name_ in gm.recursive and args and c.chance(80):
        args[0] = c.int(0, MAX_RECURSION)
    return args


def module_strategy(cfg: GenConfig | None = None, min_bytes: int = 0, max_bytes: int = 4000):
    """A hypothesis strategy of GeneratedModules. Shrinks well: the module
    is a function of a byte string whose zeros are the simplest choices."""
    from hypothesis import strategies as st

    return st.binary(min_size=min_bytes, max_size=max_bytes).map(
        lambda data: generate(ByteChooser(data), cfg))
