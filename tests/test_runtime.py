"""The runtime (deadeye.interp): memories, tables, globals, segments, instantiation, the
call stack, fuel and host calls — on hand-built decoded modules, with a test-only
executor that runs Python bodies looked up by function name."""

from __future__ import annotations

from array import array

import pytest

from deadeye.frontend.module import (
    ConstExpr,
    DataSegment,
    ElemSegment,
    Export,
    Global,
    GlobalType,
    Import,
    Instr,
    Limits,
    MemoryType,
    Module,
    Names,
    TableType,
)
from deadeye.interp.instantiate import eval_const, instantiate
from deadeye.interp.runtime import (
    PAGE_SIZE,
    DataInstance,
    ElemInstance,
    GlobalInstance,
    HostFunction,
    MemoryInstance,
    Store,
    TableInstance,
    WasmFunction,
    check_value,
)
from deadeye.ir.errors import ExitTrap, LinkError, Trap, ValidationError, WasmError
from deadeye.ir.types import FuncType, ValType

I32, I64, F32, F64, FUNCREF, EXTERNREF = (
    ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.FUNCREF, ValType.EXTERNREF)
V_V = FuncType((), ())
I_I = FuncType((I32,), (I32,))


# -- helpers --------------------------------------------------------------------------


def const(op: str, value, offset: int = 0) -> ConstExpr:
    return ConstExpr((Instr(op, (value,), offset),), offset)


def expr(*instrs: tuple) -> ConstExpr:
    return ConstExpr(tuple(Instr(op, imm, i) for i, (op, imm) in enumerate(instrs)), 0)


def build(*, data: bytes = b"", types=(), imports=(), funcs=(), names=None, **kw) -> Module:
    """A decoded module by hand; `funcs` lists defined functions' type indices."""
    imports = list(imports)
    m = Module(
        data=data,
        types=list(types),
        imports=imports,
        func_types=array("L", funcs),
        body_start=array("L", [0] * len(funcs)),
        body_end=array("L", [0] * len(funcs)),
        names=Names(funcs=dict(names or {})),
        **kw,
    )
    m.num_imported_funcs = sum(i.kind == "func" for i in imports)
    m.num_imported_tables = sum(i.kind == "table" for i in imports)
    m.num_imported_memories = sum(i.kind == "memory" for i in imports)
    m.num_imported_globals = sum(i.kind == "global" for i in imports)
    return m


class ScriptExecutor:
    """Test-only executor: the body of a wasm function is the Python callable registered
    under its name, `body(store, frame, args) -> results`. It keeps the frame protocol
    real executors follow (push, set offset before trapping, pop on return)."""

    def __init__(self, bodies: dict):
        self.bodies = bodies
        self.calls: list[str] = []

    def call(self, store, func, args):
        frame = store.push_frame(func)
        self.calls.append(func.name)
        results = self.bodies[func.name](store, frame, args)
        store.pop_frame()
        return results


def mem(min_pages: int, max_pages: int | None = None, **kw) -> MemoryInstance:
    return MemoryInstance(MemoryType(Limits(min_pages, max_pages)), **kw)


def table(n: int, max_n: int | None = None, elem=FUNCREF) -> TableInstance:
    return TableInstance(TableType(elem, Limits(n, max_n)))


# -- memories ---------------------------------------------------------------------------


def test_memory_grow_honours_declared_and_store_maximum():
    m = mem(1, 3)
    assert len(m) == PAGE_SIZE and m.pages == 1
    assert m.grow(0) == 1
    assert m.grow(2) == 1 and m.pages == 3
    assert m.grow(1) == -1 and m.pages == 3
    unbounded = mem(0, store_max_pages=2)
    assert unbounded.grow(3) == -1
    assert unbounded.grow(2) == 0 and len(unbounded) == 2 * PAGE_SIZE
    assert mem(0).grow(65537) == -1  # past 4 GiB whatever the store allows
    with pytest.raises(WasmError):
        mem(3, store_max_pages=2)


def test_memory_grow_with_live_view_moves_buffer_and_keeps_contents():
    m = mem(1)
    old_view = m.view()
    old_view[10] = 7
    assert m.grow(1) == 1  # must not fail with BufferError
    assert len(m) == 2 * PAGE_SIZE
    assert len(old_view) == PAGE_SIZE  # the old view keeps the old buffer
    new_view = m.view()
    assert new_view[10] == 7 and new_view[PAGE_SIZE + 5] == 0
    new_view[PAGE_SIZE + 5] = 9
    assert m.read(PAGE_SIZE + 5, 1) == b"\x09"
    old_view.release()
    new_view.release()
    assert m.grow(1) == 2  # no views: extends in place
    assert m.read(10, 1) == b"\x07"


def test_memory_view_shares_without_copy():
    m = mem(1)
    arr = memoryview(m.view())
    arr[100:104] = bytes([1, 2, 3, 4])
    assert m.read(100, 4) == bytes([1, 2, 3, 4])
    m.write(200, b"\xaa")
    assert arr[200] == 0xAA


def test_memory_bulk_operations_and_bounds():
    m = mem(1)
    m.write(0, b"abcdef")
    m.copy(2, m, 0, 4)  # overlapping, forward
    assert m.read(0, 6) == b"ababcd"
    m.copy(0, m, 2, 4)  # overlapping, backward
    assert m.read(0, 6) == b"abcdcd"
    m.fill(1, 0x1FF, 3)  # the value is taken modulo 256
    assert m.read(0, 5) == b"a\xff\xff\xffc"
    seg = DataInstance(b"xyz")
    m.init(10, seg, 1, 2)
    assert m.read(10, 2) == b"yz"
    for bad in (
        lambda: m.read(PAGE_SIZE - 1, 2),
        lambda: m.write(PAGE_SIZE, b"a"),
        lambda: m.fill(PAGE_SIZE - 2, 0, 3),
        lambda: m.copy(0, m, PAGE_SIZE, 1),
        lambda: m.init(0, seg, 2, 2),
        lambda: m.init(PAGE_SIZE, seg, 0, 1),
    ):
        with pytest.raises(Trap, match="out of bounds memory access"):
            bad()
    # Zero-length accesses at the very end are in bounds.
    m.fill(PAGE_SIZE, 0, 0)
    m.init(PAGE_SIZE, seg, 3, 0)
    seg.drop()
    assert len(seg) == 0
    with pytest.raises(Trap):
        m.init(0, seg, 0, 1)


# -- tables, globals, segments ------------------------------------------------------------


def test_table_operations():
    t = table(2, 4)
    assert t.elements == [None, None]
    assert t.grow(1, "x") == 2 and t.elements == [None, None, "x"]
    assert t.grow(2) == -1 and len(t) == 3
    t.set(0, "a")
    assert t.get(0) == "a"
    with pytest.raises(Trap, match="out of bounds table access"):
        t.get(3)
    with pytest.raises(Trap, match="out of bounds table access"):
        t.set(3, None)
    t.fill(1, "f", 2)
    assert t.elements == ["a", "f", "f"]
    with pytest.raises(Trap):
        t.fill(2, None, 2)
    t.copy(1, t, 0, 2)  # overlapping
    assert t.elements == ["a", "a", "f"]
    seg = ElemInstance(FUNCREF, ["p", "q"])
    t.init(1, seg, 0, 2)
    assert t.elements == ["a", "p", "q"]
    with pytest.raises(Trap):
        t.init(2, seg, 0, 2)
    seg.drop()
    assert len(seg) == 0
    t.init(3, seg, 0, 0)  # empty at the end: fine
    other = table(1)
    with pytest.raises(Trap):
        other.copy(0, t, 2, 2)
    assert table(0).grow(2**32) == -1


def test_globals_and_value_checks():
    g = GlobalInstance(GlobalType(I32, True), 5)
    g.set(2**32 - 1)
    assert g.value == 2**32 - 1
    with pytest.raises(WasmError):
        g.set(2**32)
    with pytest.raises(WasmError):
        GlobalInstance(GlobalType(I64, False), 1).set(2)
    with pytest.raises(WasmError):
        GlobalInstance(GlobalType(F32, False), -1)
    assert check_value(F64, 2**64 - 1) and not check_value(F64, 2**64)
    assert not check_value(I32, True) and not check_value(I32, 1.0)
    assert check_value(FUNCREF, None) and not check_value(FUNCREF, "x")
    assert check_value(EXTERNREF, object())


# -- instantiation ---------------------------------------------------------------------------


def test_globals_see_imported_and_earlier_globals_with_wrapping_arithmetic():
    m = build(
        imports=[Import("env", "g", "global", GlobalType(I32, False))],
        globals=[
            Global(GlobalType(I32, False), expr(("global.get", (0,)), ("i32.const", (5,)),
                                                ("i32.sub", ()))),
            Global(GlobalType(I32, True), expr(("global.get", (1,)), ("global.get", (0,)),
                                               ("i32.mul", ()))),
            Global(GlobalType(I64, False), expr(("i64.const", (2**63,)), ("i64.const", (2**63,)),
                                                ("i64.add", ()))),
            Global(GlobalType(F32, False), const("f32.const", 0x7FC00001)),
        ],
        exports=[Export("a", "global", 1), Export("b", "global", 2)],
    )
    store = Store()
    inst = instantiate(store, m, [GlobalInstance(GlobalType(I32, False), 3)])
    assert [g.value for g in inst.globals] == [3, 2**32 - 2, (3 * (2**32 - 2)) % 2**32, 0, 0x7FC00001]
    assert inst.exports["a"] is inst.globals[1]
    assert [name for name, _ in inst.export_list] == ["a", "b"]
    assert inst in store.instances


def test_const_expr_rejects_non_constant_instructions():
    inst = instantiate(Store(), build(), [])
    with pytest.raises(ValidationError, match="constant expression required"):
        eval_const(inst, expr(("i32.const", (1,)), ("i32.eqz", ())))
    with pytest.raises(ValidationError):
        eval_const(inst, expr(("global.get", (9,))))
    with pytest.raises(ValidationError):
        eval_const(inst, expr(("i32.const", (1,)), ("i32.const", (1,))))


@pytest.mark.parametrize(
    "imp, ext, message",
    [
        (Import("m", "f", "func", 0), HostFunction(FuncType((I64,), (I32,)), None),
         "expected func of type"),
        (Import("m", "f", "func", 0), GlobalInstance(GlobalType(I32, False), 0), "expected func"),
        (Import("m", "t", "table", TableType(FUNCREF, Limits(2))), table(1), "table limits"),
        (Import("m", "t", "table", TableType(FUNCREF, Limits(1, 5))), table(1), "table limits"),
        (Import("m", "t", "table", TableType(FUNCREF, Limits(1, 5))), table(1, 6), "table limits"),
        (Import("m", "t", "table", TableType(FUNCREF, Limits(1))), table(1, elem=EXTERNREF),
         "table of funcref"),
        (Import("m", "mem", "memory", MemoryType(Limits(2))), mem(1), "memory limits"),
        (Import("m", "mem", "memory", MemoryType(Limits(0, 1))), mem(0), "memory limits"),
        (Import("m", "mem", "memory", MemoryType(Limits(0, 1))), mem(0, 2), "memory limits"),
        (Import("m", "g", "global", GlobalType(I32, True)),
         GlobalInstance(GlobalType(I32, False), 0), "expected global mut i32"),
        (Import("m", "g", "global", GlobalType(I64, False)),
         GlobalInstance(GlobalType(I32, False), 0), "expected global i64"),
    ],
)
def test_import_mismatch_is_a_link_error(imp, ext, message):
    m = build(types=[I_I], imports=[imp])
    with pytest.raises(LinkError, match="incompatible import type") as info:
        instantiate(Store(), m, [ext])
    assert message in str(info.value) and f"`m::{imp.name}`" in str(info.value)


def test_import_matching_accepts_subtypes():
    grown = mem(1, 4)
    grown.grow(1)  # the current size counts, not the declared minimum
    f = HostFunction(I_I, lambda s, a: a)
    m = build(
        types=[I_I],
        imports=[
            Import("m", "f", "func", 0),
            Import("m", "t", "table", TableType(FUNCREF, Limits(2, 10))),
            Import("m", "mem", "memory", MemoryType(Limits(2, 5))),
            Import("m", "g", "global", GlobalType(I32, True)),
        ],
        exports=[Export("f", "func", 0), Export("mem", "memory", 0)],
    )
    g = GlobalInstance(GlobalType(I32, True), 1)
    inst = instantiate(Store(), m, [f, table(3, 8), grown, g])
    assert inst.funcs == [f] and inst.memories == [grown] and inst.globals == [g]
    assert inst.exports == {"f": f, "mem": grown}
    with pytest.raises(LinkError, match="2 imports, 1 were provided"):
        instantiate(Store(), build(imports=m.imports[:2], types=[I_I]), [f])


def _segments_module(imports, **kw):
    return build(data=b"\x00HELLOWORLD", types=[V_V], imports=imports, funcs=[0, 0],
                 names={0: "f0", 1: "f1"} if not imports else {}, **kw)


def test_segments_initialise_in_order_and_are_dropped():
    m = _segments_module(
        [],
        tables=[TableType(FUNCREF, Limits(4))],
        memories=[MemoryType(Limits(1))],
        globals=[Global(GlobalType(FUNCREF, False), const("ref.func", 1))],
        elems=[
            ElemSegment("active", FUNCREF, (const("ref.func", 0), const("ref.null", FUNCREF)),
                        0, const("i32.const", 1)),
            ElemSegment("passive", FUNCREF, (const("global.get", 0), const("ref.func", 0))),
            ElemSegment("declarative", FUNCREF, (const("ref.func", 1),)),
            ElemSegment("active", FUNCREF, (const("global.get", 0),), 0,
                        expr(("i32.const", (1,)), ("i32.const", (2,)), ("i32.add", ()))),
        ],
        datas=[
            DataSegment("active", 1, 6, 0, const("i32.const", 100)),
            DataSegment("passive", 6, 11),
            DataSegment("active", 6, 11, 0, const("i32.const", 103)),
        ],
    )
    inst = instantiate(Store(), m, [])
    f0, f1 = inst.funcs
    assert isinstance(f0, WasmFunction) and f0.name == "f0" and f0.index == 0 and f1.index == 1
    assert inst.tables[0].elements == [None, f0, None, f1]
    assert [len(e) for e in inst.elems] == [0, 2, 0, 0]
    assert inst.elems[1].elements == [f1, f0]
    assert bytes(inst.memories[0].data[100:108]) == b"HELWORLD"
    assert [d.data for d in inst.datas] == [b"", b"WORLD", b""]


@pytest.mark.parametrize("second_offset", [PAGE_SIZE - 2, PAGE_SIZE + 1, 2**32 - 1])
def test_failing_data_segment_leaves_earlier_writes_in_imported_memory(second_offset):
    memory = mem(1)
    m = _segments_module(
        [Import("env", "memory", "memory", MemoryType(Limits(1)))],
        datas=[
            DataSegment("active", 1, 6, 0, const("i32.const", 8)),
            DataSegment("active", 6, 11, 0, const("i32.const", second_offset)),
            DataSegment("active", 1, 3, 0, const("i32.const", 0)),
        ],
    )
    store = Store()
    with pytest.raises(Trap, match="out of bounds memory access"):
        instantiate(store, m, [memory])
    assert memory.read(8, 5) == b"HELLO"
    assert memory.read(0, 2) == b"\0\0"  # segments after the failing one: not applied
    assert memory.read(PAGE_SIZE - 2, 2) == b"\0\0"  # nothing partial from the failing one


def test_failing_elem_segment_keeps_earlier_ones_and_skips_data():
    shared = table(2)
    memory = mem(1)
    f = HostFunction(V_V, lambda s, a: [])
    m = build(
        data=b"\x00AB",
        types=[V_V],
        imports=[
            Import("env", "f", "func", 0),
            Import("env", "t", "table", TableType(FUNCREF, Limits(2))),
            Import("env", "m", "memory", MemoryType(Limits(1))),
        ],
        elems=[
            ElemSegment("active", FUNCREF, (const("ref.func", 0),), 0, const("i32.const", 1)),
            ElemSegment("active", FUNCREF, (const("ref.func", 0),) * 2, 0, const("i32.const", 1)),
        ],
        datas=[DataSegment("active", 1, 3, 0, const("i32.const", 0))],
    )
    with pytest.raises(Trap, match="out of bounds table access"):
        instantiate(Store(), m, [f, shared, memory])
    assert shared.elements == [None, f]
    assert memory.read(0, 2) == b"\0\0"


def test_start_function_runs_through_the_executor_after_segments():
    seen = []

    def start(store, frame, args):
        inst = frame.func.instance
        seen.append(inst.memories[0].read(0, 2))
        inst.globals[0].value = 42
        return []

    ex = ScriptExecutor({"start": start})
    m = build(
        data=b"\x00hi",
        types=[V_V],
        funcs=[0],
        names={0: "start"},
        memories=[MemoryType(Limits(1))],
        globals=[Global(GlobalType(I32, True), const("i32.const", 0))],
        datas=[DataSegment("active", 1, 3, 0, const("i32.const", 0))],
        start=0,
    )
    inst = instantiate(Store(ex), m, [])
    assert seen == [b"hi"] and inst.globals[0].value == 42 and ex.calls == ["start"]


def test_imported_host_start_function_needs_no_executor():
    calls = []
    host = HostFunction(V_V, lambda s, a: calls.append(a))
    m = build(types=[V_V], imports=[Import("env", "go", "func", 0)], start=0)
    instantiate(Store(), m, [host])
    assert calls == [[]]
    with pytest.raises(WasmError, match="no executor"):
        instantiate(Store(), build(types=[V_V], funcs=[0], start=0), [])


# -- calls, the call stack, traps ---------------------------------------------------------------


def _two_instances(bodies):
    """Instance A exports `a` (calls B's `b` through an import) and `a_inner`; B exports
    `b`."""
    ex = ScriptExecutor(bodies)
    store = Store(ex, max_call_depth=50)
    mb = build(types=[I_I], funcs=[0], names={0: "b"}, exports=[Export("b", "func", 0)])
    b_inst = instantiate(store, mb, [])
    ma = build(types=[I_I], imports=[Import("B", "b", "func", 0)], funcs=[0, 0],
               names={1: "a", 2: "a_inner"},
               exports=[Export("a", "func", 1), Export("a_inner", "func", 2)])
    a_inst = instantiate(store, ma, [b_inst.exports["b"]])
    return store, a_inst, b_inst


def test_side_stack_records_only_instance_crossings_and_backtrace():
    snapshots = []

    def a(store, frame, args):
        frame.offset = 0x10
        inner = frame.func.instance.funcs[2]
        return store.call(inner, args)

    def a_inner(store, frame, args):
        frame.offset = 0x20
        snapshots.append(("a_inner", len(store.frames), list(store.instance_stack)))
        return store.call(frame.func.instance.funcs[0], args)  # imported: B's b

    def b(store, frame, args):
        frame.offset = 0x30
        snapshots.append(("b", len(store.frames), list(store.instance_stack)))
        if args[0] == 0:
            raise store.trap("integer divide by zero")
        return [args[0] + 1]

    store, a_inst, b_inst = _two_instances({"a": a, "a_inner": a_inner, "b": b})
    assert store.call(a_inst.exports["a"], [5]) == [6]
    assert snapshots == [
        ("a_inner", 2, [(0, a_inst)]),
        ("b", 3, [(0, a_inst), (2, b_inst)]),
    ]
    assert store.frames == [] and store.instance_stack == []
    with pytest.raises(Trap) as info:
        store.call(a_inst.exports["a"], [0])
    assert info.value.message == "integer divide by zero"
    assert info.value.frames == [("b", 0, 0x30), ("a_inner", 2, 0x20), ("a", 1, 0x10)]
    assert str(info.value) == (
        "integer divide by zero\nwasm backtrace:\n"
        "  0: b (func 0) @ 0x30\n  1: a_inner (func 2) @ 0x20\n  2: a (func 1) @ 0x10")
    assert store.frames == [] and store.instance_stack == []


def test_trap_without_frames_gets_backtrace_at_store_boundary():
    def a(store, frame, args):
        frame.offset = 0x44
        assert frame.func.instance.store is store
        raise Trap("unreachable")

    store, a_inst, _ = _two_instances({"a": a})
    with pytest.raises(Trap) as info:
        store.call(a_inst.exports["a"], [1])
    assert info.value.frames == [("a", 1, 0x44)]


def test_call_depth_limit_traps_and_unwinds():
    def b(store, frame, args):
        return store.call(frame.func, args)  # unbounded recursion

    store, _, b_inst = _two_instances({"b": b})
    with pytest.raises(Trap, match="call stack exhausted") as info:
        store.call(b_inst.exports["b"], [1])
    assert len(info.value.frames) == 50
    assert store.frames == [] and store.instance_stack == []


def test_fuel():
    store = Store(ScriptExecutor({}))
    with pytest.raises(WasmError, match="fuel is not configured"):
        store.set_fuel(10)
    with pytest.raises(WasmError):
        store.get_fuel()
    store.consume_fuel(10**9)  # disabled: free

    def spin(store, frame, args):
        while True:
            store.consume_fuel(3)

    store = Store(ScriptExecutor({"b": spin}), consume_fuel=True)
    assert store.get_fuel() == 0
    store.set_fuel(10)
    b_inst = instantiate(store, build(types=[I_I], funcs=[0], names={0: "b"}), [])
    with pytest.raises(Trap, match="all fuel consumed") as info:
        store.call(b_inst.funcs[0], [0])
    assert info.value.frames == [("b", 0, 0)]
    assert store.get_fuel() == 0
    with pytest.raises(ValueError):
        store.set_fuel(-1)


def test_host_function_errors_become_traps():
    def boom(store, args):
        raise KeyError("nope")

    store = Store()
    with pytest.raises(Trap, match="host function `boom` raised KeyError") as info:
        store.call(HostFunction(V_V, boom, name="boom"), [])
    assert isinstance(info.value.__cause__, KeyError)

    def leave(store, args):
        raise ExitTrap(3)

    with pytest.raises(ExitTrap) as exit_info:
        store.call(HostFunction(V_V, leave), [])
    assert exit_info.value.code == 3
    with pytest.raises(Trap, match="returned 0 values, expected 1"):
        store.call(HostFunction(I_I, lambda s, a: []), [1])
    with pytest.raises(Trap, match="not a i32"):
        store.call(HostFunction(I_I, lambda s, a: [-1]), [1])
    with pytest.raises(WasmError, match="expects 1 arguments"):
        store.call(HostFunction(I_I, lambda s, a: a), [])
    with pytest.raises(WasmError, match="not a i32"):
        store.call(HostFunction(I_I, lambda s, a: a), [2**32])
    assert store.call(HostFunction(I_I, lambda s, a: [a[0] * 2]), [21]) == [42]


def test_host_called_from_wasm_sees_calling_instance():
    seen = []

    def host(store, args):
        seen.append(store.current_instance())
        return []

    ex = ScriptExecutor({"w": lambda store, frame, args: store.call(frame.func.instance.funcs[0], [])})
    store = Store(ex)
    m = build(types=[V_V], imports=[Import("env", "h", "func", 0)], funcs=[0], names={1: "w"})
    inst = instantiate(store, m, [HostFunction(V_V, host)])
    store.call(inst.funcs[1], [])
    store.call(inst.funcs[0], [])
    assert seen == [inst, None]


def test_host_data_accessor_checks_type():
    class Mine:
        pass

    store = Store(host_data=Mine())
    assert isinstance(store.host_data(Mine), Mine)
    with pytest.raises(TypeError, match="not str"):
        store.host_data(str)
    store.set_host_data("text")
    assert store.host_data(str) == "text"
    with pytest.raises(ValueError):
        Store(max_call_depth=0)


# -- bulk operations against a plain-list model (property-based) ---------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SMALL = st.integers(min_value=0, max_value=40)
_OPS = st.lists(
    st.tuples(st.sampled_from(["fill", "copy", "init", "grow"]), _SMALL, _SMALL, _SMALL),
    max_size=12,
)


def _model_step(model: list, seg: list, op: str, a: int, b: int, n: int, limit: int) -> str | int:
    """The spec's semantics on a list: the outcome ("trap", a grow result, or "ok")."""
    size = len(model)
    if op == "grow":
        if size + a > limit:
            return -1
        model.extend([0] * a)
        return size
    if op == "fill":
        if a + n > size:
            return "trap"
        model[a : a + n] = [b % 256] * n
    elif op == "copy":
        if a + n > size or b + n > size:
            return "trap"
        model[a : a + n] = model[b : b + n]
    else:
        if a + n > size or b + n > len(seg):
            return "trap"
        model[a : a + n] = seg[b : b + n]
    return "ok"


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_memory_and_table_bulk_ops_match_model(ops):
    # The memory model is the last 64 bytes of a one-page memory (so its end is the
    # memory's end); the table model is the whole table.
    seg_bytes = bytes(range(1, 21))
    memory = mem(1, 2)
    table_ = TableInstance(TableType(FUNCREF, Limits(8, 60)), 0)
    tab_model = [0] * 8
    memory.write(PAGE_SIZE - 64, bytes(range(100, 164)))
    mem_model = list(range(100, 164))
    data_seg = DataInstance(seg_bytes)
    elem_seg = ElemInstance(FUNCREF, list(seg_bytes))
    for op, a, b, n in ops:
        # Table: the element "values" are small ints standing for references.
        expect = _model_step(tab_model, list(seg_bytes), op, a, b, n, 60)
        try:
            if op == "grow":
                got = table_.grow(a, 0)
            elif op == "fill":
                table_.fill(a, b % 256, n)
                got = "ok"
            elif op == "copy":
                table_.copy(a, table_, b, n)
                got = "ok"
            else:
                table_.init(a, elem_seg, b, n)
                got = "ok"
        except Trap as e:
            assert e.message == "out of bounds table access"
            got = "trap"
        assert got == expect and table_.elements == tab_model
        if op == "grow":
            continue
        # Memory: the same operation on the first 64 bytes (sizes past 64 trap by offset).
        base = PAGE_SIZE - 64
        expect = _model_step(mem_model, list(seg_bytes), op, a, b, n, 0)
        try:
            if op == "fill":
                memory.fill(base + a, b, n)
            elif op == "copy":
                memory.copy(base + a, memory, base + b, n)
            else:
                memory.init(base + a, data_seg, b, n)
            got = "ok"
        except Trap as e:
            assert e.message == "out of bounds memory access"
            got = "trap"
        assert got == expect and list(memory.data[base:]) == mem_model
