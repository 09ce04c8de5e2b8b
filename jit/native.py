"""The native executor: runs a `CompiledCode` with the llvmlite handlers of `llvmgen.py`.

    ex = NativeExecutor(provider, dispatch="direct")   # provider(func) -> (CompiledCode, index)
    store = Store(ex)                                   # the runtime calls ex.call(store, f, args)

Execution model
---------------
- Each activation (an `ex.call` from the store) gets a register stack (a bytearray of
  64-bit slots, `REG_SLOTS` of them), a call stack of `(return pc, caller fp)` pairs (a
  buffer of `store.max_call_depth` entries, never the C stack) and a context block
  (`llvmgen.CTX_FIELDS`). Nested activations (wasm -> host -> wasm) get their own set.
- Python enters the handler chain at the function's entry with pc, fp, memory 0's base and
  length and the context. wasm->wasm `call`, `return` and `return_call` stay native
  (the callee's entry address comes from a per-module function table; a function not yet
  compiled has entry 0 and makes the handler return `HOST_CALL` so Python compiles and
  installs it, then resumes at the same op). Everything else returns a status: traps,
  `call_host`/`call_indirect`/calls into other instances (serviced through the store,
  then resumed at the next op), `memory.grow`/`table.grow` (`GROW`), the ops without an
  inline template (`SLOW`: globals, tables, references, bulk memory, other memories: run
  here with the ISA's reference semantics on the same registers), fuel exhaustion, a full
  call stack or register stack, and the entry frame's return.
- Memory 0 is the runtime's own bytearray: its address is taken with ctypes' `from_buffer`
  only while native code runs and released before Python services a status, so
  `memory.grow` and host functions see and resize the same bytes; base and length are
  re-read at every resume. Every access is bounds-checked by the handler.
- Before a function's code is first run it is checked (every op decodes, registers lie in
  its frame, branch targets are op starts inside the function, function and pool indices
  exist, it cannot fall off its end), so no bytecode can make a handler touch memory
  outside the register stack, the code buffer or the guest's memory.
- References live in slots as handles: 0 is null, others index `self._objs`.
- Frames of natively called functions are not pushed on the store's frame list (that would
  need Python per call); call depth is bounded by the native call stack instead, sized
  from the store's `max_call_depth`, and backtraces name the activation's entry function.
"""

from __future__ import annotations

import bisect
import ctypes
import struct
from typing import Callable

from deadeye.ir.errors import DecodeError, Trap, ValidationError, WasmError
from deadeye.ir.types import ValType
from deadeye.interp.isa import semantics as S
from deadeye.interp.isa.encoding import decode, decode_all
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.table import TRAP_MESSAGES, Flag, Status
from deadeye.interp.runtime import Store, WasmFunction

from . import compiler
from .llvmgen import CTX, CTX_FIELDS, DIRECT_PREFIX, MODES, SLOW

__all__ = ["NativeExecutor", "REG_SLOTS"]

REG_SLOTS = 1 << 19  # 4 MiB of registers per activation
SCRATCH_SLOTS = 1 << 16  # a return/return_call list has at most 65535 slots
M32, M64 = (1 << 32) - 1, (1 << 64) - 1
_REFS = (ValType.FUNCREF, ValType.EXTERNREF)
_NARROW = (ValType.I32, ValType.F32)
_CALLFUNCTYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
_EMPTY = ctypes.create_string_buffer(16)  # stand-in base for a memory of 0 bytes


def _nslots(types) -> int:
    return sum(2 if t == ValType.V128 else 1 for t in types)


class _Func:
    """One installed function: its private code buffer and the pc maps."""

    __slots__ = ("index", "buf", "addr", "end", "orig_entry", "new2orig", "orig2new", "frame")

    def __init__(self, index, buf, orig_entry, new2orig, orig2new, frame):
        self.index = index
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

    def addr_of(self, orig_pc: int) -> int:
        off = orig_pc - self.orig_entry
        return self.addr + (off if self.orig2new is None else self.orig2new[off])


class _Prog:
    """Per CompiledCode: installed functions, the function/frame tables, the pool."""

    def __init__(self, code: CompiledCode, nimported: int, nfuncs: int):
        self.code = code
        self.nimported = nimported
        self.functab = (ctypes.c_uint64 * max(nfuncs, 1))()
        self.frametab = (ctypes.c_uint64 * max(nfuncs, 1))()
        self.funcs: dict[int, _Func] = {}
        self.starts: list[int] = []  # sorted buffer addresses, for pc -> function
        self.by_start: list[_Func] = []
        self.pools: list = []
        self.pool_len = -1
        self.pool_addr = 0

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


class _Act:
    """The buffers of one activation depth."""

    def __init__(self, cs_entries: int):
        self.regs = bytearray(REG_SLOTS * 8)
        self.view = memoryview(self.regs).cast("Q")
        self.regs_c = (ctypes.c_char * len(self.regs)).from_buffer(self.regs)
        self.base = ctypes.addressof(self.regs_c)
        self.ctx = (ctypes.c_int64 * len(CTX_FIELDS))()
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
        return self.store.call(f, args)

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
        self._enter = _CALLFUNCTYPE(self.handlers.enter)
        self._progs: dict[int, _Prog] = {}
        self._acts: list[_Act] = []
        self._depth = 0
        self._scratch = (ctypes.c_uint64 * SCRATCH_SLOTS)()
        self._objs: list = [None]
        self._handles: dict[int, int] = {}
        self.stats = {"entries": 0, "resumes": 0}

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
    def _prog(self, code: CompiledCode, inst) -> _Prog:
        p = self._progs.get(id(code))
        if p is None or p.code is not code:
            p = self._progs[id(code)] = _Prog(code, inst.module.num_imported_funcs, len(inst.funcs))
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
        if self.dispatch == "direct":
            buf, new2orig, orig2new = self._direct_stream(code.code, ops, end)
        else:
            body = bytes(code.code[start:end])
            buf = ctypes.create_string_buffer(body + bytes(16), len(body) + 16)
            new2orig = orig2new = None
        f = _Func(index, buf, start, new2orig, orig2new, fs)
        prog.funcs[index] = f
        i = bisect.bisect_right(prog.starts, f.addr)
        prog.starts.insert(i, f.addr)
        prog.by_start.insert(i, f)
        mi = prog.nimported + index
        if mi < len(prog.functab):
            prog.frametab[mi] = fs
            prog.functab[mi] = f.addr
        return f

    def _check(self, prog: _Prog, ops, start: int, end: int, fs: int, func) -> None:
        """Reject bytecode that could make a handler step outside its buffers."""
        def bad(msg, pc):
            return ValidationError(f"bytecode of {func.name}: {msg}", pc - start, func.index)

        if not ops:
            raise bad("empty function", start)
        starts = {pc for pc, _r, _v in ops}
        nfuncs = len(prog.functab)
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
        last_pc, last, _v = ops[-1]
        if not last.flags & Flag.TERMINATOR:
            raise bad(f"the last op {last.name} falls off the end", last_pc)

    def _direct_stream(self, code, ops, end: int):
        """Re-encode for direct threading: an 8-byte handler address in place of each
        opcode, operands as they were, branch offsets relocated."""
        addrs = self.handlers.handler
        new_pos, q = {}, 0
        bounds = [pc for pc, _r, _v in ops] + [end]
        for (pc, row, _v), nxt in zip(ops, bounds[1:]):
            new_pos[pc] = q
            q += DIRECT_PREFIX + (nxt - pc - len(row.prefix))
        out = bytearray()
        for (pc, row, vals), nxt in zip(ops, bounds[1:]):
            q = new_pos[pc]
            operands = bytearray(code[pc + len(row.prefix):nxt])
            for (name, kind, at), v in zip(row.layout, vals):
                rel = at - len(row.prefix)
                if kind.name == "off":
                    struct.pack_into("<i", operands, rel, new_pos[pc + v] - q)
                elif kind.name == "brtable":
                    struct.pack_into(f"<{len(v)}i", operands, rel + 4, *(new_pos[pc + t] - q for t in v))
            out += addrs[row.index].to_bytes(8, "little") + operands
        entry = ops[0][0]
        new2orig = {q: pc - entry for pc, q in new_pos.items()}
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
        prog = self._prog(code, inst)
        f = self._install(prog, index, func)
        rt = store.push_frame(func)
        depth = self._depth
        if depth == len(self._acts):
            self._acts.append(_Act(store.max_call_depth))
        act = self._acts[depth]
        act.grow_cs(store.max_call_depth)
        self._depth += 1
        try:
            return self._run(store, inst, prog, f, func, act, args, rt)
        except Trap as t:  # runtime objects raise traps without frames: name ours
            if not t.frames:
                t.frames = store.backtrace()
            raise
        finally:
            self._depth -= 1
            store.pop_frame()

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
        fuel_on = store.fuel is not None
        pc, fp = f.addr, act.base
        enter = self._enter
        mems = inst.memories
        self.stats["entries"] += 1
        while True:
            ctx[CTX["pool"]] = prog.pool_address()
            ctx[CTX["fuel"]] = store.fuel if fuel_on else 1 << 62
            if mems:
                data = mems[0].data
                n = len(data)
                pin = (ctypes.c_char * n).from_buffer(data) if n else _EMPTY
                status = enter(pc, fp, ctypes.addressof(pin), n, ctypes.addressof(ctx))
                del pin
            else:
                status = enter(pc, fp, ctypes.addressof(_EMPTY), 0, ctypes.addressof(ctx))
            if fuel_on:
                store.fuel = ctx[CTX["fuel"]]
            pc, fp = ctx[CTX["pc"]] & M64, ctx[CTX["fp"]] & M64
            if status == Status.RETURNED:
                return self._get(view, 0, func.type.results)
            self.stats["resumes"] += 1
            cur = prog.lookup(pc)
            orig = cur.orig(pc)
            if prog.code.srcmap_pc:
                rt.offset = prog.code.wasm_offset(orig) or 0
            if status == Status.TRAP:
                raise store.trap(TRAP_MESSAGES[ctx[CTX["payload"]]])
            if status == Status.OUT_OF_FUEL:
                store.fuel = 0
                raise store.trap("all fuel consumed")
            if status == Status.STACK_EXHAUSTED:
                raise store.trap("call stack exhausted")
            fpi = (fp - act.base) // 8
            row, vals, nxt = decode(prog.code.code, orig)
            o = dict(zip(row.names, vals))
            if status == Status.HOST_CALL:
                r = self._service_call(store, inst, prog, act, cur, pc, fp, fpi, row, o, nxt)
                if r is None:  # the entry frame tail-called out of native code and is done
                    return self._get(view, 0, func.type.results)
                pc, fp = r
            elif status in (Status.GROW, SLOW):
                self._service_slow(store, inst, prog, view, fpi, orig, row, o)
                pc = cur.addr_of(nxt)
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

    def _service_call(self, store, inst, prog, act, cur: _Func, pc, fp, fpi, row, o, nxt):
        view = act.view
        name = row.name
        tail = name.startswith("return_call")
        if name.endswith("indirect"):
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
        if target is not None:
            newfp = act.base + 8 * base
            if tail:
                if newfp + 8 * target.frame > act.base + REG_SLOTS * 8:
                    raise store.trap("call stack exhausted")
                return target.addr, newfp
            return self._native_call(store, act, prog, target, cur.addr_of(nxt), fp, newfp)
        ty = callee.type
        if base + max(_nslots(ty.params), _nslots(ty.results)) > REG_SLOTS:
            raise store.trap("call stack exhausted")
        results = store.call(callee, self._get(view, base, ty.params))
        self._put(view, base, ty.results, results)
        if not tail:
            return cur.addr_of(nxt), fp
        pc, fp = self._return(act, fp)
        return None if pc == 0 else (pc, fp)

    def _service_slow(self, store, inst, prog, view, fpi, orig, row, o) -> None:
        name = row.name
        m = _Machine(self, store, inst, prog, view, fpi, orig)
        try:
            if name in ("global.get", "global.set"):
                g = inst.globals[o["global"]]
                ref = g.type.valtype in _REFS
                if name == "global.get":
                    view[fpi + o["dst"]] = self.handle(g.value) if ref else g.value
                else:
                    v = view[fpi + o["src"]]
                    g.value = self.obj(v) if ref else v & ((1 << S.BITS[g.type.valtype]) - 1)
            elif name == "table.get":
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
