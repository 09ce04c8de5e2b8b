"""The IR evaluator: runs SSA IR functions directly. It is the reference executor the
optimizer and the bytecode executors are checked against, so every operator's meaning
comes from `ir.numerics` (never a private copy).

    ev = IREvaluator(provider)     # provider(wasm_function) -> ir Function
    store = Store(ev)              # the runtime calls ev.call(store, func, args)

The evaluator does not know where IR comes from (layering: `interp` imports no frontend):
`deadeye.pipeline` injects a provider that lifts (later: optimizes) on first call.

Compact form (built once per IR Function, cached): every SSA value gets a slot in a flat
register list indexed by value id; constants are pre-filled in the register template, so
they cost nothing at run time. Each block becomes one or more *segments*
`[fuel, offset, run, end]`. `run(regs, inst)` is Python generated from the segment's ops
(one line per op, each calling the `ir.numerics` function of its op, memory accesses
bounds-checked inline); when the segment ends in `jump`/`br_if` it also does the edge's
parallel copy into the target's block parameters and returns the next segment. `end` is
the other terminators or a call: a call ends a segment so the callee runs in the same loop
and the caller resumes at the next segment. A trap raised inside `run` is mapped back to
its instruction's wasm offset through the generated line number.

Calls never recurse in Python: `call` runs one loop over an explicit stack of saved
caller states; tail calls replace the current frame, so a tail-recursive loop runs in
constant space. The runtime's frames (`store.push_frame`) give the depth limit ("call stack
exhausted"), the instance side stack and trap backtraces.

Interrupts: the loop polls `store.interrupted` (one attribute load) at every segment, so
every loop iteration and call notices `Store.interrupt()` and stops with
`Trap("interrupted")` at the block's offset."""

from __future__ import annotations

import itertools
import re
import weakref
from typing import Callable

from deadeye.ir import numerics
from deadeye.ir.errors import Trap, WasmError
from deadeye.ir.function import Function
from deadeye.ir.opcodes import OPS as IR_OPS
from deadeye.interp.runtime import Store, WasmFunction, indirect_callee

__all__ = ["IREvaluator", "Code", "compile_function"]

_MEM_OOB = "out of bounds memory access"
_M32 = 0xFFFFFFFF

# Segment ends (a segment's last element). Jumps and br_if are done by the generated
# runner itself; the main loop sees the others.
E_JUMP, E_BRTABLE, E_RETURN, E_CALL, E_CALL_IND, E_RCALL, E_RCALL_IND, E_TRAP = range(8)

_PLAIN_BYTES = {"i32": 4, "i64": 8, "f32": 4, "f64": 8, "v128": 16}
_ACCESS = re.compile(r"\.(?:load|store)(\d+)(?:x(\d+))?")


def _access_bytes(name: str) -> int:
    """How many bytes a load/store touches: `i64.load16_s` 2, `v128.load8x8_u` 8,
    `f64.store` 8, `v128.store32_lane` 4."""
    m = _ACCESS.search(name)
    if m is None:
        return _PLAIN_BYTES[name.split(".")[0]]
    return int(m.group(1)) * int(m.group(2) or 1) // 8


# -- generic handlers: (inst, regs, ins) for the rarer stateful ops ---------------------
# `ins` is (None, offset, handler, dst, arg slots, immediates); generated code calls
# `handler(inst, r, ins)`. They raise Trap without frames (the main loop adds the backtrace).

def _h_load_lane(inst, regs, ins):
    _, _, _, dst, (a, v), (m, off, lane, n, fn) = ins
    data = inst.memories[m].data
    ea = regs[a] + off
    if ea + n > len(data):
        raise Trap(_MEM_OOB)
    regs[dst] = fn(regs[v], int.from_bytes(data[ea:ea + n], "little"), lane)


def _h_store_lane(inst, regs, ins):
    _, _, _, _, (a, v), (m, off, lane, n, fn) = ins
    data = inst.memories[m].data
    ea = regs[a] + off
    if ea + n > len(data):
        raise Trap(_MEM_OOB)
    data[ea:ea + n] = fn(regs[v], lane).to_bytes(n, "little")


def _h_memory_size(inst, regs, ins):
    regs[ins[3]] = len(inst.memories[ins[5][0]].data) // 65536


def _h_memory_grow(inst, regs, ins):
    r = inst.memories[ins[5][0]].grow(regs[ins[4][0]])
    regs[ins[3]] = r & _M32


def _h_memory_copy(inst, regs, ins):
    d, s, n = ins[4]
    dst_mem, src_mem = ins[5]
    mems = inst.memories
    mems[dst_mem].copy(regs[d], mems[src_mem], regs[s], regs[n])


def _h_memory_fill(inst, regs, ins):
    d, v, n = ins[4]
    inst.memories[ins[5][0]].fill(regs[d], regs[v], regs[n])


def _h_memory_init(inst, regs, ins):
    d, s, n = ins[4]
    data, mem = ins[5]
    inst.memories[mem].init(regs[d], inst.datas[data], regs[s], regs[n])


def _h_data_drop(inst, regs, ins):
    inst.datas[ins[5][0]].drop()


def _h_table_get(inst, regs, ins):
    regs[ins[3]] = inst.tables[ins[5][0]].get(regs[ins[4][0]])


def _h_table_set(inst, regs, ins):
    i, v = ins[4]
    inst.tables[ins[5][0]].set(regs[i], regs[v])


def _h_table_size(inst, regs, ins):
    regs[ins[3]] = len(inst.tables[ins[5][0]].elements)


def _h_table_grow(inst, regs, ins):
    init, delta = ins[4]
    regs[ins[3]] = inst.tables[ins[5][0]].grow(regs[delta], regs[init]) & _M32


def _h_table_fill(inst, regs, ins):
    i, v, n = ins[4]
    inst.tables[ins[5][0]].fill(regs[i], regs[v], regs[n])


def _h_table_copy(inst, regs, ins):
    d, s, n = ins[4]
    dst, src = ins[5]
    tables = inst.tables
    tables[dst].copy(regs[d], tables[src], regs[s], regs[n])


def _h_table_init(inst, regs, ins):
    d, s, n = ins[4]
    elem, table = ins[5]
    inst.tables[table].init(regs[d], inst.elems[elem], regs[s], regs[n])


def _h_elem_drop(inst, regs, ins):
    inst.elems[ins[5][0]].drop()


def _h_ref_is_null(inst, regs, ins):
    regs[ins[3]] = 1 if regs[ins[4][0]] is None else 0


def _h_ref_func(inst, regs, ins):
    regs[ins[3]] = inst.funcs[ins[5][0]]


_GENERIC = {
    "memory.size": _h_memory_size, "memory.grow": _h_memory_grow,
    "memory.copy": _h_memory_copy, "memory.fill": _h_memory_fill,
    "memory.init": _h_memory_init, "data.drop": _h_data_drop,
    "table.get": _h_table_get, "table.set": _h_table_set, "table.size": _h_table_size,
    "table.grow": _h_table_grow, "table.fill": _h_table_fill, "table.copy": _h_table_copy,
    "table.init": _h_table_init, "elem.drop": _h_elem_drop,
    "ref.is_null": _h_ref_is_null, "ref.func": _h_ref_func,
}
_CONSTS = frozenset({"i32.const", "i64.const", "f32.const", "f64.const", "v128.const"})
_CALLS = frozenset({"call", "call_indirect"})


def _is_load(name: str) -> bool:
    return IR_OPS[name].resource == "memory" and ".load" in name


def _is_store(name: str) -> bool:
    return IR_OPS[name].resource == "memory" and ".store" in name


def _check_coverage() -> None:
    """Every IR op must have a translation (caught at import, not mid-run)."""
    terminators = {"jump", "br_if", "br_table", "return", "unreachable", "trap",
                   "return_call", "return_call_indirect"}
    special = _CONSTS | _CALLS | terminators | set(_GENERIC) | {
        "select", "global.get", "global.set", "ref.null"}
    for name in IR_OPS:
        if not (name in special or name in numerics.OPS or _is_load(name) or _is_store(name)):
            raise AssertionError(f"ireval has no translation for IR op {name}")


_check_coverage()


class Code:
    """The compact form of one IR Function."""

    __slots__ = ("name", "index", "sig", "template", "params", "entry", "filename", "lines",
                 "__weakref__")

    def __init__(self, name, index, sig, template, params, entry, filename, lines):
        self.name = name
        self.index = index
        self.sig = sig
        self.template = template  # the initial register list (constants pre-filled)
        self.params = params  # slots of the entry block's parameters
        self.entry = entry  # the entry segment
        self.filename = filename  # of the generated segment code
        self.lines = lines  # generated line number -> wasm offset of its instruction


# Generated code's file name -> its Code, to map a trap's line back to a wasm offset.
_BY_FILE: "weakref.WeakValueDictionary[str, Code]" = weakref.WeakValueDictionary()
_counter = itertools.count()


class _Gen:
    """Source of one function's segment runners. Each runner `run(r, inst)` executes a
    segment's ops on the register list `r` and, when the segment ends in a jump or br_if,
    does the edge's parallel copy and returns the next segment (else None: the main loop
    handles calls, returns, br_table and traps)."""

    def __init__(self):
        self.lines: list[str] = []
        self.offsets: dict[int, int] = {}
        self.ns: dict = {"Trap": Trap, "OOB": _MEM_OOB}
        self.names: dict[int, str] = {}

    def const(self, obj, prefix="K") -> str:
        """A namespace name bound to `obj` (one per object)."""
        name = self.names.get(id(obj))
        if name is None:
            name = f"{prefix}{len(self.names)}"
            self.names[id(obj)] = name
            self.ns[name] = obj
        return name

    def emit(self, line: str, offset=None, indent=1) -> None:
        self.lines.append("    " * indent + line)
        if offset is not None:
            self.offsets[len(self.lines)] = offset

    def copies(self, edge, indent) -> None:
        seg, dsts, srcs = edge
        if len(dsts) == 1:
            self.emit(f"r[{dsts[0]}] = r[{srcs[0]}]", indent=indent)
        elif dsts:
            self.emit(", ".join(f"r[{d}]" for d in dsts) + " = "
                      + ", ".join(f"r[{s}]" for s in srcs), indent=indent)
        self.emit(f"return {self.const(seg, 'S')}", indent=indent)


def compile_function(func: Function) -> Code:
    """Translate an IR Function into its compact form."""
    nslots = 0
    for v in func.values():
        nslots = max(nslots, v.id + 1)
    template: list = [None] * nslots
    # One head segment per block; mid-block segments follow calls.
    heads = {id(b): [b.fuel, b.offset if b.offset is not None else 0, None, None]
             for b in func.blocks}

    def edge(call):
        pairs = [(p.id, a.id) for p, a in zip(call.block.params, call.args) if p.id != a.id]
        return (heads[id(call.block)], tuple(d for d, _ in pairs), tuple(s for _, s in pairs))

    g = _Gen()
    runners: list[tuple[list, str]] = []  # (segment, runner name)

    def finish(seg, body, end, jumps=()):
        """Close a segment: its ops (source lines) and end; `jumps` are generated edges
        (one for jump, then/else for br_if)."""
        seg[3] = end
        if not body and not jumps:
            return
        name = f"run{len(runners)}"
        g.emit(f"def {name}(r, inst):", indent=0)
        for line, off in body:
            g.emit(line, off)
        if len(jumps) == 1:
            g.copies(jumps[0], 1)
        elif jumps:
            g.emit(f"if r[{end[2]}]:")
            g.copies(jumps[0], 2)
            g.copies(jumps[1], 1)
        g.emit("pass")
        runners.append((seg, name))

    for block in func.blocks:
        seg = heads[id(block)]
        body: list[tuple[str, int | None]] = []
        bound: set[str] = set()

        def bind(var, expr):
            if var not in bound:
                bound.add(var)
                body.insert(0, (f"{var} = {expr}", None))

        for ins in block.instrs:
            name = ins.op.name
            off = ins.offset
            a = [f"r[{v.id}]" for v in ins.args]
            dst = ins.results[0].id if ins.results else None
            if name in _CONSTS:
                template[dst] = ins.imm[0]
            elif name == "ref.null":
                template[dst] = None
            elif name in numerics.OPS:
                fn = numerics.OPS[name]
                operands = a + [repr(ins.imm[0])] if ins.imm else a
                body.append((f"r[{dst}] = {g.const(fn, 'F')}({', '.join(operands)})", off))
            elif _is_load(name) or _is_store(name):
                mem, moff = ins.imm[0], ins.imm[1]
                n = _access_bytes(name)
                conv = numerics.MEMORY_OPS.get(name)
                if name.endswith("_lane"):
                    h = _h_load_lane if ".load" in name else _h_store_lane
                    t = (None, off, h, dst, tuple(v.id for v in ins.args),
                         (mem, moff, ins.imm[2], n, conv))
                    body.append((f"{g.const(h, 'H')}(inst, r, {g.const(t, 'I')})", off))
                    continue
                bind(f"M{mem}", f"inst.memories[{mem}]")
                body.append((f"a_ = {a[0]} + {moff}; d_ = M{mem}.data", off))
                body.append((f"if a_ + {n} > len(d_): raise Trap(OOB)", off))
                if ".load" in name:
                    v = f'int.from_bytes(d_[a_:a_ + {n}], "little")'
                    if conv is not None:
                        v = f"{g.const(conv, 'C')}({v})"
                    body.append((f"r[{dst}] = {v}", off))
                else:
                    v = a[1] if conv is None else f"{g.const(conv, 'C')}({a[1]})"
                    body.append((f'd_[a_:a_ + {n}] = {v}.to_bytes({n}, "little")', off))
            elif name == "select":
                body.append((f"r[{dst}] = {a[0]} if {a[2]} else {a[1]}", off))
            elif name == "global.get":
                bind("G", "inst.globals")
                body.append((f"r[{dst}] = G[{ins.imm[0]}].value", off))
            elif name == "global.set":
                bind("G", "inst.globals")
                body.append((f"G[{ins.imm[0]}].value = {a[0]}", off))
            elif name in _GENERIC:
                h = _GENERIC[name]
                t = (None, off, h, dst, tuple(v.id for v in ins.args), ins.imm)
                body.append((f"{g.const(h, 'H')}(inst, r, {g.const(t, 'I')})", off))
            elif name in _CALLS:
                nxt = [0, 0, None, None]
                args = tuple(v.id for v in ins.args)
                dsts = tuple(r.id for r in ins.results)
                if name == "call":
                    end = (E_CALL, off, ins.imm[0], args, dsts, nxt)
                else:
                    end = (E_CALL_IND, off, ins.imm[0], ins.imm[1], args, dsts, nxt)
                finish(seg, body, end)
                seg, body, bound = nxt, [], set()
            else:
                t = ins.targets
                args = tuple(v.id for v in ins.args)
                jumps: tuple = ()
                if name == "jump":
                    end = (E_JUMP, off)
                    jumps = (edge(t[0]),)
                elif name == "br_if":
                    end = (E_JUMP, off, args[0])
                    jumps = (edge(t[0]), edge(t[1]))
                elif name == "br_table":
                    end = (E_BRTABLE, off, args[0], tuple(edge(c) for c in t[:-1]), edge(t[-1]))
                elif name == "return":
                    end = (E_RETURN, off, args)
                elif name == "return_call":
                    end = (E_RCALL, off, ins.imm[0], args)
                elif name == "return_call_indirect":
                    end = (E_RCALL_IND, off, ins.imm[0], ins.imm[1], args)
                elif name == "unreachable":
                    end = (E_TRAP, off, "unreachable")
                elif name == "trap":
                    end = (E_TRAP, off, ins.imm[0])
                else:
                    raise WasmError(f"ireval: unexpected IR op {name}")
                finish(seg, body, end, jumps)
                seg = None
                break
        if seg is not None:
            raise WasmError(f"ireval: {func.name} block{block.id} has no terminator")

    # Names come from the module (any UTF-8); compile() rejects a NUL in a filename.
    filename = f"<ireval {func.name.replace(chr(0), '?')} #{next(_counter)}>"
    if runners:
        exec(compile("\n".join(g.lines) + "\n", filename, "exec"), g.ns)
        for seg, name in runners:
            seg[2] = g.ns[name]
    params = tuple(p.id for p in func.params)
    code = Code(func.name, func.index, func.sig, template, params, heads[id(func.blocks[0])],
                filename, g.offsets)
    _BY_FILE[filename] = code
    return code


def _trap_offset(tb) -> int | None:
    """The wasm offset of the generated line a trap came from (None if none did)."""
    while tb is not None:
        code = _BY_FILE.get(tb.tb_frame.f_code.co_filename)
        if code is not None:
            return code.lines.get(tb.tb_lineno)
        tb = tb.tb_next
    return None


class IREvaluator:
    """The executor seam for IR: `call(store, func, args) -> results`.

    `provider(func: WasmFunction) -> Function` supplies the IR of a wasm function (it may
    raise our errors, e.g. a lazily validated body that is invalid). Compact forms are
    cached per IR Function (so instances of one module share them) and remembered in
    `WasmFunction.code`. NaN canonicalization is not the evaluator's business: the
    pipeline runs the `opt.nan_canon` pass on the IR it provides."""

    def __init__(self, provider: Callable[[WasmFunction], Function]):
        self.provider = provider
        self._codes: "weakref.WeakKeyDictionary[Function, Code]" = weakref.WeakKeyDictionary()

    def code_of(self, func: WasmFunction) -> Code:
        code = func.code
        if type(code) is Code:
            return code
        ir = self.provider(func)
        code = self._codes.get(ir)
        if code is None:
            code = compile_function(ir)
            self._codes[ir] = code
        func.code = code
        return code

    # The interpreter loop: one Python activation for the whole wasm call tree.
    def call(self, store: Store, func: WasmFunction, args: list) -> list:  # noqa: C901
        code = self.code_of(func)
        regs = code.template.copy()
        for d, v in zip(code.params, args):
            regs[d] = v
        rt = store.push_frame(func)
        inst = func.instance
        stack: list = []  # saved callers: (regs, resume segment, result slots, instance, frame)
        seg = code.entry
        fuel_on = store.fuel is not None
        end = (None, None)
        code_of = self.code_of
        try:
            while True:
                fuel, boff, run, end = seg
                if fuel_on and fuel:
                    if fuel > store.fuel:
                        rt.offset = boff
                    store.consume_fuel(fuel)
                if store.interrupted:  # Store.interrupt() from another thread
                    rt.offset = boff
                    raise store.take_interrupt()
                if run is not None:
                    nxt = run(regs, inst)
                    if nxt is not None:
                        seg = nxt
                        continue
                e = end[0]
                if e == E_BRTABLE:
                    i = regs[end[2]]
                    table = end[3]
                    seg, dsts, srcs = table[i] if i < len(table) else end[4]
                    if dsts:  # the edge's parallel copy into the target's parameters
                        vals = [regs[s] for s in srcs]
                        for d, v in zip(dsts, vals):
                            regs[d] = v
                elif e == E_CALL or e == E_CALL_IND:
                    if e == E_CALL:
                        _, off, fidx, cargs, cdsts, nxt = end
                        callee = inst.funcs[fidx]
                    else:
                        _, off, tidx, table, cargs, cdsts, nxt = end
                        callee = indirect_callee(inst, tidx, table, regs[cargs[-1]])
                        cargs = cargs[:-1]
                    rt.offset = off
                    if type(callee) is WasmFunction:
                        c = callee.code
                        if type(c) is not Code:
                            c = code_of(callee)
                        nrt = store.push_frame(callee)
                        nregs = c.template.copy()
                        for d, s in zip(c.params, cargs):
                            nregs[d] = regs[s]
                        stack.append((regs, nxt, cdsts, inst, rt))
                        regs, inst, rt, seg = nregs, callee.instance, nrt, c.entry
                    else:
                        res = store.call_from_wasm(callee, [regs[s] for s in cargs])
                        for d, v in zip(cdsts, res):
                            regs[d] = v
                        seg = nxt
                elif e == E_TRAP:
                    raise Trap(end[2])
                else:  # return, return_call, return_call_indirect
                    if e == E_RETURN:
                        results = [regs[s] for s in end[2]]
                    else:
                        if e == E_RCALL:
                            _, off, fidx, cargs = end
                            callee = inst.funcs[fidx]
                        else:
                            _, off, tidx, table, cargs = end
                            callee = indirect_callee(inst, tidx, table, regs[cargs[-1]])
                            cargs = cargs[:-1]
                        rt.offset = off
                        if type(callee) is WasmFunction:
                            # Reuse the frame: the caller's activation ends here.
                            c = callee.code
                            if type(c) is not Code:
                                c = code_of(callee)
                            nregs = c.template.copy()
                            for d, s in zip(c.params, cargs):
                                nregs[d] = regs[s]
                            store.pop_frame()
                            rt = store.push_frame(callee)
                            regs, inst, seg = nregs, callee.instance, c.entry
                            continue
                        results = store.call_from_wasm(callee, [regs[s] for s in cargs])
                    store.pop_frame()
                    if not stack:
                        return results
                    regs, seg, cdsts, inst, rt = stack.pop()
                    for d, v in zip(cdsts, results):
                        regs[d] = v
        except Trap as t:
            if not t.frames:
                off = _trap_offset(t.__traceback__)
                if off is None:  # raised by the segment's end, not its ops
                    off = end[1]
                if off is not None:
                    rt.offset = off
                t.frames = store.backtrace()
            raise


