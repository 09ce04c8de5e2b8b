"""The portable bytecode interpreter: runs the register bytecode of a `CompiledCode`.

    interp = Interpreter(provider)       # provider(wasm_function) -> (CompiledCode, index)
    store = Store(interp)                # the runtime calls interp.call(store, func, args)

The interpreter never sees IR or wasm: `deadeye.pipeline` injects a provider that lifts,
optimizes and lowers a function on its first call and appends it to its module's
`CompiledCode` (layering: `interp` imports only `ir`).

Pre-decoding
------------
Each function is decoded once (per mode: fuel on/off, instrumented or not) into Python
source that `exec` compiles. The code is cut into *segments* (basic blocks: a new segment
starts at every branch target and after every branch, call, return or trap), and each
segment becomes one function `run(R, b, I)` (R: the thread's register stack, b: the frame
base, I: the running instance) that

- loads the slots the segment reads into Python locals once (`r5 = R[b+5]`),
- runs its ops as straight-line Python, each op one line calling its `ir.numerics`
  function (the ISA table names it; register+immediate, compare-and-branch, fused select
  and `_pool` forms call the same function with a literal operand: never a second copy of
  an operator's semantics), memory accesses as `struct` loads/stores on the memory's
  bytearray (bounds-checked by `struct` itself: an access past the end raises, and is
  turned into the wasm trap),
- writes the slots it changed back (`R[b+5] = r5`) and returns the next segment's runner,
  or, for a call/return, a small tuple that the main loop in `Interpreter.call` handles.
  A segment that branches back to its own start (a tight loop) loops inside its runner
  with its registers in locals.

A fused op (`isa.table.FUSED_CHAINS`) is translated part by part: its parts become
consecutive lines of the segment, so fusion costs the interpreter nothing and saves it nothing.

32-bit operands are masked on read only when the generator cannot prove the local holds a
zero-extended value (a slot loaded from R may hold the 64-bit value a `mov` copied).

Superblocks: a runner continues into a small successor segment (at most 6 ops; 16 ops
per runner, 3 deep) instead of returning it to the main loop, forking its register state
at a conditional branch (every path ends in a return, `continue` or raise), so a short
`if` arm or a shared return costs no dispatch. Larger limits made more code to compile
than they saved (Sightglass ackermann: 1.7 MB of source at 40 ops vs 0.3 MB without
inlining, and slower overall).

Runners are compiled lazily: each is bound as a stub that compiles it on its first call
(Python's `compile` was most of pre-decoding's cost, and most segments of a big function
never run); the compiled runner keeps its line numbers, so traps still map to their op.

Why this form (measured on CPython 3.11, one core, the same `ir.numerics` functions): a
3-op counting loop (`i32.add`, `i32.sub_imm`, `br_i32_ne_imm`) ran 1.06 M ops/s with a
pre-decoded list of `(handler, operands...)` tuples dispatched by a `while` loop, 1.81 M
ops/s with closures that have their operands bound, and 4.4-6.3 M ops/s as generated
Python per segment (one Python call per segment instead of one per op, registers in fast
locals, the loop kept inside the runner). On `examples/fib.wasm` through the whole
pipeline (`tests/interp_vs_pywasm.py`, wasm instructions counted with fuel): recursive
fib(22) 3.3 M wasm instructions/s (pywasm 2.2.3: 0.18 M/s, ~18x), the iterative loop
fib_iter 22-32 M/s (pywasm 0.18-0.21 M/s, ~100-160x). Sightglass ackermann (9.4 M wasm
instructions, recursion-bound): 1.35 s once compiled (~7 M/s), 2.9 s including decoding,
lifting, optimizing, lowering and pre-decoding; pywasm 27 s. Call-heavy code is dominated
by the call path in the main loop.

Calls never recurse in Python: the main loop keeps an explicit stack of saved
`(frame base, resume runner, instance, runtime frame)`; `call f, @rB` runs the callee at
base b+B over the same register list (its slot 0 is the caller's slot B), `return_call`
reuses the frame, host functions go through `store.call`. The runtime's frames
(`store.push_frame`) give the depth limit (`Trap("call stack exhausted")`), the instance
side stack and backtraces; a trap's wasm offset comes from the generated line it was raised
on (line -> bytecode pc -> `CompiledCode.wasm_offset`).

Fuel: when the store consumes fuel the code is generated with the `fuel` ops inline
(`Trap("all fuel consumed")`); otherwise they vanish. Interrupts (`Store.interrupt()`):
loop heads and back edges in runners, calls and tail calls in the main loop poll
`store.interrupted` (one attribute load) and stop with `Trap("interrupted")`. Statistics (`stats=True`): every op
bumps an executed-op counter and an op-pair counter (a slower instrumented mode);
`Interpreter.stats_report()` summarises them.
"""

from __future__ import annotations

import itertools
import struct
import weakref
from typing import Any, Callable

from deadeye.ir import numerics
from deadeye.ir.errors import DecodeError, Trap, WasmError
from deadeye.ir.types import ValType
from deadeye.interp.isa.encoding import decode_all
from deadeye.interp.isa.program import CompiledCode
from deadeye.interp.isa.table import OP_LIST, TRAP_MESSAGES, Flag, Op, expand
from deadeye.interp.runtime import Frame, HostFunction, Store, WasmFunction, indirect_callee

__all__ = ["Interpreter", "FuncCode", "generate_source"]

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
_MEM_OOB = "out of bounds memory access"

# End tuples returned by runners to the main loop (first element).
E_RETURN, E_CALL, E_CALL_IND, E_RCALL, E_RCALL_IND = range(5)

_BITS = {ValType.I32: 32, ValType.I64: 64, ValType.F32: 32, ValType.F64: 64}
_CLEAN_TYPES = (ValType.I32, ValType.F32)  # results that are already zero-extended 32-bit
_FULL_BYTES = {"i32": 4, "i64": 8, "f32": 4, "f64": 8, "v128": 16}
_STRUCT_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q", 16: "<QQ"}
_LOADERS = {n: struct.Struct(f).unpack_from for n, f in _STRUCT_FMT.items()}
_STORERS = {n: struct.Struct(f).pack_into for n, f in _STRUCT_FMT.items()}

_BRANCH_ENDS = frozenset({"jump", "br_if", "br_if_not", "br_table"})
_CALL_ENDS = frozenset({"call", "call_host", "call_indirect"})
_TERMINAL = frozenset({"return", "return_call", "return_call_indirect", "unreachable", "trap"})


def _access_bytes(t: str, op: str) -> int:
    """Bytes a load/store touches (`i64.load16_s` 2, `v128.load8x8_u` 8, `f64.store` 8)."""
    body = op.split("_")[0]  # load8x8 / store16 / load
    digits = body.lstrip("loadstore")
    if "x" in digits:
        return 8
    return int(digits) // 8 if digits else _FULL_BYTES[t]


def _memory_shape(row: Op) -> tuple[str, str, int, Callable | None, bool]:
    """(kind, value type name, bytes, numerics fn, v128?) of a load/store row."""
    base = row.base or row.name
    t, op = base.split(".", 1)
    n = _access_bytes(t, op)
    fn = numerics.MEMORY_OPS.get(base)
    if op.endswith("_lane"):
        kind = "load_lane" if op.startswith("load") else "store_lane"
    else:
        kind = "load" if op.startswith("load") else "store"
    return kind, t, n, fn, t == "v128"


class FuncCode:
    """The pre-decoded form of one compiled function, for one mode."""

    __slots__ = ("name", "entry", "frame_size", "code", "index", "fuel", "filename",
                 "line_pc", "source", "__weakref__")

    def __init__(self, name, entry, frame_size, code, index, fuel, filename, line_pc, source):
        self.name = name
        self.entry = entry  # the first segment's runner
        self.frame_size = frame_size
        self.code = code  # the CompiledCode (for wasm offsets)
        self.index = index
        self.fuel = fuel
        self.filename = filename
        self.line_pc = line_pc  # generated line number -> bytecode pc of its op
        self.source = source


# Generated code's file name -> its FuncCode (maps a trap's line to a wasm offset).
_BY_FILE: "weakref.WeakValueDictionary[str, FuncCode]" = weakref.WeakValueDictionary()
_counter = itertools.count()


class _Seg:
    """One segment (basic block) of decoded ops."""

    __slots__ = ("start", "ops", "fall", "loop_head")

    def __init__(self, start: int):
        self.start = start
        self.ops: list[tuple[int, Op, tuple, int]] = []  # (pc, row, operands, next pc)
        self.fall: int | None = None  # the segment after it in the code
        self.loop_head = False


class _Gen:
    """Generates the Python source of one function's segment runners."""

    def __init__(self, code: CompiledCode, index: int, inst: Any, *, fuel: bool, tick,
                 canon: bool, name: str, result_slots: int):
        self.cc = code
        self.result_slots = result_slots
        self.index = index
        self.inst = inst
        self.fuel = fuel
        self.tick = tick
        self.canon = canon
        self.name = name
        self.start = code.entry[index]
        self.end = code.end[index]
        self.frame_size = code.frame_size[index]
        self.ns: dict = {"Trap": Trap, "M32": M32, "M64": M64, "INTERRUPT": _interrupt}
        self.lines: list[str] = []
        self.line_pc: dict[int, int] = {}
        # Module-level lines after the runners (end tuples, br_table tables), each with
        # the runner names it mentions.
        self.tail: list[tuple[str, tuple[str, ...]]] = []
        self.seg_src: dict[str, tuple[int, int]] = {}  # runner -> its lines (1-based, incl.)
        self._objs: dict[int, str] = {}

    # -- helpers -------------------------------------------------------------------------
    def bind(self, obj: Any, prefix: str = "K") -> str:
        name = self._objs.get(id(obj))
        if name is None:
            name = f"{prefix}{len(self._objs)}"
            self._objs[id(obj)] = name
            self.ns[name] = obj
        return name

    def fail(self, msg: str, pc: int) -> DecodeError:
        return DecodeError(f"bytecode of {self.name}: {msg}", pc)

    # -- decoding and segmentation ---------------------------------------------------------
    def decode(self) -> list[_Seg]:
        ops = []
        try:
            for pc, row, vals in decode_all(self.cc.code, self.start, self.end):
                ops.append([pc, row, vals])
        except DecodeError as e:
            raise self.fail(str(e), e.offset) from None
        for i, o in enumerate(ops):
            o.append(ops[i + 1][0] if i + 1 < len(ops) else self.end)
        if not ops:
            raise self.fail("empty function body", self.start)
        inst = self.inst
        self.spaces = {"func": len(inst.funcs), "type": len(inst.types),
                       "table": len(inst.tables), "mem": len(inst.memories),
                       "global": len(inst.globals), "data": len(inst.datas),
                       "elem": len(inst.elems), "pool": len(self.cc.pool)}
        starts = {o[0] for o in ops}
        targets = {self.start}
        for pc, row, vals, nxt in ops:
            for opd, v in zip(row.operands, vals):
                k = opd.kind.name
                if k == "off":
                    targets.add(self._target(pc, v, starts))
                elif k == "brtable":
                    targets.update(self._target(pc, t, starts) for t in v)
            self._check_operands(pc, row, vals)
        last = ops[-1][1]
        if not last.flags & Flag.TERMINATOR:
            raise self.fail(f"function ends with `{last.name}`, which falls through", ops[-1][0])
        segs: list[_Seg] = []
        cur = None
        for pc, row, vals, nxt in ops:
            if cur is None or pc in targets:
                cur = _Seg(pc)
                segs.append(cur)
            cur.ops.append((pc, row, vals, nxt))
            last = row.parts[-1][0] if row.parts else row
            if last.name in _BRANCH_ENDS or last.name in _CALL_ENDS or last.name in _TERMINAL \
                    or "off" in last.names:
                cur = None
        return segs

    def _target(self, pc: int, off: int, starts: set) -> int:
        t = pc + off
        if t not in starts:
            raise self.fail(f"branch from {pc:#x} to {t:#x}, not an op of the function", pc)
        return t

    def _check_operands(self, pc: int, row: Op, vals: tuple) -> None:
        """Registers inside the frame, indices inside the instance's index spaces: so a
        run never indexes past a list (bytecode is data: bad bytecode is a DecodeError)."""
        spaces = self.spaces
        fs = self.frame_size
        for opd, v in zip(row.operands, vals):
            k = opd.kind
            if k.name in ("xd", "xs"):
                ok = v < fs
            elif k.name in ("vd", "vs"):
                ok = v + 1 < fs
            elif k.name == "slots":
                ok = all(s < fs for s in v)
            elif k.name in spaces:
                ok = v < spaces[k.name]
            else:
                continue
            if not ok:
                raise self.fail(f"`{row.name}` operand {opd.name}={v!r} out of range", pc)

    # -- generation ------------------------------------------------------------------------
    def generate(self) -> tuple[str, str]:
        segs = self.decode()
        self.seg_names = {s.start: f"s_{s.start - self.start:x}" for s in segs}
        self.segs = {s.start: s for s in segs}
        for i, seg in enumerate(segs):
            seg.fall = segs[i + 1].start if i + 1 < len(segs) else None
            last_pc, last, vals, _ = seg.ops[-1]
            if last.parts:  # a fused op branches (if at all) in its last part
                last, vals = expand(last, vals)[-1]
            # A tight loop: the segment branches back to its own start.
            seg.loop_head = "off" in last.names and last_pc + vals[last.names.index("off")] == seg.start
        for seg in segs:
            # A runner that loops keeps its registers in locals across iterations, so a
            # slot one iteration changed must be written back at every exit, even on a
            # path of a later iteration that does not change it: regenerate with the slots
            # changed before some `continue` dirty (and loaded) from the start, until stable.
            carried: list[int] = []
            tail = len(self.tail)
            while True:
                body = _Body(self, seg, carried)
                body.emit_segment(seg)
                if body.loop_dirty <= set(carried):
                    break
                carried = sorted(body.loop_dirty | set(carried))
                del self.tail[tail:]  # the retry makes its own end tuples
            body.finish()
        src = "\n".join(self.lines + [line for line, _ in self.tail]) + "\n"
        return src, self.seg_names[segs[0].start]


# Superblocks: a runner continues into a small successor segment instead of returning it
# to the main loop (one Python call less per branch), within these limits.
_INLINE_OPS = 16  # ops per runner, inlined segments included
_INLINE_SEGMENT = 6  # only segments this small are inlined (code size costs compile time)
_INLINE_DEPTH = 3


class _Path:
    """Register state along one path through a runner: which slots are in locals, which
    changed (to write back at the exit), which are known zero-extended 32-bit values."""

    __slots__ = ("seen", "dirty", "clean")

    def __init__(self, seen=(), dirty=(), clean=()):
        self.seen = set(seen)
        self.dirty = list(dirty)
        self.clean = set(clean)

    def fork(self) -> "_Path":
        return _Path(self.seen, self.dirty, self.clean)


class _Body:
    """One runner: register locals, the generated lines, the exits. Paths fork at
    conditional branches; every path ends in an exit (return, continue or raise)."""

    def __init__(self, gen: _Gen, seg: _Seg, carried=()):
        self.g = gen
        self.seg = seg
        # slots some path reads before writing (loaded at entry), and the slots a looping
        # runner keeps dirty from its start (see `_Gen.generate`)
        self.loads: list[int] = list(carried)
        self._loaded: set[int] = set(carried)
        self.p = _Path(carried, carried)
        self.loop_dirty: set[int] = set()  # slots dirty at some `continue`
        self.lines: list[tuple[int, str, int | None]] = []  # (indent, line, pc)
        self.indent = 0
        self.mems: set[int] = set()
        self.need: set[str] = set()  # prologue values: "G" globals, "ST" store
        self.open_end = True
        self.loop = False  # some path branches back to the runner's start
        self.pc = seg.start
        self.inlined = len(seg.ops)
        self.chain: list[int] = [seg.start]

    # -- registers -------------------------------------------------------------------------
    def _use(self, r: int) -> str:
        if r not in self.p.seen:
            self.p.seen.add(r)
            if r not in self._loaded:
                self._loaded.add(r)
                self.loads.append(r)
        return f"r{r}"

    def x(self, r: int, how: str = "x64") -> str:
        name = self._use(r)
        if how == "x32" and r not in self.p.clean:
            return f"({name} & M32)"
        return name

    def v(self, r: int) -> str:
        return f"({self._use(r)} | {self._use(r + 1)} << 64)"

    @property
    def clean(self) -> set:
        return self.p.clean

    @property
    def dirty(self) -> list:
        return self.p.dirty

    def _def(self, r: int, clean: bool) -> str:
        p = self.p
        p.seen.add(r)
        if r not in p.dirty:
            p.dirty.append(r)
        if clean:
            p.clean.add(r)
        else:
            p.clean.discard(r)
        return f"r{r}"

    def set_x(self, r: int, expr: str, clean: bool = False) -> None:
        self.emit(f"{self._def(r, clean)} = {expr}")

    def set_v(self, r: int, expr: str) -> None:
        self.emit(f"t = {expr}")
        self.emit(f"{self._def(r, False)} = t & M64")
        self.emit(f"{self._def(r + 1, False)} = t >> 64")

    def emit(self, line: str) -> None:
        self.lines.append((self.indent, line, self.pc))

    def bind(self, obj, prefix="K") -> str:
        return self.g.bind(obj, prefix)

    def mem(self, i: int) -> str:
        self.mems.add(i)
        return f"D{i}"

    # -- segments and exits -----------------------------------------------------------------
    def emit_segment(self, seg: _Seg) -> None:
        self.open_end = True
        for pc, row, vals, nxt in seg.ops:
            self.op(pc, row, vals, nxt, seg.fall)
        if self.open_end:  # falls into the next segment (its first op is a branch target)
            if seg.fall is None:
                raise self.g.fail("code falls off the end of the function", seg.ops[-1][0])
            self.exit_to(seg.fall)

    def writeback(self) -> None:
        for r in self.p.dirty:
            self.emit(f"R[b+{r}] = r{r}")

    def runner(self, target: int) -> str:
        return self.g.seg_names[target]

    def exit_to(self, target: int) -> None:
        """Continue at `target`: loop, inline it, or return its runner."""
        if target == self.seg.start:
            self.loop = True  # (the loop head polls for interrupts)
            self.loop_dirty.update(self.p.dirty)
            self.emit("continue")
        else:
            if target <= self.pc:  # a back edge: poll for Store.interrupt()
                self.need.add("ST")
                self.emit("if ST.interrupted: raise INTERRUPT(ST)")
            t = self.g.segs[target]
            if (not t.loop_head and target not in self.chain and len(self.chain) <= _INLINE_DEPTH
                    and len(t.ops) <= _INLINE_SEGMENT and self.inlined + len(t.ops) <= _INLINE_OPS):
                self.inlined += len(t.ops)
                self.chain.append(target)
                pc = self.pc
                self.emit_segment(t)
                self.chain.pop()
                self.pc = pc
            else:
                self.writeback()
                self.emit(f"return {self.runner(target)}")
        self.open_end = False

    def branch(self, cond: str, target: int, fall: int | None, nxt: int) -> None:
        """Continue at `target` when `cond` holds, else at the op after (nxt)."""
        if nxt not in self.g.seg_names:
            raise self.g.fail("conditional branch at the end of the function", self.pc)
        saved = self.p.fork()
        self.emit(f"if {cond}:")
        self.indent += 1
        self.exit_to(target)
        self.indent -= 1
        self.p = saved
        self.exit_to(nxt)
        self.open_end = False

    def end_tuple(self, *items) -> str:
        """A module-level constant end tuple (resolved after all runners are defined)."""
        name = f"E{len(self.g.tail)}"
        self.g.tail.append((f"{name} = ({', '.join(items)},)",
                            tuple(i for i in items if i.startswith("s_"))))
        return name

    def parallel_move_to_bottom(self, slots) -> None:
        if not slots:
            return
        srcs = [self.x(s) for s in slots]
        dsts = [f"R[b+{i}]" if i else "R[b]" for i in range(len(slots))]
        self.emit(f"{', '.join(dsts)} = {', '.join(srcs)}")

    # -- ops ------------------------------------------------------------------------------------
    def op(self, pc: int, row: Op, vals: tuple, nxt: int, fall: int | None) -> None:
        self.pc = pc
        g = self.g
        if g.tick is not None and (g.fuel or row.name != "fuel"):  # (fuel off: no op)
            self.emit(f"TICK({row.index})")
            g.ns["TICK"] = g.tick
        for part, pvals in expand(row, vals):  # a fused op runs its parts in order
            self.translate(pc, part, pvals, nxt, fall)

    def translate(self, pc: int, row: Op, vals: tuple, nxt: int, fall: int | None) -> None:
        g = self.g
        o = dict(zip(row.names, vals))
        name = row.name
        handler = _SPECIAL.get(name)
        if handler is not None:
            handler(self, o, pc, nxt, fall)
        elif row.group == "memory" and row.numerics is not None or name in _PLAIN_MEMORY:
            self.memory_access(row, o)
        elif row.numerics is not None:
            self.numeric(row, o, pc, nxt, fall)
        else:
            raise g.fail(f"the interpreter has no translation for `{name}`", pc)

    def numeric(self, row: Op, o: dict, pc: int, nxt: int, fall) -> None:
        info = numerics.INFO[row.numerics]
        fn = info.fn
        if self.g.canon and info.nan and "dst" in o and not row.name.startswith("select_"):
            canon = numerics.NAN_CANONICALIZE[row.numerics]
            fn = lambda *a, _f=fn, _c=canon: _c(_f(*a))  # noqa: E731
        fname = self.bind(fn, "F")
        is_select = row.base is not None and row.name.startswith("select_")
        skip = {"dst", "off"} | ({"a", "b"} if is_select else set())
        args, pi = [], 0
        for opd in row.operands:
            if opd.name in skip:
                continue
            k = opd.kind.name
            v = o[opd.name]
            if k in ("xs", "vs"):
                t = info.params[pi]
                pi += 1
                args.append(self.v(v) if t == ValType.V128 else
                            self.x(v, "x32" if _BITS.get(t) == 32 else "x64"))
            elif k == "pool":
                pi += 1
                args.append(repr(self.g.cc.pool[v]))
            elif k in ("lane", "shuffle"):
                args.append(repr(v))
            else:  # an immediate operand standing for the last stack operand
                pi += 1
                args.append(repr(v))
        call = f"{fname}({', '.join(args)})"
        if "off" in o:  # compare-and-branch
            self.branch(call, pc + o["off"], fall, nxt)
        elif is_select:
            a, b = self.x(o["a"]), self.x(o["b"])
            self.set_x(o["dst"], f"{a} if {call} else {b}",
                       o["a"] in self.clean and o["b"] in self.clean)
        elif info.results[0] == ValType.V128:
            self.set_v(o["dst"], call)
        else:
            self.set_x(o["dst"], call, info.results[0] in _CLEAN_TYPES)

    def memory_access(self, row: Op, o: dict) -> None:
        kind, t, n, fn, vec = _memory_shape(row)
        m = o.get("mem", 0)
        d = self.mem(m)
        ea = f"{self.x(o['addr'], 'x32')} + {o['offset']}" if o["offset"] else self.x(o["addr"], "x32")
        if kind == "load":
            ld = self.bind(_LOADERS[n], "LD")
            if n == 16:
                dst = o["dst"]
                self.emit(f"t = {ld}({d}, {ea})")
                self.emit(f"{self._def(dst, False)}, {self._def(dst + 1, False)} = t")
                return
            raw = f"{ld}({d}, {ea})[0]"
            val = f"{self.bind(fn, 'F')}({raw})" if fn else raw
            if vec:
                self.set_v(o["dst"], val)
            else:
                self.set_x(o["dst"], val, t in ("i32", "f32"))
        elif kind == "store":
            st = self.bind(_STORERS[n], "ST")
            if n == 16:
                self.emit(f"{st}({d}, {ea}, {self.x(o['src'])}, {self.x(o['src'] + 1)})")
                return
            src = self.v(o["src"]) if vec else self.x(o["src"], "x32" if t in ("i32", "f32") else "x64")
            if fn:
                src = f"{self.bind(fn, 'F')}({src})"
            if fn or n < _FULL_BYTES[t]:
                src = f"{src} & {(1 << 8 * n) - 1:#x}"
            self.emit(f"{st}({d}, {ea}, {src})")
        elif kind == "load_lane":
            ld = self.bind(_LOADERS[n], "LD")
            self.set_v(o["dst"], f"{self.bind(fn, 'F')}({self.v(o['src'])}, {ld}({d}, {ea})[0], "
                                 f"{o['lane']})")
        else:
            st = self.bind(_STORERS[n], "ST")
            self.emit(f"{st}({d}, {ea}, {self.bind(fn, 'F')}({self.v(o['src'])}, {o['lane']})"
                      f" & {(1 << 8 * n) - 1:#x})")

    # -- the runner --------------------------------------------------------------------------------
    def finish(self) -> None:
        g = self.g
        out = g.lines
        name = g.seg_names[self.seg.start]
        first = len(out) + 1
        out.append(f"def {name}(R, b, I):")
        pro = []
        if "G" in self.need:
            pro.append("G = I.globals")
        if "ST" in self.need or self.loop:
            pro.append("ST = I.store")
        for m in sorted(self.mems):
            pro.append(f"D{m} = I.memories[{m}].data")
        pro += [f"r{r} = R[b+{r}]" for r in self.loads]
        for line in pro:
            out.append("    " + line)
        base = 1
        if self.loop:
            out.append("    while True:")
            out.append("        if ST.interrupted: raise INTERRUPT(ST)")
            g.line_pc[len(out)] = self.seg.start
            base = 2
        for indent, line, pc in self.lines:
            out.append("    " * (base + indent) + line)
            if pc is not None:
                g.line_pc[len(out)] = pc
        g.seg_src[name] = (first, len(out))


# -- special ops -------------------------------------------------------------------------------
def _off(b: _Body, pc: int) -> str:
    w = b.g.cc.wasm_offset(pc)
    return repr(w if w is not None else 0)


def _s_jump(b, o, pc, nxt, fall):
    b.exit_to(pc + o["off"])


def _s_br_if(b, o, pc, nxt, fall):
    b.branch(b.x(o["cond"], "x32"), pc + o["off"], fall, nxt)


def _s_br_if_not(b, o, pc, nxt, fall):
    b.branch(f"not {b.x(o['cond'], 'x32')}", pc + o["off"], fall, nxt)


def _s_br_table(b, o, pc, nxt, fall):
    targets = [b.runner(pc + t) for t in o["targets"]]
    tbl = f"BT{len(b.g.tail)}"
    b.g.tail.append((f"{tbl} = ({', '.join(targets)},)", tuple(targets)))
    n = len(targets) - 1
    b.emit(f"i = {b.x(o['index'], 'x32')}")
    b.writeback()
    b.emit(f"return {tbl}[i if i < {n} else {n}]")
    b.open_end = False


def _s_return(b, o, pc, nxt, fall):
    # The frame dies: only the results (slots 0..) need to reach R: dirty result slots
    # first (a `return` with no list finds them in place), then the listed moves.
    for r in b.dirty:
        if r < b.g.result_slots:
            b.emit(f"R[b+{r}] = r{r}")
    b.parallel_move_to_bottom(o["results"])
    b.emit(f"return {b.end_tuple('E_RETURN')}")
    b.g.ns["E_RETURN"] = E_RETURN
    b.open_end = False


def _s_call(b, o, pc, nxt, fall):
    b.writeback()
    e = b.end_tuple(str(E_CALL), _off(b, pc), str(o["func"]), str(o["frame"]), b.runner(nxt))
    b.emit(f"return {e}")
    b.open_end = False


def _s_call_indirect(b, o, pc, nxt, fall):
    b.writeback()
    e = b.end_tuple(str(E_CALL_IND), _off(b, pc), str(o["type"]), str(o["table"]),
                    str(o["index"]), str(o["frame"]), b.runner(nxt))
    b.emit(f"return {e}")
    b.open_end = False


def _s_return_call(b, o, pc, nxt, fall):
    b.parallel_move_to_bottom(o["args"])
    b.emit(f"return {b.end_tuple(str(E_RCALL), _off(b, pc), str(o['func']))}")
    b.open_end = False


def _s_return_call_indirect(b, o, pc, nxt, fall):
    b.emit(f"i = {b.x(o['index'], 'x32')}")  # read before the moves may overwrite it
    b.parallel_move_to_bottom(o["args"])
    b.emit(f"return ({E_RCALL_IND}, {_off(b, pc)}, {o['type']}, {o['table']}, i)")
    b.open_end = False


def _s_trap(b, o, pc, nxt, fall):
    msg = TRAP_MESSAGES[o["code"]] if "code" in o else "unreachable"
    b.emit(f"raise Trap({msg!r})")
    b.open_end = False


def _s_fuel(b, o, pc, nxt, fall):
    n = o["units"]
    if b.g.fuel and n:
        b.need.add("ST")
        b.emit(f"if ST.fuel < {n}: ST.fuel = 0; raise Trap('all fuel consumed')")
        b.emit(f"ST.fuel -= {n}")


def _s_mov(b, o, pc, nxt, fall):
    src = o["src"]
    b.set_x(o["dst"], b.x(src), src in b.clean)


def _s_mov128(b, o, pc, nxt, fall):
    s, d = o["src"], o["dst"]
    lo, hi = b.x(s), b.x(s + 1)
    b.emit(f"{b._def(d, False)}, {b._def(d + 1, False)} = {lo}, {hi}")


def _s_const(b, o, pc, nxt, fall):
    v = o["imm"]
    b.set_x(o["dst"], repr(v), v <= M32)


def _s_const_pool(b, o, pc, nxt, fall):
    v = b.g.cc.pool[o["pool"]]
    b.set_x(o["dst"], repr(v), v <= M32)


def _s_const128(b, o, pc, nxt, fall):
    v, d = o["imm"], o["dst"]
    b.emit(f"{b._def(d, False)}, {b._def(d + 1, False)} = {v & M64}, {v >> 64}")


def _s_select(b, o, pc, nxt, fall):
    a, c = o["a"], o["b"]
    b.set_x(o["dst"], f"{b.x(a)} if {b.x(o['cond'], 'x32')} else {b.x(c)}",
            a in b.clean and c in b.clean)


def _s_select128(b, o, pc, nxt, fall):
    a, c, d = o["a"], o["b"], o["dst"]
    # read every operand before defining the destination (it may be one of them)
    expr = f"({b.x(a)}, {b.x(a + 1)}) if {b.x(o['cond'], 'x32')} else ({b.x(c)}, {b.x(c + 1)})"
    b.emit(f"{b._def(d, False)}, {b._def(d + 1, False)} = {expr}")


def _s_memory_size(b, o, pc, nxt, fall):
    b.set_x(o["dst"], f"len(I.memories[{o['mem']}].data) >> 16", True)


def _s_memory_grow(b, o, pc, nxt, fall):
    m = o["mem"]
    b.set_x(o["dst"], f"I.memories[{m}].grow({b.x(o['delta'], 'x32')}) & M32", True)
    b.emit(f"{b.mem(m)} = I.memories[{m}].data")  # growth may have moved the buffer


def _s_memory_copy(b, o, pc, nxt, fall):
    b.emit(f"I.memories[{o['dst_mem']}].copy({b.x(o['d'], 'x32')}, I.memories[{o['src_mem']}], "
           f"{b.x(o['s'], 'x32')}, {b.x(o['n'], 'x32')})")


def _s_memory_fill(b, o, pc, nxt, fall):
    b.emit(f"I.memories[{o['mem']}].fill({b.x(o['d'], 'x32')}, {b.x(o['val'])} & 255, "
           f"{b.x(o['n'], 'x32')})")


def _s_memory_init(b, o, pc, nxt, fall):
    b.emit(f"I.memories[{o['mem']}].init({b.x(o['d'], 'x32')}, I.datas[{o['data']}], "
           f"{b.x(o['s'], 'x32')}, {b.x(o['n'], 'x32')})")


def _s_data_drop(b, o, pc, nxt, fall):
    b.emit(f"I.datas[{o['data']}].drop()")


def _s_elem_drop(b, o, pc, nxt, fall):
    b.emit(f"I.elems[{o['elem']}].drop()")


def _global_mask(b, k: int) -> int | None:
    bits = _BITS.get(b.g.inst.globals[k].type.valtype)
    return None if bits is None else (1 << bits) - 1


def _s_global_get(b, o, pc, nxt, fall):
    b.need.add("G")
    k = o["global"]
    b.set_x(o["dst"], f"G[{k}].value", _global_mask(b, k) == M32)


def _s_global_set(b, o, pc, nxt, fall):
    b.need.add("G")
    k = o["global"]
    mask = _global_mask(b, k)
    src = b.x(o["src"], "x32") if mask == M32 else b.x(o["src"])
    b.emit(f"G[{k}].value = {src}")


def _s_global_get128(b, o, pc, nxt, fall):
    b.need.add("G")
    b.set_v(o["dst"], f"G[{o['global']}].value")


def _s_global_set128(b, o, pc, nxt, fall):
    b.need.add("G")
    b.emit(f"G[{o['global']}].value = {b.v(o['src'])}")


def _s_table_get(b, o, pc, nxt, fall):
    b.set_x(o["dst"], f"I.tables[{o['table']}].get({b.x(o['i'], 'x32')})")


def _s_table_set(b, o, pc, nxt, fall):
    b.emit(f"I.tables[{o['table']}].set({b.x(o['i'], 'x32')}, {b.x(o['val'])})")


def _s_table_size(b, o, pc, nxt, fall):
    b.set_x(o["dst"], f"len(I.tables[{o['table']}].elements)", True)


def _s_table_grow(b, o, pc, nxt, fall):
    b.set_x(o["dst"], f"I.tables[{o['table']}].grow({b.x(o['delta'], 'x32')}, "
                      f"{b.x(o['init'])}) & M32", True)


def _s_table_fill(b, o, pc, nxt, fall):
    b.emit(f"I.tables[{o['table']}].fill({b.x(o['i'], 'x32')}, {b.x(o['val'])}, "
           f"{b.x(o['n'], 'x32')})")


def _s_table_copy(b, o, pc, nxt, fall):
    b.emit(f"I.tables[{o['dst_table']}].copy({b.x(o['d'], 'x32')}, I.tables[{o['src_table']}], "
           f"{b.x(o['s'], 'x32')}, {b.x(o['n'], 'x32')})")


def _s_table_init(b, o, pc, nxt, fall):
    b.emit(f"I.tables[{o['table']}].init({b.x(o['d'], 'x32')}, I.elems[{o['elem']}], "
           f"{b.x(o['s'], 'x32')}, {b.x(o['n'], 'x32')})")


def _s_ref_null(b, o, pc, nxt, fall):
    b.set_x(o["dst"], "None")


def _s_ref_is_null(b, o, pc, nxt, fall):
    b.set_x(o["dst"], f"1 if {b.x(o['src'])} is None else 0", True)


def _s_ref_func(b, o, pc, nxt, fall):
    b.set_x(o["dst"], f"I.funcs[{o['func']}]")


_SPECIAL: dict[str, Callable] = {
    "jump": _s_jump, "br_if": _s_br_if, "br_if_not": _s_br_if_not, "br_table": _s_br_table,
    "return": _s_return, "call": _s_call, "call_host": _s_call,
    "call_indirect": _s_call_indirect, "return_call": _s_return_call,
    "return_call_indirect": _s_return_call_indirect, "unreachable": _s_trap, "trap": _s_trap,
    "fuel": _s_fuel, "mov": _s_mov, "mov128": _s_mov128, "const32": _s_const,
    "const64": _s_const, "constf32": _s_const, "constf64": _s_const,
    "const64_pool": _s_const_pool, "const128": _s_const128, "select": _s_select,
    "select128": _s_select128, "memory.size": _s_memory_size, "memory.grow": _s_memory_grow,
    "memory.copy": _s_memory_copy, "memory.fill": _s_memory_fill,
    "memory.init": _s_memory_init, "data.drop": _s_data_drop, "elem.drop": _s_elem_drop,
    "global.get": _s_global_get, "global.set": _s_global_set,
    "global.get128": _s_global_get128, "global.set128": _s_global_set128,
    "table.get": _s_table_get, "table.set": _s_table_set, "table.size": _s_table_size,
    "table.grow": _s_table_grow, "table.fill": _s_table_fill, "table.copy": _s_table_copy,
    "table.init": _s_table_init, "ref.null": _s_ref_null, "ref.is_null": _s_ref_is_null,
    "ref.func": _s_ref_func,
}
# Loads/stores without an ir.numerics part (full-width i32/i64/f32/f64/v128 access).
_PLAIN_MEMORY = frozenset(o.name for o in OP_LIST if o.group == "memory" and o.numerics is None
                          and (".load" in o.name or ".store" in o.name))


def _check_coverage() -> None:
    """Every ISA op has a translation (caught at import, not mid-run)."""
    for row in OP_LIST:
        if row.parts:
            continue  # translated part by part
        if not (row.name in _SPECIAL or row.name in _PLAIN_MEMORY
                or row.numerics is not None):
            raise AssertionError(f"the interpreter has no translation for ISA op {row.name}")


_check_coverage()


def generate_source(code: CompiledCode, index: int, inst: Any, *, fuel: bool = False,
                    canon: bool = False, name: str | None = None) -> str:
    """The generated Python of defined function `index` (for inspection and tests)."""
    f = inst.funcs[inst.module.num_imported_funcs + index]
    gen = _Gen(code, index, inst, fuel=fuel, tick=None, canon=canon, name=name or f"func{index}",
               result_slots=_slots(f.type.results))
    return gen.generate()[0]


# -- values at the frame boundary -------------------------------------------------------------------
def _interrupt(store: Store) -> Trap:
    """The pending interrupt's trap, without frames: the main loop adds the backtrace
    with the offset of the op that polled."""
    t = store.take_interrupt()
    t.frames = []
    return t


def _bind_lazily(gen: _Gen, filename: str, fc: FuncCode, entry_name: str) -> None:
    """Bind every runner of `gen` in its namespace as a stub that compiles the runner on
    its first call (Python's `compile` is most of pre-decoding's cost, and most segments of
    a big function never run). A compiled runner keeps its line numbers in `filename`, so
    traps still map to their op; the end tuples and br_table tables naming it are rebuilt."""
    ns = gen.ns
    ns["E_RETURN"] = E_RETURN
    lines, seg_src = gen.lines, gen.seg_src
    refs: dict[str, list[str]] = {}
    for line, names in gen.tail:
        for n in set(names):
            refs.setdefault(n, []).append(line)
    stubs = {}

    def materialize(nm: str):
        real = ns[nm]
        if real is not stubs[nm]:
            return real
        first, last = seg_src[nm]
        text = "\n" * (first - 1) + "\n".join(lines[first - 1:last]) + "\n"
        exec(compile(text, filename, "exec"), ns)
        if nm in refs:
            exec("\n".join(refs[nm]), ns)
        real = ns[nm]
        if fc.entry is stubs[nm]:
            fc.entry = real
        return real

    def make_stub(nm: str):
        def stub(R, b, I):
            return materialize(nm)(R, b, I)
        return stub

    for nm in seg_src:
        stubs[nm] = ns[nm] = make_stub(nm)
    if gen.tail:
        exec("\n".join(line for line, _ in gen.tail), ns)
    fc.entry = ns[entry_name]


def _write_values(R: list, base: int, types, values) -> None:
    for t, v in zip(types, values):
        if t == ValType.V128:
            R[base] = v & M64
            R[base + 1] = v >> 64
            base += 2
        else:
            R[base] = v
            base += 1


def _read_values(R: list, base: int, types) -> list:
    out = []
    for t in types:
        if t == ValType.V128:
            out.append(R[base] | R[base + 1] << 64)
            base += 2
        else:
            v = R[base]
            if t == ValType.I32 or t == ValType.F32:
                v &= M32  # a slot of a 32-bit value may carry high bits (see table.py)
            out.append(v)
            base += 1
    return out


def _slots(types) -> int:
    return sum(2 if t == ValType.V128 else 1 for t in types)


def _trap_pc(tb) -> tuple[FuncCode | None, int | None]:
    """The FuncCode and bytecode pc of the generated line an exception came from."""
    found = (None, None)
    while tb is not None:
        fc = _BY_FILE.get(tb.tb_frame.f_code.co_filename)
        if fc is not None:
            found = (fc, fc.line_pc.get(tb.tb_lineno))
        tb = tb.tb_next
    return found


class Interpreter:
    """The executor seam for bytecode: `call(store, func, args) -> results`.

    `provider(func: WasmFunction) -> (CompiledCode, defined_index)` makes sure the function
    is compiled (it may raise our errors, e.g. for an invalid body) and says where its code
    is. `stats=True` selects the instrumented mode (see `stats_report`);
    `nan_canonicalization=True` canonicalizes every NaN result of an arithmetic op."""

    def __init__(self, provider: Callable[[WasmFunction], tuple[CompiledCode, int]], *,
                 stats: bool = False, nan_canonicalization: bool = False):
        self.provider = provider
        self.nan_canonicalization = nan_canonicalization
        self.stats = stats
        self.op_counts = [0] * len(OP_LIST)
        self.pair_counts: dict[tuple[int, int], int] = {}
        self._last = [-1]
        # id(decoded module) -> (its CompiledCode, {(index, fuel): FuncCode}): instances of
        # a module share pre-decoded code; the entry goes when the module is collected.
        self._cache: dict[int, tuple[CompiledCode, dict]] = {}
        self._tick = self._make_tick() if stats else None

    def _make_tick(self):
        counts, pairs, last = self.op_counts, self.pair_counts, self._last

        def tick(i):
            counts[i] += 1
            key = (last[0], i)
            pairs[key] = pairs.get(key, 0) + 1
            last[0] = i
        return tick

    # -- compiled code -----------------------------------------------------------------------
    def func_code(self, func: WasmFunction, fuel: bool) -> FuncCode:
        c = func.code
        if type(c) is FuncCode and c.fuel == fuel:
            return c
        code, index = self.provider(func)
        if not code.is_compiled(index):
            raise WasmError(f"function {func.name} has no compiled code")
        module = func.instance.module
        key = id(module)
        entry = self._cache.get(key)
        if entry is None or entry[0] is not code:
            if entry is None:  # forget the module's code when the module goes away
                weakref.finalize(module, self._cache.pop, key, None)
            entry = self._cache[key] = (code, {})
        fc = entry[1].get((index, fuel))
        if fc is None:
            fc = entry[1][(index, fuel)] = self._build(code, index, func, fuel)
        func.code = fc
        return fc

    def _build(self, code: CompiledCode, index: int, func: WasmFunction, fuel: bool) -> FuncCode:
        name = func.name
        gen = _Gen(code, index, func.instance, fuel=fuel, tick=self._tick,
                   canon=self.nan_canonicalization, name=name,
                   result_slots=_slots(func.type.results))
        src, entry_name = gen.generate()
        # (ascii: wasm names may hold characters a code object's file name cannot, e.g. NUL)
        filename = f"<interp {ascii(name)[1:-1]} #{next(_counter)}>"
        fs = max(code.frame_size[index], _slots(func.type.params), _slots(func.type.results))
        fc = FuncCode(name, None, fs, code, index, fuel, filename, gen.line_pc, src)
        _bind_lazily(gen, filename, fc, entry_name)
        _BY_FILE[filename] = fc
        return fc

    # -- statistics -----------------------------------------------------------------------------
    def stats_report(self, top: int = 10) -> dict:
        """{"executed": total ops, "ops": [(name, count)...] most executed first,
        "pairs": [((name, name), count)...] hottest consecutive op pairs first}."""
        names = [o.name for o in OP_LIST]
        ops = sorted(((names[i], n) for i, n in enumerate(self.op_counts) if n),
                     key=lambda x: -x[1])
        pairs = sorted((((names[a], names[b]), n) for (a, b), n in self.pair_counts.items()
                        if a >= 0), key=lambda x: -x[1])
        return {"executed": sum(self.op_counts), "ops": ops[:top], "pairs": pairs[:top]}

    def format_stats(self, top: int = 10) -> str:
        """`stats_report` as text (what a `--stats` option prints)."""
        rep = self.stats_report(top)
        lines = [f"executed bytecode ops: {rep['executed']}", "hottest ops:"]
        lines += [f"  {n:>12}  {name}" for name, n in rep["ops"]]
        lines.append("hottest op pairs:")
        lines += [f"  {n:>12}  {a} -> {b}" for (a, b), n in rep["pairs"]]
        return "\n".join(lines)

    # -- the main loop: one Python activation for the whole wasm call tree -------------------
    def call(self, store: Store, func: WasmFunction, args: list) -> list:  # noqa: C901
        fuel = store.fuel is not None
        fc = self.func_code(func, fuel)
        rtypes = func.type.results
        R: list = [0] * fc.frame_size
        _write_values(R, 0, func.type.params, args)
        rt = store.push_frame(func)
        I = func.instance
        b = 0
        if store.interrupted:  # requested while no wasm ran: stop at the first poll
            raise store.take_interrupt()
        # Saved callers: (frame base, resume runner, instance, runtime frame).
        stack: list = []
        run = fc.entry
        func_code = self.func_code
        tuple_ = tuple
        frames = store.frames
        max_depth = store.max_call_depth
        try:
            while True:
                x = run(R, b, I)
                if type(x) is not tuple_:
                    run = x
                    continue
                e = x[0]
                if e == E_CALL:
                    rt.offset = x[1]
                    if store.interrupted:  # calls poll too: recursion never loops
                        raise store.take_interrupt()
                    callee = I.funcs[x[2]]
                    if type(callee) is WasmFunction:
                        c = callee.code
                        if type(c) is not FuncCode or c.fuel != fuel:
                            c = func_code(callee, fuel)
                        # The runtime's push_frame, inlined for calls inside one instance.
                        if callee.instance is I and len(frames) < max_depth:
                            nrt = Frame(callee)
                            frames.append(nrt)
                        else:
                            nrt = store.push_frame(callee)
                        nb = b + x[3]
                        need = nb + c.frame_size
                        if len(R) < need:
                            R.extend([0] * (need - len(R)))
                        stack.append((b, x[4], I, rt))
                        b, I, rt, run = nb, callee.instance, nrt, c.entry
                    else:
                        run = self._host_call(store, callee, R, b + x[3], x[4])
                    continue
                if e == E_RETURN:
                    if not stack:
                        store.pop_frame()
                        return _read_values(R, b, rtypes)
                    callee_inst = I
                    b, run, I, rt = stack.pop()
                    if I is callee_inst:
                        frames.pop()
                    else:
                        store.pop_frame()
                    continue
                rt.offset = x[1]
                if store.interrupted:
                    raise store.take_interrupt()
                if e == E_CALL_IND:
                    callee = indirect_callee(I, x[2], x[3], R[b + x[4]] & M32)
                    if type(callee) is WasmFunction:
                        c = callee.code
                        if type(c) is not FuncCode or c.fuel != fuel:
                            c = func_code(callee, fuel)
                        nrt = store.push_frame(callee)
                        nb = b + x[5]
                        need = nb + c.frame_size
                        if len(R) < need:
                            R.extend([0] * (need - len(R)))
                        stack.append((b, x[6], I, rt))
                        b, I, rt, run = nb, callee.instance, nrt, c.entry
                    else:
                        run = self._host_call(store, callee, R, b + x[5], x[6])
                    continue
                # return_call / return_call_indirect: the arguments are in slots 0..
                if e == E_RCALL:
                    callee = I.funcs[x[2]]
                else:
                    callee = indirect_callee(I, x[2], x[3], x[4])
                if type(callee) is WasmFunction:
                    c = callee.code
                    if type(c) is not FuncCode or c.fuel != fuel:
                        c = func_code(callee, fuel)
                    if callee.instance is I:  # reuse the runtime frame too
                        rt.func = callee
                    else:
                        store.pop_frame()  # the frame is reused: depth does not grow
                        rt = store.push_frame(callee)
                    need = b + c.frame_size
                    if len(R) < need:
                        R.extend([0] * (need - len(R)))
                    I, run = callee.instance, c.entry
                    continue
                self._host_call(store, callee, R, b, None)
                store.pop_frame()
                if not stack:
                    return _read_values(R, b, rtypes)
                b, run, I, rt = stack.pop()
        except Trap as t:
            if not t.frames:
                self._locate(store, rt, t)
            raise
        except struct.error as err:
            # A memory access past the end (struct checks the bounds of every access).
            t = Trap(_MEM_OOB)
            self._locate(store, rt, t, err)
            raise t from None

    @staticmethod
    def _host_call(store: Store, callee, R: list, base: int, resume):
        """Call a host function (or anything not ours) with the arguments at `base`; its
        results go to `base`.. Returns `resume`."""
        if not isinstance(callee, HostFunction) and type(callee) is not WasmFunction:
            raise WasmError(f"{callee!r} is not a function")
        ty = callee.type
        res = store.call_from_wasm(callee, _read_values(R, base, ty.params))
        need = base + _slots(ty.results)
        if len(R) < need:
            R.extend([0] * (need - len(R)))
        _write_values(R, base, ty.results, res)
        return resume

    @staticmethod
    def _locate(store: Store, rt, t: Exception, err: Exception | None = None) -> None:
        fc, pc = _trap_pc((err or t).__traceback__)
        if fc is not None and pc is not None:
            off = fc.code.wasm_offset(pc)
            if off is not None:
                rt.offset = off
        t.frames = store.backtrace()
