"""The native executor: runs a `CompiledCode` with the llvmlite handlers of `llvmgen.py`.

    ex = NativeExecutor(provider, dispatch="direct")   # provider(func) -> (CompiledCode, index)
    store = Store(ex)                                   # the runtime calls ex.call(store, f, args)

Execution model
---------------
- Each activation (an `ex.call` from the store) gets a register stack (a bytearray of
  64-bit slots, `REG_SLOTS` of them), a call stack of `(return pc, caller fp)` pairs (a
  buffer of `store.max_call_depth` entries, never the C stack) and a context block
  (`llvmgen.CTX_FIELDS`). Nested activations (wasm -> host -> wasm) get their own set.
- Python enters the handler chain at the function's entry through `deadeye_run(ctx)`, with
  pc, fp and memory 0's base and length in the context. wasm->wasm `call`, `return` and
  `return_call` stay native (the callee's entry address comes from a per-module function
  table; a function not yet compiled has entry 0 and makes the handler return `HOST_CALL`
  so Python compiles and installs it, then resumes at the same op). Everything else returns a status: traps,
  `call_host`/calls into other instances/call_indirect cache misses (serviced through the
  store, then resumed at the next op), `memory.grow`/`table.grow` (`GROW`), the ops without an
  inline template (`SLOW`: tables, references, segments, other memories: run
  here with the ISA's reference semantics on the same registers), fuel exhaustion, a full
  call stack or register stack, and the entry frame's return.
- Memory 0 is the runtime's own bytearray: its address is taken with ctypes' `from_buffer`,
  which pins it for the activation, so nothing can resize it in place under native code
  (the pin is dropped to service `memory.grow`; a host function growing the memory moves
  it to a new bytearray instead, see `MemoryInstance.grow`); the next resume pins the
  current one. Host functions see the same bytes. Every access is bounds-checked by the handler.
- Before a function's code is first run it is checked (every op decodes, registers lie in
  its frame, branch targets are op starts inside the function, function and pool indices
  exist, it cannot fall off its end), so no bytecode can make a handler touch memory
  outside the register stack, the code buffer or the guest's memory.
- References live in slots as handles: 0 is null, others index `self._objs`. Handles last
  while native code is active (they are dropped when the outermost activation ends), so
  the executor keeps no guest object alive.
- Frames of natively called functions are not pushed on the store's frame list (that would
  need Python per call); call depth is bounded by the native call stack instead, sized
  from the store's `max_call_depth`. A trap's backtrace is rebuilt from the native call
  stack (each return address names its caller and call op) and spliced into the store's.
- Globals, table sizes and call_indirect's table lookups are native (see `_InstState`).
- The store's interrupt byte is polled at backward branches and tail calls (`INTERRUPTED`).
"""

from __future__ import annotations

import bisect
import ctypes
import struct
import weakref
from typing import Callable

from deadeye.ir.errors import DecodeError, Trap, ValidationError, WasmError
from deadeye.ir.types import ValType
from deadeye.interp.isa import semantics as S
from deadeye.interp.isa.encoding import decode, decode_all
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.table import TRAP_MESSAGES, Flag, Status
from deadeye.interp.runtime import HostFunction, Store, WasmFunction

from . import compiler
from .llvmgen import CTX, CTX_FIELDS, DIRECT_PREFIX, INTERRUPTED, MODES, SLOW

__all__ = ["NativeExecutor", "REG_SLOTS"]

REG_SLOTS = 1 << 19  # 4 MiB of registers per activation
TABLE_CACHE_MAX = 1 << 16  # call_indirect entry cache entries per table (the rest: Python)
SCRATCH_SLOTS = 1 << 16  # a return/return_call list has at most 65535 slots
M32, M64 = (1 << 32) - 1, (1 << 64) - 1
_REFS = (ValType.FUNCREF, ValType.EXTERNREF)
_NARROW = (ValType.I32, ValType.F32)
_RUNFUNCTYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)  # deadeye_run(ctx)
_RETURNED, _HOST_CALL, _GROW = int(Status.RETURNED), int(Status.HOST_CALL), int(Status.GROW)
_EMPTY = ctypes.create_string_buffer(16)  # stand-in base for a memory of 0 bytes


def _nslots(types) -> int:
    return sum(2 if t == ValType.V128 else 1 for t in types)


_CALL_SLOTS: dict = {}  # id(FuncType) -> (it, slots its call needs: params or results)


def _call_slots(ty) -> int:
    e = _CALL_SLOTS.get(id(ty))  # by id: a FuncType hashes its tuples on every call
    if e is None or e[0] is not ty:
        e = _CALL_SLOTS[id(ty)] = (ty, max(_nslots(ty.params), _nslots(ty.results)))
    return e[1]


class _Func:
    """One installed function: its private code buffer and the pc maps."""

    __slots__ = ("index", "func", "buf", "addr", "end", "orig_entry", "new2orig", "orig2new",
                 "frame", "op_starts")

    def __init__(self, index, func, buf, orig_entry, new2orig, orig2new, frame, op_starts):
        self.index = index
        self.func = func
        self.op_starts = op_starts  # sorted original pcs of the ops in `buf` (for call sites)
        self.buf = buf
        self.addr = ctypes.addressof(buf)
        self.end = self.addr + len(buf)
        self.orig_entry = orig_entry
        self.new2orig = new2orig  # None: same layout as the original code
        self.orig2new = orig2new
        self.frame = frame

    def orig(self, addr: int) -> int:
        off = addr - self.addr
        return self.orig_entry + (off if self.new2orig is None else self.new2orig[off])

    def call_site(self, ret_addr: int) -> int:
        """The original pc of the op before the return address `ret_addr` (its call)."""
        orig = self.orig(ret_addr)
        return self.op_starts[bisect.bisect_left(self.op_starts, orig) - 1]

    def addr_of(self, orig_pc: int) -> int:
        off = orig_pc - self.orig_entry
        return self.addr + (off if self.orig2new is None else self.orig2new[off])


class _Prog:
    """Per CompiledCode: installed functions, the function/frame tables, the pool."""

    def __init__(self, code: CompiledCode, nimported: int, nfuncs: int, fuel: bool):
        self.code = code
        self.fuel = fuel  # keep the `fuel` ops (else they are left out of the streams)
        self.nimported = nimported
        self.functab = (ctypes.c_uint64 * max(nfuncs, 1))()
        self.frametab = (ctypes.c_uint64 * max(nfuncs, 1))()
        self.funcs: dict[int, _Func] = {}
        self.starts: list[int] = []  # sorted buffer addresses, for pc -> function
        self.by_start: list[_Func] = []
        self.pools: list = []
        self._decoded: dict = {}
        self.sites: dict = {}  # native pc -> `site(pc)`
        self.pool_len = -1
        self.pool_addr = 0

    def decoded(self, pc: int):
        """(row, operands by name, next pc) of the op at `pc`, decoded once."""
        d = self._decoded.get(pc)
        return d if d is not None else self.predecode(pc, *decode(self.code.code, pc))

    def site(self, addr: int):
        """What servicing an exit at native pc `addr` needs, computed once: (function,
        original pc, wasm offset or None, row, operands by name, native pc of the next op)."""
        f = self.lookup(addr)
        orig = f.orig(addr)
        offset = (self.code.wasm_offset(orig) or 0) if self.code.srcmap_pc else None
        row, o, nxt = self.decoded(orig)
        s = self.sites[addr] = (f, orig, offset, row, o, f.addr_of(nxt))
        return s

    def predecode(self, pc: int, row, vals, nxt):
        d = self._decoded[pc] = (row, dict(zip(row.names, vals)), nxt)
        return d

    def pool_address(self) -> int:
        vals = self.code.pool.values
        if len(vals) != self.pool_len:
            arr = (ctypes.c_uint64 * max(len(vals), 1))(*vals)
            self.pools.append(arr)  # older arrays stay alive: suspended code may hold them
            self.pool_len, self.pool_addr = len(vals), ctypes.addressof(arr)
        return self.pool_addr

    def lookup(self, addr: int) -> _Func:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0 or not self.by_start[i].addr <= addr < self.by_start[i].end:
            raise WasmError(f"native pc {addr:#x} is outside the compiled code")
        return self.by_start[i]


class _InstState:
    """What the handlers read of one instance without asking Python: its globals, its
    tables' sizes and call_indirect entry caches, the canonical signature ids of its types.

    Globals live in the runtime's `GlobalInstance`s; native code works on a copy that is
    written before every entry or resume into native code (`sync_in`) and read back after
    every exit (`sync_out`), so Python, host functions and other instances always see
    current values, and native `global.get`/`global.set` are one load or store.

    A table's entry cache maps an element index to `(signature id + 1) << 32 | function
    index` for the instance's own natively installed functions (0: ask Python). It is
    filled by Python on a miss and emptied whenever the table changed while native code
    was not running (compared against a snapshot of the elements at each entry)."""

    def __init__(self, ex: "NativeExecutor", inst):
        self.ex = ex
        gl = inst.globals
        self.globals = (ctypes.c_uint64 * max(2 * len(gl), 2))()
        mutable = [(i, g, g.type.valtype) for i, g in enumerate(gl) if g.type.mutable]
        # one-slot numeric globals are copied as they are; v128 and references need work
        self.plain = [(2 * i, g) for i, g, t in mutable if t != ValType.V128 and t not in _REFS]
        self.mutable = [m for m in mutable if m[2] == ValType.V128 or m[2] in _REFS]
        # immutable references too are loaded on every entry: handles last one activation
        self.fixed_refs = [(i, g, g.type.valtype) for i, g in enumerate(gl)
                           if not g.type.mutable and g.type.valtype in _REFS]
        for i, g in enumerate(gl):
            t = g.type.valtype
            if t != ValType.V128:
                self.globals[2 * i + 1] = M32 if t in _NARROW else M64
            self._load_global(i, g.value, t)
        self.tables = (ctypes.c_uint64 * max(3 * len(inst.tables), 3))()
        self.caches: list = [None] * len(inst.tables)
        self.snaps: list = [None] * len(inst.tables)
        types = inst.types
        self.sigs = (ctypes.c_uint64 * max(len(types), 1))(
            *[types.index(t) + 1 for t in types])
        self.table_kinds = [(k, t, t.elem_type == ValType.FUNCREF)
                            for k, t in enumerate(inst.tables)]
        self.types = types

    def _load_global(self, i, v, t):
        if t == ValType.V128:
            self.globals[2 * i], self.globals[2 * i + 1] = v & M64, v >> 64
        else:
            self.globals[2 * i] = self.ex.handle(v) if t in _REFS else v

    def sync_in(self) -> None:
        """Before native code runs: the globals but `plain` ones (the executor copies
        those itself), the tables' sizes and caches."""
        for i, g, t in self.mutable:
            self._load_global(i, g.value, t)
        for i, g, t in self.fixed_refs:
            self._load_global(i, g.value, t)
        tabs = self.tables
        for k, t, funcref in self.table_kinds:
            els = t.elements
            n = len(els)
            tabs[3 * k + 2] = n
            if not funcref or self.snaps[k] == els:
                continue
            m = min(n, TABLE_CACHE_MAX)
            cache = self.caches[k]
            if cache is None or len(cache) < m:
                cache = self.caches[k] = (ctypes.c_uint64 * max(m, 1))()
            else:
                ctypes.memset(cache, 0, 8 * len(cache))
            self.snaps[k] = list(els)
            tabs[3 * k], tabs[3 * k + 1] = ctypes.addressof(cache), m

    def sync_out(self) -> None:
        """After native code ran: the globals but `plain` ones."""
        gv = self.globals
        for i, g, t in self.mutable:
            if t == ValType.V128:
                g.value = gv[2 * i] | gv[2 * i + 1] << 64
            else:
                g.value = self.ex.obj(gv[2 * i]) if t in _REFS else gv[2 * i]

    def cache(self, table: int, i: int, f, prog: "_Prog") -> None:
        """Remember that `table[i]` is the installed function `f` of this instance."""
        if i >= self.tables[3 * table + 1] or self.snaps[table] is None:
            return
        try:
            sig = self.types.index(f.type) + 1
        except ValueError:  # a signature no module type has: never a native match
            return
        self.caches[table][i] = sig << 32 | (prog.nimported + f.defined_index)


class _Act:
    """The buffers of one activation depth."""

    def __init__(self, cs_entries: int):
        self.regs = bytearray(REG_SLOTS * 8)
        self.view = memoryview(self.regs).cast("Q")
        self.regs_c = (ctypes.c_char * len(self.regs)).from_buffer(self.regs)
        self.base = ctypes.addressof(self.regs_c)
        self.ctx = (ctypes.c_int64 * len(CTX_FIELDS))()
        self.pin = None  # memory 0's buffer while this activation runs
        self.cs_entries = 0
        self.cs = None
        self.grow_cs(cs_entries)

    def grow_cs(self, n: int) -> None:
        if n > self.cs_entries:
            self.cs = (ctypes.c_uint64 * (2 * n))()
            self.cs_entries = n


class _Machine:
    """`semantics.Machine` over a native frame: the reference semantics of the slow ops."""

    def __init__(self, ex: "NativeExecutor", store: Store, inst, prog: _Prog, view, fpi: int, pc: int):
        self.ex, self.store, self.inst, self.prog = ex, store, inst, prog
        self.view, self.fpi, self.pc = view, fpi, pc
        self.branched: int | None = None

    def reg(self, r):
        return self.view[self.fpi + r]

    def set_reg(self, r, v):
        self.view[self.fpi + r] = v & M64 if type(v) is int else self.ex.handle(v)

    def v128(self, r):
        return self.view[self.fpi + r] | self.view[self.fpi + r + 1] << 64

    def set_v128(self, r, v):
        self.view[self.fpi + r] = v & M64
        self.view[self.fpi + r + 1] = v >> 64

    def pool(self, i):
        return self.prog.code.pool[i]

    def branch(self, offset):
        self.branched = self.pc + offset

    def finish(self):
        raise WasmError("a slow op cannot return")

    def trap(self, message):
        raise self.store.trap(message)

    def memory(self, i):
        return self.inst.memories[i]

    def data(self, i):
        return self.inst.datas[i]

    def table(self, i):
        return self.inst.tables[i]

    def elem(self, i):
        return self.inst.elems[i]

    def global_(self, i):
        return self.inst.globals[i]

    def function(self, i):
        return self.inst.funcs[i]

    def sig(self, i):
        return self.inst.types[i]

    def call_function(self, f, args):
        return self.store.call_from_wasm(f, args)

    def consume_fuel(self, n):
        self.store.consume_fuel(n)


class NativeExecutor:
    """The executor seam (`call(store, func, args)`) running llvmlite handlers."""

    def __init__(self, provider: Callable[[WasmFunction], tuple[CompiledCode, int]], *,
                 dispatch: str = "direct", cache_dir=None):
        if dispatch not in MODES:
            raise ValueError(f"unknown dispatch mode {dispatch!r} (one of {', '.join(MODES)})")
        self.provider = provider
        self.dispatch = dispatch
        self.handlers = compiler.load(dispatch, cache_dir)
        self._enter = _RUNFUNCTYPE(self.handlers.run)
        self._acts: list[_Act] = []
        self._depth = 0
        self._scratch = (ctypes.c_uint64 * SCRATCH_SLOTS)()
        self._objs: list = [None]
        self._handles: dict[int, int] = {}
        self.stats = {"entries": 0, "resumes": 0}

    def _inst_state(self, inst) -> _InstState:
        st = inst.executor_state.get(self)
        if st is None:
            st = inst.executor_state[self] = _InstState(self, inst)
        return st

    # -- references -------------------------------------------------------------------------
    def handle(self, obj) -> int:
        if obj is None:
            return 0
        h = self._handles.get(id(obj))
        if h is None:
            h = self._handles[id(obj)] = len(self._objs)
            self._objs.append(obj)  # keeps obj alive, so its id stays unique
        return h

    def obj(self, h: int):
        if not 0 <= h < len(self._objs):
            raise WasmError(f"invalid reference handle {h}")
        return self._objs[h]

    def _put(self, view, at: int, types, values) -> None:
        for t, v in zip(types, values):
            if t == ValType.V128:
                view[at], view[at + 1] = v & M64, v >> 64
                at += 2
            else:
                view[at] = self.handle(v) if t in _REFS else v
                at += 1

    def _get(self, view, at: int, types) -> list:
        out = []
        for t in types:
            if t == ValType.V128:
                out.append(view[at] | view[at + 1] << 64)
                at += 2
            elif t in _REFS:
                out.append(self.obj(view[at]))
                at += 1
            else:
                v = view[at]
                out.append(v & M32 if t in _NARROW else v)
                at += 1
        return out

    # -- code installation ---------------------------------------------------------------------
    def _prog(self, code: CompiledCode, inst, fuel: bool) -> _Prog:
        # Kept on the decoded module (per executor), so the installed code is freed with
        # the module: an engine that runs module after module must not grow.
        progs = inst.module.derived.setdefault("native", weakref.WeakKeyDictionary())
        mine = progs.get(self)
        if mine is None:
            mine = progs[self] = {}
        key = (id(code), fuel)
        p = mine.get(key)
        if p is None or p.code is not code:
            p = mine[key] = _Prog(code, inst.module.num_imported_funcs, len(inst.funcs),
                                         fuel)
            # Install what is compiled already (all of it after `Module.serialize()`) now,
            # not on each function's first call; a function that fails its checks is left
            # to fail when it is called.
            for i in range(code.num_funcs):
                if code.is_compiled(i):
                    try:
                        self._install(p, i, inst.funcs[p.nimported + i])
                    except WasmError:
                        pass
        return p

    def _install(self, prog: _Prog, index: int, func: WasmFunction) -> _Func:
        f = prog.funcs.get(index)
        if f is not None:
            return f
        code = prog.code
        if not code.is_compiled(index):
            raise WasmError(f"function {func.name} has no compiled code")
        start, end = code.entry[index], code.end[index]
        fs = max(code.frame_size[index], _nslots(func.type.params), _nslots(func.type.results))
        try:
            ops = list(decode_all(code.code, start, end))
        except DecodeError as e:
            e.func_index = func.index
            raise
        self._check(prog, ops, start, end, fs, func)
        if self.dispatch == "direct" or not prog.fuel:
            buf, new2orig, orig2new = self._stream(code.code, ops, end, prog.fuel)
        else:
            body = bytes(code.code[start:end])
            buf = ctypes.create_string_buffer(body + bytes(16), len(body) + 16)
            new2orig = orig2new = None
        kept = [pc for pc, row, _v in ops if prog.fuel or row.name != "fuel"]
        f = _Func(index, func, buf, start, new2orig, orig2new, fs, kept)
        prog.funcs[index] = f
        i = bisect.bisect_right(prog.starts, f.addr)
        prog.starts.insert(i, f.addr)
        prog.by_start.insert(i, f)
        mi = prog.nimported + index
        if mi < len(prog.functab):
            prog.frametab[mi] = fs
            prog.functab[mi] = f.addr
        bounds = [pc for pc, _r, _v in ops[1:]] + [end]
        for (pc, row, vals), nxt in zip(ops, bounds):  # host calls always leave native code
            if row.name == "call_host":
                prog.predecode(pc, row, vals, nxt)
                prog.site(f.addr_of(pc))
        return f

    def _check(self, prog: _Prog, ops, start: int, end: int, fs: int, func) -> None:
        """Reject bytecode that could make a handler step outside its buffers."""
        def bad(msg, pc):
            return ValidationError(f"bytecode of {func.name}: {msg}", pc - start, func.index)

        if not ops:
            raise bad("empty function", start)
        starts = {pc for pc, _r, _v in ops}
        nfuncs = len(prog.functab)
        inst = func.instance
        for pc, row, vals in ops:
            for o, v in zip(row.operands, vals):
                k = o.kind
                if k.name == "off":
                    if pc + v not in starts:
                        raise bad(f"{row.name}: branch target {pc + v} is not an op", pc)
                elif k.name == "brtable":
                    if any(pc + t not in starts for t in v):
                        raise bad(f"{row.name}: a branch target is not an op", pc)
                elif k.name == "slots":
                    if len(v) > fs or any(s >= fs for s in v):
                        raise bad(f"{row.name}: slot list outside the frame of {fs}", pc)
                elif k.name == "frame":
                    if v > fs:
                        raise bad(f"{row.name}: call frame @{v} outside the frame of {fs}", pc)
                elif k.is_reg:
                    if v + (2 if k.regclass == "v" else 1) > fs:
                        raise bad(f"{row.name}: register {v} outside the frame of {fs}", pc)
                elif k.name == "func":
                    if v >= nfuncs:
                        raise bad(f"{row.name}: function {v} does not exist", pc)
                elif k.name == "pool":
                    if v >= len(prog.code.pool):
                        raise bad(f"{row.name}: pool entry {v} does not exist", pc)
                elif k.name in ("global", "table", "type"):
                    space = {"global": inst.globals, "table": inst.tables,
                             "type": inst.types}[k.name]
                    if v >= len(space):
                        raise bad(f"{row.name}: {k.name} {v} does not exist", pc)
                    if k.name == "global" and row.name.startswith("global."):
                        wide = space[v].type.valtype == ValType.V128
                        if wide != row.name.endswith("128"):
                            raise bad(f"{row.name}: global {v} is {space[v].type.valtype}", pc)
        last_pc, last, _v = ops[-1]
        if not last.flags & Flag.TERMINATOR:
            raise bad(f"the last op {last.name} falls off the end", last_pc)

    def _stream(self, code, ops, end: int, fuel: bool):
        """Re-encode a function's ops for native code, relocating branch offsets: in
        `direct` mode with an 8-byte handler address in place of each opcode; without fuel
        (the store does not count it) leaving out the `fuel` ops, which then cost nothing
        (a branch to one lands on the op after it)."""
        direct = self.dispatch == "direct"
        addrs = self.handlers.handler
        new_pos, q = {}, 0
        bounds = [pc for pc, _r, _v in ops] + [end]
        kept = [(pc, row, vals, nxt) for (pc, row, vals), nxt in zip(ops, bounds[1:])
                if fuel or row.name != "fuel"]
        for (pc, row, _v), nxt in zip(ops, bounds[1:]):
            new_pos[pc] = q
            if fuel or row.name != "fuel":
                q += (DIRECT_PREFIX if direct else len(row.prefix)) + (nxt - pc - len(row.prefix))
        out = bytearray()
        for pc, row, vals, nxt in kept:
            q = new_pos[pc]
            operands = bytearray(code[pc + len(row.prefix):nxt])
            for (name, kind, at), v in zip(row.layout, vals):
                rel = at - len(row.prefix)
                if kind.name == "off":
                    struct.pack_into("<i", operands, rel, new_pos[pc + v] - q)
                elif kind.name == "brtable":
                    struct.pack_into(f"<{len(v)}i", operands, rel + 4, *(new_pos[pc + t] - q for t in v))
            prefix = addrs[row.index].to_bytes(8, "little") if direct else bytes(row.prefix)
            out += prefix + operands
        entry = ops[0][0]
        new2orig = {new_pos[pc]: pc - entry for pc, _r, _v, _n in kept}
        orig2new = {pc - entry: q for pc, q in new_pos.items()}
        orig2new[end - entry] = len(out)
        buf = ctypes.create_string_buffer(bytes(out) + bytes(16), len(out) + 16)
        return buf, new2orig, orig2new

    def _ensure(self, prog: _Prog, inst, func: WasmFunction) -> _Func | None:
        """Install `func` natively if it belongs to `prog`; None when it must be called
        through the store (another module's code)."""
        code, index = self.provider(func)
        if code is not prog.code:
            return None
        return self._install(prog, index, func)

    # -- running ---------------------------------------------------------------------------------
    def call(self, store: Store, func: WasmFunction, args: list) -> list:
        inst = func.instance
        code, index = self.provider(func)
        prog = self._prog(code, inst, store.fuel is not None)
        f = self._install(prog, index, func)
        rt = store.push_frame(func)
        depth = self._depth
        if depth == len(self._acts):
            self._acts.append(_Act(store.max_call_depth))
        act = self._acts[depth]
        act.grow_cs(store.max_call_depth)
        act.ctx[CTX["pc"]] = 0
        self._depth += 1
        try:
            return self._run(store, inst, prog, f, func, act, args, rt)
        except Trap as t:  # runtime objects raise traps without frames: name ours
            if not t.frames:
                t.frames = store.backtrace()
            self._splice_backtrace(t, store, prog, act)
            raise
        finally:
            act.pin = None
            self._depth -= 1
            store.pop_frame()
            if not self._depth:  # no native code is active: no handle is live
                self._objs, self._handles = [None], {}

    def _native_frames(self, prog: _Prog, act: _Act) -> list[tuple[str, int, int]]:
        """This activation's wasm frames, innermost first, from the pc of its last exit
        to native code and its call stack of return addresses."""
        ctx = act.ctx
        pc = ctx[CTX["pc"]] & M64
        if not pc:
            return []
        code = prog.code

        def frame(f: _Func, orig: int):
            off = (code.wasm_offset(orig) or 0) if code.srcmap_pc else 0
            return (f.func.name, f.func.index, off)

        cur = prog.lookup(pc)
        out = [frame(cur, cur.orig(pc))]
        cs = act.cs
        top = (ctx[CTX["csp"]] - ctypes.addressof(cs)) // 8
        for i in range(top - 2, -1, -2):
            ret = cs[i]
            f = prog.lookup(ret)
            out.append(frame(f, f.call_site(ret)))
        return out

    def _splice_backtrace(self, t: Trap, store: Store, prog: _Prog, act: _Act) -> None:
        """Replace this activation's one store frame in `t.frames` by its native frames.
        `t.frames` ends with the store's frames up to ours (innermost first), possibly
        after frames of activations nested in it, which are already spliced."""
        try:
            native = self._native_frames(prog, act)
        except WasmError:
            return
        ours = len(t.frames) - store.depth  # index of our entry frame
        if native and 0 <= ours < len(t.frames):
            t.frames = t.frames[:ours] + native + t.frames[ours + 1:]

    def _run(self, store, inst, prog, f: _Func, func, act: _Act, args, rt) -> list:  # noqa: C901
        view, ctx = act.view, act.ctx
        self._put(view, 0, func.type.params, args)
        if f.frame > REG_SLOTS:
            raise store.trap("call stack exhausted")
        cs_base = ctypes.addressof(act.cs)
        room = max(1, min(act.cs_entries, store.max_call_depth - store.depth))
        ctx[CTX["csp"]] = ctx[CTX["cs_base"]] = cs_base
        ctx[CTX["cs_limit"]] = cs_base + 16 * room
        ctx[CTX["regs_end"]] = act.base + REG_SLOTS * 8
        ctx[CTX["functab"]] = ctypes.addressof(prog.functab)
        ctx[CTX["frametab"]] = ctypes.addressof(prog.frametab)
        ctx[CTX["scratch"]] = ctypes.addressof(self._scratch)
        ctx[CTX["interrupt"]] = ctypes.addressof(store.interrupt_cell())
        st = self._inst_state(inst)
        ctx[CTX["globals"]] = ctypes.addressof(st.globals)
        ctx[CTX["tables"]] = ctypes.addressof(st.tables)
        ctx[CTX["sigs"]] = ctypes.addressof(st.sigs)
        fuel_on = store.fuel is not None
        ctx[CTX["pc"]], ctx[CTX["fp"]] = f.addr, act.base
        ctx[CTX["fuel"]] = 1 << 62  # never consumed: the streams have no fuel ops
        enter = self._enter
        mems = inst.memories
        self.stats["entries"] += 1
        ctx_addr, stats = ctypes.addressof(ctx), self.stats
        # the one-slot numeric globals are copied here; `st` does tables and the rest
        gv, plain, others = st.globals, st.plain, st.mutable
        tables_etc = st.table_kinds or others or st.fixed_refs
        # Memory 0 stays pinned (its bytearray cannot be resized in place, so memory.grow
        # moves it to a new one, which is pinned in turn) until this activation ends.
        pinned = None
        if not mems:
            ctx[CTX["mem"]], ctx[CTX["memlen"]] = ctypes.addressof(_EMPTY), 0
        sites, pool_vals = prog.sites, prog.code.pool.values
        ipool, ifuel, ipc, ifp = CTX["pool"], CTX["fuel"], CTX["pc"], CTX["fp"]
        # Runs once per entry and per resume (every host call): keep it lean.
        while True:
            if len(pool_vals) != prog.pool_len:  # functions compiled since the last entry
                ctx[ipool] = prog.pool_address()
            if fuel_on:
                ctx[ifuel] = store.fuel
            for i2, g in plain:
                gv[i2] = g.value
            if tables_etc:
                st.sync_in()
            if mems:
                data = mems[0].data
                if data is not pinned:  # memory.grow moved it (or the first entry)
                    n = len(data)
                    act.pin = (ctypes.c_char * n).from_buffer(data) if n else _EMPTY
                    pinned = data
                    ctx[CTX["mem"]], ctx[CTX["memlen"]] = ctypes.addressof(act.pin), n
            status = enter(ctx_addr)
            for i2, g in plain:
                g.value = gv[i2]
            if others:
                st.sync_out()
            if fuel_on:
                store.fuel = ctx[ifuel]
            if status == _RETURNED:
                ctx[ipc] = 0  # no frames left to name
                return self._get(view, 0, func.type.results)
            stats["resumes"] += 1
            pc = ctx[ipc]
            site = sites.get(pc) or prog.site(pc)
            cur, orig, offset, row, o, resume = site
            if offset is not None:
                rt.offset = offset
            fp = ctx[ifp]
            fpi = (fp - act.base) // 8
            if status == _HOST_CALL:
                r = self._service_call(store, inst, prog, act, site, fp, fpi)
                if r is None:  # the entry frame tail-called out of native code and is done
                    ctx[ipc] = 0
                    return self._get(view, 0, func.type.results)
                ctx[ipc], ctx[ifp] = r
            elif status == SLOW or status == _GROW:
                if status == _GROW:  # unpinned, the memory can grow in place
                    act.pin = pinned = None
                self._service_slow(store, inst, prog, view, fpi, orig, row, o)
                ctx[ipc] = resume
            elif status == Status.TRAP:
                raise store.trap(TRAP_MESSAGES[ctx[CTX["payload"]]])
            elif status == INTERRUPTED:
                raise store.take_interrupt()
            elif status == Status.OUT_OF_FUEL:
                store.fuel = 0
                raise store.trap("all fuel consumed")
            elif status == Status.STACK_EXHAUSTED:
                raise store.trap("call stack exhausted")
            else:
                raise WasmError(f"native code returned unknown status {status}")

    # -- status servicing --------------------------------------------------------------------------
    def _native_call(self, store, act: _Act, prog, target: _Func, ret_pc: int, fp: int, newfp: int):
        """Push a native frame as the `call` handler does; (pc, fp) of the callee."""
        ctx = act.ctx
        csp = ctx[CTX["csp"]]
        if csp >= ctx[CTX["cs_limit"]] or newfp + 8 * target.frame > act.base + REG_SLOTS * 8:
            raise store.trap("call stack exhausted")
        i = (csp - ctypes.addressof(act.cs)) // 8
        act.cs[i], act.cs[i + 1] = ret_pc, fp
        ctx[CTX["csp"]] = csp + 16
        return target.addr, newfp

    def _return(self, act: _Act, fp: int):
        """The `return` handler's pop, after the results are in place: (pc, fp) to resume,
        or (0, fp) when the entry frame returned."""
        ctx = act.ctx
        csp = ctx[CTX["csp"]]
        if csp == ctx[CTX["cs_base"]]:
            return 0, fp
        csp -= 16
        ctx[CTX["csp"]] = csp
        i = (csp - ctypes.addressof(act.cs)) // 8
        return act.cs[i], act.cs[i + 1]

    def _resolve_indirect(self, store, inst, o, view, fpi):
        table = inst.tables[o["table"]]
        i = view[fpi + o["index"]] & M32
        if i >= len(table.elements):
            raise store.trap("undefined element")
        f = table.elements[i]
        if f is None:
            raise store.trap("uninitialized element")
        want = inst.types[o["type"]]
        if f.type is not want and f.type != want:
            raise store.trap("indirect call type mismatch")
        return f

    def _service_call(self, store, inst, prog, act, site, fp, fpi):
        view = act.view
        cur, _orig, _off, row, o, resume = site
        name = row.name
        if name == "call_host":  # the common case first
            callee = inst.funcs[o["func"]]
            if type(callee) is HostFunction:
                base = fpi + o["frame"]
                ty = callee.type
                if base + _call_slots(ty) > REG_SLOTS:
                    raise store.trap("call stack exhausted")
                params, results = ty.params, ty.results
                out = store.call_from_wasm(callee, self._get(view, base, params) if params else [])
                if results:
                    self._put(view, base, results, out)
                return resume, fp
        tail = name.startswith("return_call")
        indirect = name.endswith("indirect")
        if indirect:  # the element index is read before a tail call's move overwrites it
            elem = view[fpi + o["index"]] & M32
            callee = self._resolve_indirect(store, inst, o, view, fpi)
        else:
            callee = inst.funcs[o["func"]]
        if tail:
            S._move_to_bottom(_Machine(self, store, inst, prog, view, fpi, 0), o["args"])
            base = fpi
        else:
            base = fpi + o["frame"]
        target = None
        if type(callee) is WasmFunction and callee.instance is inst:
            target = self._ensure(prog, inst, callee)
            if target is not None and indirect:
                self._inst_state(inst).cache(o["table"], elem, callee, prog)
        if target is not None:
            newfp = act.base + 8 * base
            if tail:
                if newfp + 8 * target.frame > act.base + REG_SLOTS * 8:
                    raise store.trap("call stack exhausted")
                return target.addr, newfp
            return self._native_call(store, act, prog, target, resume, fp, newfp)
        ty = callee.type
        if base + _call_slots(ty) > REG_SLOTS:
            raise store.trap("call stack exhausted")
        results = store.call_from_wasm(callee, self._get(view, base, ty.params))
        self._put(view, base, ty.results, results)
        if not tail:
            return resume, fp
        pc, fp = self._return(act, fp)
        return None if pc == 0 else (pc, fp)

    def _service_slow(self, store, inst, prog, view, fpi, orig, row, o) -> None:
        name = row.name
        m = _Machine(self, store, inst, prog, view, fpi, orig)
        try:
            if name == "table.get":
                v = inst.tables[o["table"]].get(view[fpi + o["i"]] & M32)
                view[fpi + o["dst"]] = self.handle(v)
            elif name == "table.set":
                inst.tables[o["table"]].set(view[fpi + o["i"]] & M32, self.obj(view[fpi + o["val"]]))
            elif name == "table.grow":
                t = inst.tables[o["table"]]
                old = t.grow(view[fpi + o["delta"]] & M32, self.obj(view[fpi + o["init"]]))
                view[fpi + o["dst"]] = old & M32
            elif name == "table.fill":
                inst.tables[o["table"]].fill(view[fpi + o["i"]] & M32, self.obj(view[fpi + o["val"]]),
                                             view[fpi + o["n"]] & M32)
            elif name == "ref.func":
                view[fpi + o["dst"]] = self.handle(inst.funcs[o["func"]])
            else:
                row.sem(m, o)
        except (IndexError, KeyError, AttributeError) as e:
            raise WasmError(f"{name}: invalid operand ({e})") from None
