"""Reference semantics of the bytecode ops, written against a small machine-state interface.

Pure numeric ops are not written here: their rows name the `ir.numerics` operator, and
`compute` wraps that function into an op semantics (reading registers, writing the result).
Everything else (moves, memory, state, control) is a small function below.

A semantics is `sem(m, o)`: `m` is the machine (see `Machine`), `o` maps operand names to
their decoded values. Families of derived ops (register+immediate forms, compare-and-branch,
fused select, memory-0 forms, constant-pool forms) build their semantics from the base op's
by wrapping, so a variant can never disagree with its base.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from deadeye.ir.types import FuncType, ValType

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
BITS = {ValType.I32: 32, ValType.I64: 64, ValType.F32: 32, ValType.F64: 64, ValType.V128: 128}
Sem = Callable[["Machine", dict], None]


class Machine(Protocol):
    """What an op's semantics may touch. `pc` is the offset of the op being executed.

    Registers: `reg(r)`/`set_reg(r, v)` read/write one 64-bit slot of the current frame (an
    int bit pattern, or a reference); `v128(r)`/`set_v128(r, v)` read/write the v128 held in
    slots r (low 64 bits) and r+1 (high 64 bits). `pool(i)` is constant pool entry i.
    Control: `branch(offset)` continues at pc + offset; `finish()` returns from the frame
    (results already in slots 0..); `trap(message)` raises the wasm trap.
    Instance state (runtime objects of `deadeye.interp.runtime`): `memory(i)`, `data(i)`,
    `table(i)`, `elem(i)`, `global_(i)`, `function(i)` (a function object with `.type`),
    `sig(type_index)` (a FuncType); `call_function(f, args) -> results` runs a call to
    completion; `consume_fuel(n)` charges fuel."""

    pc: int

    def reg(self, r: int) -> Any: ...
    def set_reg(self, r: int, v: Any) -> None: ...
    def v128(self, r: int) -> int: ...
    def set_v128(self, r: int, v: int) -> None: ...
    def pool(self, i: int) -> int: ...
    def branch(self, offset: int) -> None: ...
    def finish(self) -> None: ...
    def trap(self, message: str) -> None: ...
    def memory(self, i: int) -> Any: ...
    def data(self, i: int) -> Any: ...
    def table(self, i: int) -> Any: ...
    def elem(self, i: int) -> Any: ...
    def global_(self, i: int) -> Any: ...
    def function(self, i: int) -> Any: ...
    def sig(self, type_index: int) -> FuncType: ...
    def call_function(self, f: Any, args: list) -> list: ...
    def consume_fuel(self, n: int) -> None: ...


# --- pure computations (ir.numerics) -----------------------------------------------------
# An input is (operand name, how to read it): "x32"/"x64" (low bits of a slot), "v" (a v128
# register), "imm" (the immediate itself: lane, shuffle mask, or a bit pattern already in
# range), "pool" (a constant pool entry), "ref" (the slot as is: references).
def _reader(how: str) -> Callable[[Any, Any], Any]:
    if how == "x32":
        return lambda m, v: m.reg(v) & MASK32
    if how == "x64":
        return lambda m, v: m.reg(v) & MASK64
    if how == "v":
        return lambda m, v: m.v128(v)
    if how == "pool":
        return lambda m, v: m.pool(v)
    if how == "imm":
        return lambda m, v: v
    raise ValueError(how)


def reg_read_kind(t: ValType) -> str:
    """How a numeric operand of type `t` is read from its register."""
    return "v" if t == ValType.V128 else f"x{BITS[t]}"


def compute(fn: Callable, inputs: list[tuple[str, str]], form: str,
            out: tuple[str, str] | None = None) -> Sem:
    """The semantics of a pure computation `fn` over `inputs`.

    form "value": write the result to `out` = (operand name, "x"|"v");
    form "branch": branch by operand `off` when the result is nonzero;
    form "select": `dst` = `a` if the result is nonzero else `b` (64-bit slots)."""
    readers = [(name, _reader(how)) for name, how in inputs]
    if form == "value":
        dst, cls = out
        if cls == "v":
            def sem(m, o):
                m.set_v128(o[dst], fn(*[r(m, o[n]) for n, r in readers]))
        else:
            def sem(m, o):
                m.set_reg(o[dst], fn(*[r(m, o[n]) for n, r in readers]))
    elif form == "branch":
        def sem(m, o):
            if fn(*[r(m, o[n]) for n, r in readers]):
                m.branch(o["off"])
    elif form == "select":
        def sem(m, o):
            pick = o["a"] if fn(*[r(m, o[n]) for n, r in readers]) else o["b"]
            m.set_reg(o["dst"], m.reg(pick))
    else:
        raise ValueError(form)
    return sem


def with_fixed(sem: Sem, **fixed) -> Sem:
    """A variant whose missing operands are constants (e.g. memory 0)."""
    return lambda m, o: sem(m, {**o, **fixed})


def via_pool(sem: Sem, field: str) -> Sem:
    """A variant that takes operand `field` from the constant pool entry named by `pool`."""
    return lambda m, o: sem(m, {**o, field: m.pool(o["pool"])})


# --- moves and constants -----------------------------------------------------------------
def sem_mov(m, o):
    m.set_reg(o["dst"], m.reg(o["src"]))


def sem_mov128(m, o):
    m.set_v128(o["dst"], m.v128(o["src"]))


def sem_const(m, o):
    m.set_reg(o["dst"], o["imm"])


def sem_const128(m, o):
    m.set_v128(o["dst"], o["imm"])


def sem_select(m, o):
    m.set_reg(o["dst"], m.reg(o["a"] if m.reg(o["cond"]) & MASK32 else o["b"]))


def sem_select128(m, o):
    m.set_v128(o["dst"], m.v128(o["a"] if m.reg(o["cond"]) & MASK32 else o["b"]))


# --- memory --------------------------------------------------------------------------------
def memory_access(kind: str, nbytes: int, fn: Callable | None, vtype: ValType) -> Sem:
    """Semantics of a load/store touching `nbytes` at `addr` + `offset` of memory `mem`.

    kind "load": dst = fn(bytes as int) (or the bytes themselves for full-width loads);
    "store": write fn(value) (or the value's low bytes); "load_lane": dst = fn(src, bytes,
    lane); "store_lane": write fn(src, lane). The effective address is the u32 address
    plus the u32 offset, as a 33-bit sum: out of range traps."""
    bits = BITS[vtype]
    put_v = vtype == ValType.V128
    mask = (1 << bits) - 1

    def ea(m, o):
        return (m.reg(o["addr"]) & MASK32) + o["offset"]

    def read(m, o):
        return int.from_bytes(m.memory(o["mem"]).read(ea(m, o), nbytes), "little")

    def write(m, o, raw):
        m.memory(o["mem"]).write(ea(m, o), (raw & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"))

    def value(m, o):
        return m.v128(o["src"]) if put_v else m.reg(o["src"]) & mask

    if kind == "load":
        def sem(m, o):
            raw = read(m, o)
            v = fn(raw) if fn else raw
            (m.set_v128 if put_v else m.set_reg)(o["dst"], v)
    elif kind == "store":
        def sem(m, o):
            v = value(m, o)
            write(m, o, fn(v) if fn else v)
    elif kind == "load_lane":
        def sem(m, o):
            raw = read(m, o)
            m.set_v128(o["dst"], fn(m.v128(o["src"]), raw, o["lane"]))
    elif kind == "store_lane":
        def sem(m, o):
            write(m, o, fn(m.v128(o["src"]), o["lane"]))
    else:
        raise ValueError(kind)
    return sem


def sem_memory_size(m, o):
    m.set_reg(o["dst"], m.memory(o["mem"]).pages)


def sem_memory_grow(m, o):
    m.set_reg(o["dst"], m.memory(o["mem"]).grow(m.reg(o["delta"]) & MASK32) & MASK32)


def sem_memory_copy(m, o):
    n = m.reg(o["n"]) & MASK32
    m.memory(o["dst_mem"]).copy(m.reg(o["d"]) & MASK32, m.memory(o["src_mem"]),
                                m.reg(o["s"]) & MASK32, n)


def sem_memory_fill(m, o):
    m.memory(o["mem"]).fill(m.reg(o["d"]) & MASK32, m.reg(o["val"]) & 0xFF,
                            m.reg(o["n"]) & MASK32)


def sem_memory_init(m, o):
    m.memory(o["mem"]).init(m.reg(o["d"]) & MASK32, m.data(o["data"]),
                            m.reg(o["s"]) & MASK32, m.reg(o["n"]) & MASK32)


def sem_data_drop(m, o):
    m.data(o["data"]).drop()


# --- globals, tables, references ---------------------------------------------------------------
def sem_global_get(m, o):
    m.set_reg(o["dst"], m.global_(o["global"]).value)


def sem_global_set(m, o):
    g = m.global_(o["global"])
    bits = BITS.get(g.type.valtype)
    v = m.reg(o["src"])
    g.value = v & ((1 << bits) - 1) if bits else v


def sem_global_get128(m, o):
    m.set_v128(o["dst"], m.global_(o["global"]).value)


def sem_global_set128(m, o):
    m.global_(o["global"]).value = m.v128(o["src"])


def sem_table_get(m, o):
    m.set_reg(o["dst"], m.table(o["table"]).get(m.reg(o["i"]) & MASK32))


def sem_table_set(m, o):
    m.table(o["table"]).set(m.reg(o["i"]) & MASK32, m.reg(o["val"]))


def sem_table_size(m, o):
    m.set_reg(o["dst"], len(m.table(o["table"])))


def sem_table_grow(m, o):
    old = m.table(o["table"]).grow(m.reg(o["delta"]) & MASK32, m.reg(o["init"]))
    m.set_reg(o["dst"], old & MASK32)


def sem_table_fill(m, o):
    m.table(o["table"]).fill(m.reg(o["i"]) & MASK32, m.reg(o["val"]), m.reg(o["n"]) & MASK32)


def sem_table_copy(m, o):
    m.table(o["dst_table"]).copy(m.reg(o["d"]) & MASK32, m.table(o["src_table"]),
                                 m.reg(o["s"]) & MASK32, m.reg(o["n"]) & MASK32)


def sem_table_init(m, o):
    m.table(o["table"]).init(m.reg(o["d"]) & MASK32, m.elem(o["elem"]),
                             m.reg(o["s"]) & MASK32, m.reg(o["n"]) & MASK32)


def sem_elem_drop(m, o):
    m.elem(o["elem"]).drop()


def sem_ref_null(m, o):
    m.set_reg(o["dst"], None)


def sem_ref_is_null(m, o):
    m.set_reg(o["dst"], int(m.reg(o["src"]) is None))


def sem_ref_func(m, o):
    m.set_reg(o["dst"], m.function(o["func"]))


# --- control -------------------------------------------------------------------------------
def read_values(m, base: int, types) -> list:
    """Values laid out from slot `base` by the calling convention (v128: two slots)."""
    out = []
    for t in types:
        if t == ValType.V128:
            out.append(m.v128(base))
            base += 2
        else:
            out.append(m.reg(base))
            base += 1
    return out


def write_values(m, base: int, types, values) -> None:
    for t, v in zip(types, values):
        if t == ValType.V128:
            m.set_v128(base, v)
            base += 2
        else:
            m.set_reg(base, v)
            base += 1


def sem_jump(m, o):
    m.branch(o["off"])


def sem_br_if(m, o):
    if m.reg(o["cond"]) & MASK32:
        m.branch(o["off"])


def sem_br_if_not(m, o):
    if not m.reg(o["cond"]) & MASK32:
        m.branch(o["off"])


def sem_br_table(m, o):
    targets = o["targets"]
    i = m.reg(o["index"]) & MASK32
    m.branch(targets[min(i, len(targets) - 1)])


def _move_to_bottom(m, slots) -> None:
    # A parallel move: every source is read before any slot is written.
    values = [m.reg(s) for s in slots]
    for i, v in enumerate(values):
        m.set_reg(i, v)


def sem_return(m, o):
    _move_to_bottom(m, o["results"])
    m.finish()


def _call(m, f, base: int) -> None:
    ty = f.type
    results = m.call_function(f, read_values(m, base, ty.params))
    write_values(m, base, ty.results, results)


def _indirect_target(m, o):
    table = m.table(o["table"])
    i = m.reg(o["index"]) & MASK32
    if i >= len(table):
        m.trap("undefined element")
    f = table.elements[i]
    if f is None:
        m.trap("uninitialized element")
    if f.type != m.sig(o["type"]):
        m.trap("indirect call type mismatch")
    return f


def sem_call(m, o):
    _call(m, m.function(o["func"]), o["frame"])


def sem_call_indirect(m, o):
    _call(m, _indirect_target(m, o), o["frame"])


def _tail_call(m, f, args_slots) -> None:
    # Frame reuse: the arguments move to slots 0.. of this frame, the callee runs there and
    # its results (in slots 0..) are this frame's results.
    _move_to_bottom(m, args_slots)
    _call(m, f, 0)
    m.finish()


def sem_return_call(m, o):
    _tail_call(m, m.function(o["func"]), o["args"])


def sem_return_call_indirect(m, o):
    _tail_call(m, _indirect_target(m, o), o["args"])


def sem_unreachable(m, o):
    m.trap("unreachable")


def sem_fuel(m, o):
    m.consume_fuel(o["units"])
