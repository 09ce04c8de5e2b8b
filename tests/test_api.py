"""The public API (deadeye.api): wasmtime-py compatibility (the same scenario run against
the real wasmtime-py and `import deadeye as wasmtime`), value conversion at the boundary,
host functions, linking, memories, tables, globals, segment initialisation, traps.

Wasm code is run by a test-only executor ("script") whose function bodies are Python
callables looked up by the function's name; everything else needs no executor."""

from __future__ import annotations

import math
import struct

import pytest
import wasmtime as real_wasmtime

import deadeye
import deadeye as wasmtime  # the compatibility claim under test
from deadeye import api
from deadeye.ir.types import ValType as IRValType


class ScriptExecutor:
    """Runs a wasm function by calling the Python body registered under its name:
    `body(store, frame, args) -> results` (bit patterns)."""

    def __init__(self):
        self.bodies: dict = {}

    def call(self, store, func, args):
        frame = store.push_frame(func)
        results = self.bodies[func.name](store, frame, args)
        store.pop_frame()
        return results


@pytest.fixture
def script(monkeypatch):
    """Register the script executor as engine "script" (and as the default engine when
    no real one is built, so `wasmtime.Engine()` works in compatibility code)."""
    ex = ScriptExecutor()
    monkeypatch.setitem(api._EXECUTORS, "script", lambda config: ex)
    if "interp" not in api._EXECUTORS:
        monkeypatch.setitem(api._EXECUTORS, "interp", lambda config: ex)
    return ex


@pytest.fixture
def engine(script):
    return deadeye.Engine(deadeye.Config(engine="script"))


i32, i64, f32, f64 = (deadeye.ValType.i32(), deadeye.ValType.i64(), deadeye.ValType.f32(),
                      deadeye.ValType.f64())


# -- wasmtime-py compatibility -------------------------------------------------------------

COMPAT_WAT = """
(module
  (import "host" "double" (func $double (param i32) (result i32)))
  (export "double" (func $double))
  (table (export "tab") 2 funcref)
  (elem (i32.const 1) $double)
  (global (export "counter") (mut i64) (i64.const -5))
  (global (export "pi") f64 (f64.const 3.5))
  (memory (export "mem") 1 3)
  (data (i32.const 16) "deadeye"))
"""

PARTIAL_WAT = """
(module
  (import "env" "mem" (memory 1))
  (data (i32.const 8) "first")
  (data (i32.const 65534) "second")
  (data (i32.const 0) "third"))
"""


def compat_scenario(wt) -> dict:
    """Only calls both libraries provide; returns what can be observed."""
    out: dict = {}
    config = wt.Config()
    config.consume_fuel = True
    engine = wt.Engine(config)
    store = wt.Store(engine, "my data")
    out["data"] = store.data()
    store.set_fuel(1000)
    out["fuel"] = store.get_fuel()

    calls = []

    def double(x):
        calls.append(x)
        return x * 2

    ty = wt.FuncType([wt.ValType.i32()], [wt.ValType.i32()])
    linker = wt.Linker(engine)
    linker.define_func("host", "double", ty, double)
    try:
        linker.define_func("host", "double", ty, double)
    except wt.WasmtimeError:
        out["shadow"] = "rejected"
    linker.allow_shadowing = True
    linker.define_func("host", "double", ty, double)

    module = wt.Module(engine, COMPAT_WAT)
    out["imports"] = [(i.module, i.name) for i in module.imports]
    out["exports"] = [e.name for e in module.exports]
    out["import_is_functype"] = isinstance(module.imports[0].type, wt.FuncType)
    inst = linker.instantiate(store, module)
    ex = inst.exports(store)
    out["names"] = list(ex)
    out["kinds"] = [type(ex[n]).__name__ for n in ex]
    out["double"] = ex["double"](store, -21)
    out["double_wraps"] = ex["double"](store, 0x7FFFFFFF)  # host returns 2**32-2 -> -2
    out["calls"] = calls
    out["param_types"] = [str(t) for t in ex["double"].type(store).params]

    tab = ex["tab"]
    out["tab_size"] = tab.size(store)
    null = tab.get(store, 0)
    out["tab_null"] = null is None or (isinstance(null, wt.Val) and null.value is None)
    f = tab.get(store, 1)
    out["tab_func"] = isinstance(f, wt.Func) and f(store, 4)
    out["tab_grow"] = tab.grow(store, 1, f)
    out["tab_size2"] = tab.size(store)
    out["tab_new"] = tab.get(store, 2)(store, 5)
    out["tab_type"] = (str(tab.type(store).element), tab.type(store).limits.min)

    mem = ex["mem"]
    out["mem"] = (mem.size(store), mem.data_len(store), bytes(mem.read(store, 16, 23)))
    out["write"] = mem.write(store, b"xy", 1)
    out["read"] = bytes(mem.read(store, 0, 4))
    out["read_neg"] = bytes(mem.read(store, -2))
    try:
        mem.write(store, b"zz", 65535)
    except IndexError:
        out["write_oob"] = "IndexError"
    out["grow"] = mem.grow(store, 2)
    try:
        mem.grow(store, 1)
    except wt.WasmtimeError:
        out["grow_past_max"] = "rejected"
    out["mem_type"] = (mem.type(store).limits.min, mem.type(store).limits.max)

    counter = ex["counter"]
    out["counter"] = counter.value(store)
    counter.set_value(store, 7)
    out["counter2"] = counter.value(store)
    gty = counter.type(store)
    out["gtype"] = (str(gty.content), gty.mutable)
    out["pi"] = ex["pi"].value(store)
    try:
        ex["pi"].set_value(store, 1.0)
    except wt.WasmtimeError:
        out["immutable"] = "rejected"

    pair = wt.Func(store, wt.FuncType([wt.ValType.i64(), wt.ValType.f32()],
                                      [wt.ValType.i64(), wt.ValType.f32()]),
                   lambda a, b: (a - 1, b * 2))
    out["multi"] = pair(store, -(2**63) + 1, 0.1)
    out["none"] = wt.Func(store, wt.FuncType([], []), lambda: None)(store)
    out["val"] = (wt.Val.i32(5).value, wt.Val.i64(-1).value, wt.Val.f32(0.1).value,
                  wt.Val.f64(2.5).value, wt.Val.i32(5) == wt.Val.i32(5))

    own = wt.Memory(store, wt.MemoryType(wt.Limits(1, None)))
    g = wt.Global(store, wt.GlobalType(wt.ValType.i32(), True), wt.Val.i32(3))
    t = wt.Table(store, wt.TableType(wt.ValType.funcref(), wt.Limits(1, 4)), None)
    out["standalone"] = (own.size(store), g.value(store), t.size(store))
    linker.define(store, "env", "mem", own)
    try:
        wt.Linker(engine).instantiate(store, wt.Module(engine, PARTIAL_WAT))
    except wt.WasmtimeError:
        out["unknown_import"] = "rejected"
    try:
        linker.instantiate(store, wt.Module(engine, PARTIAL_WAT))
    except (wt.Trap, wt.WasmtimeError) as e:
        out["partial"] = "out of bounds memory access" in str(e)
    out["partial_first"] = bytes(own.read(store, 8, 13))
    out["partial_third"] = bytes(own.read(store, 0, 5))
    try:
        wt.Module(engine, b"\0asm\x02\0\0\0")
    except wt.WasmtimeError:
        out["bad_module"] = "rejected"

    reexport = wt.Module(engine, '(module (import "a" "f" (func (param i64 f32) (result i64 f32)))'
                                 ' (export "f" (func 0)) (export "g" (func 0)))')
    direct = wt.Instance(store, reexport, [pair]).exports(store)
    out["direct"] = (len(direct), direct["g"](store, 10, 1.5), direct.by_index[0](store, 1, 0.25))
    try:
        wt.Instance(store, reexport, [])
    except wt.WasmtimeError:
        out["missing_import"] = "rejected"
    try:
        wt.Instance(store, reexport, [own])
    except wt.WasmtimeError:
        out["wrong_kind"] = "rejected"
    return out


def test_same_behaviour_as_wasmtime_py(script):
    expected = compat_scenario(real_wasmtime)
    got = compat_scenario(wasmtime)
    assert got == expected
    # Spot-check the expectations themselves, so a shared mistake cannot pass.
    assert got["double"] == -42 and got["double_wraps"] == -2 and got["calls"] == [-21, 2**31 - 1, 4, 5]
    assert got["partial"] is True and got["partial_first"] == b"first"
    assert got["partial_third"] == b"\0" * 5
    assert got["direct"] == (2, [9, 3.0], [0, 0.5]) and got["wrong_kind"] == "rejected"
    assert got["multi"] == [-(2**63), struct.unpack("<f", struct.pack("<f", 0.1))[0] * 2]


# -- configuration and engines ------------------------------------------------------------------


def test_unregistered_engine_is_a_clear_value_error():
    with pytest.raises(ValueError, match="engine 'nope' is not available in this build"):
        deadeye.Engine(deadeye.Config(engine="nope"))


def test_config_checks_values():
    c = deadeye.Config(opt_level=1, dispatch="loop")
    with pytest.raises(ValueError):
        c.opt_level = 3
    with pytest.raises(ValueError):
        deadeye.Config(dispatch="switch")
    with pytest.raises(TypeError):
        c.consume_fuel = "yes"
    with pytest.raises(ValueError):
        c.max_call_depth = 0
    with pytest.raises(AttributeError):
        c.no_such_option = 1
    c.wasm_simd = True  # Wasm 2.0: always on
    with pytest.raises(ValueError):
        c.wasm_simd = False


def test_engine_keeps_its_own_config_and_store_uses_it(script):
    c = deadeye.Config(engine="script", max_call_depth=7)
    engine = deadeye.Engine(c)
    c.max_call_depth = 9
    assert engine.config.max_call_depth == 7 and engine.executor is script
    store = deadeye.Store(engine)
    assert store._rt.max_call_depth == 7 and store._rt.executor is script
    with pytest.raises(deadeye.WasmError, match="fuel is not configured"):
        store.set_fuel(1)


def test_feature_flags_reach_the_decoder(script):
    wat = "(module (memory 1) (memory 1))"
    deadeye.Module(deadeye.Engine(deadeye.Config(engine="script")), wat)
    off = deadeye.Engine(deadeye.Config(engine="script", wasm_multi_memory=False))
    with pytest.raises((deadeye.DecodeError, deadeye.ValidationError)):
        deadeye.Module(off, wat)


# -- values at the boundary ------------------------------------------------------------------------


def _echo(engine, types):
    store = deadeye.Store(engine)
    seen = []

    def host(*args):
        seen.append(args)
        return args if len(args) > 1 else args[0]

    return store, deadeye.Func(store, deadeye.FuncType(types, types), host), seen


@pytest.mark.parametrize(
    "ty, given, host_sees",
    [
        (i32, -1, -1), (i32, 2**32 - 1, -1), (i32, 2**31, -(2**31)), (i32, 5, 5),
        (i64, -(2**63), -(2**63)), (i64, 2**64 - 1, -1),
        (f32, 1.5, 1.5), (f32, 3, 3.0), (f64, -0.0, -0.0), (f64, math.inf, math.inf),
        (f32, deadeye.Val.f32(0.5), 0.5), (i64, deadeye.Val.i64(-3), -3),
    ],
)
def test_values_converted_at_boundary(engine, ty, given, host_sees):
    store, f, seen = _echo(engine, [ty])
    result = f(store, given)
    assert seen == [(host_sees,)] and result == host_sees
    assert math.copysign(1, result) == math.copysign(1, host_sees)


@pytest.mark.parametrize(
    "ty, bad, error",
    [
        (i32, 2**32, ValueError), (i32, -(2**31) - 1, ValueError), (i64, 2**64, ValueError),
        (i32, True, TypeError), (i32, 1.0, TypeError), (i32, "1", TypeError),
        (f64, "x", TypeError), (f32, False, TypeError), (f64, 10**400, ValueError),
        (i32, deadeye.Val.i64(1), TypeError),
    ],
)
def test_bad_arguments_rejected(engine, ty, bad, error):
    store, f, seen = _echo(engine, [ty])
    with pytest.raises(error):
        f(store, bad)
    assert seen == []


def test_arity_and_results(engine):
    store, f, _ = _echo(engine, [i32, f64])
    with pytest.raises(deadeye.WasmError, match="given 1, expected 2"):
        f(store, 1)
    assert f.call(store, 1, 2.5) == [1, 2.5]
    bad = deadeye.Func(store, deadeye.FuncType([], [i32]), lambda: 2**32)
    with pytest.raises(deadeye.Trap) as info:
        bad(store)
    assert isinstance(info.value.__cause__, ValueError)
    wrong_count = deadeye.Func(store, deadeye.FuncType([], [i32, i32]), lambda: 1)
    with pytest.raises(deadeye.Trap, match="tuple of 2 values"):
        wrong_count(store)
    with pytest.raises(deadeye.Trap, match="no results"):
        deadeye.Func(store, deadeye.FuncType([], []), lambda: 1)(store)


def test_call_bits_is_exact(engine):
    store = deadeye.Store(engine)
    ident = deadeye.Func(store, deadeye.FuncType([f32, i32], [f32, i32]), lambda a, b: (a, b))
    assert ident.call_bits(store, [0x3FC00000, 2**32 - 1]) == [0x3FC00000, 2**32 - 1]
    assert ident.call_bits(store, [0xFF800000, 0]) == [0xFF800000, 0]
    with pytest.raises(deadeye.WasmError):
        ident.call_bits(store, [-1, 0])


def test_nan_payload_kept_through_wasm_call_bits(engine, script):
    module = deadeye.Module(engine, '(module (func $nan (export "nan") (param f32) (result f32) local.get 0))')
    script.bodies["nan"] = lambda store, frame, args: args
    store = deadeye.Store(engine)
    f = deadeye.Instance(store, module, []).exports(store)["nan"]
    assert f.call_bits(store, [0x7FA00001]) == [0x7FA00001]
    assert math.isnan(f(store, math.nan))


def test_val():
    v = deadeye.Val.i32(2**32 - 1)
    assert v.value == -1 and v.type == deadeye.ValType.i32() and v.as_i32() == -1
    assert v.as_i64() is None
    assert deadeye.Val.f32(0.1).value == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert deadeye.Val.f32(1e300).value == math.inf
    assert deadeye.Val.ref_null(deadeye.ValType.externref()).value is None
    with pytest.raises(deadeye.WasmError):
        deadeye.Val.ref_null(deadeye.ValType.i32())
    with pytest.raises(ValueError):
        deadeye.Val.i32(2**32)
    assert deadeye.Val.v128(2**128 - 1).value == 2**128 - 1
    assert deadeye.Val.externref("x") == "x"


def test_types():
    assert deadeye.ValType.i32() == deadeye.ValType.i32() != deadeye.ValType.i64()
    assert [str(getattr(deadeye.ValType, n)()) for n in
            ("i32", "i64", "f32", "f64", "v128", "funcref", "externref")] == [
        "i32", "i64", "f32", "f64", "v128", "funcref", "externref"]
    assert isinstance(IRValType.F32, deadeye.ValType)
    ft = deadeye.FuncType([i32], [i64, f32])
    assert ft.params == (i32,) and ft.results == (i64, f32)
    assert isinstance(ft, deadeye.FuncType) and ft == deadeye.FuncType((i32,), (i64, f32))
    with pytest.raises(TypeError):
        deadeye.FuncType(["i32"], [])
    with pytest.raises(TypeError):
        deadeye.ValType()


# -- host functions ------------------------------------------------------------------------------


def test_host_exception_is_a_trap_with_cause_but_exit_passes(engine):
    store = deadeye.Store(engine)

    def fail():
        raise RuntimeError("broken")

    with pytest.raises(deadeye.Trap, match="broken") as info:
        deadeye.Func(store, deadeye.FuncType([], []), fail)(store)
    assert isinstance(info.value.__cause__, RuntimeError)

    def leave():
        raise deadeye.ExitTrap(7)

    with pytest.raises(deadeye.ExitTrap) as exit_info:
        deadeye.Func(store, deadeye.FuncType([], []), leave)(store)
    assert exit_info.value.code == 7


CALLER_WAT = """
(module $prog
  (import "env" "peek" (func $peek (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 4) "\\2a")
  (func $run (export "run") (param i32) (result i32) local.get 0 call $peek)
  (func $boom (export "boom") unreachable))
"""


def test_host_function_with_caller_reads_callers_memory(engine, script):
    store = deadeye.Store(engine, data={"k": 1})

    def peek(caller, addr):
        memory = caller.get("memory")
        assert caller.get("nothing") is None and caller.data() == {"k": 1}
        return memory.read(caller, addr, addr + 1)[0]

    linker = deadeye.Linker(engine)
    linker.define_func("env", "peek", deadeye.FuncType([i32], [i32]), peek, access_caller=True)
    module = deadeye.Module(engine, CALLER_WAT)

    def run(store_rt, frame, args):
        frame.offset = 0x99
        return store_rt.call(frame.func.instance.funcs[0], args)

    script.bodies["run"] = run
    inst = linker.instantiate(store, module)
    assert inst.exports(store)["run"](store, 4) == 42
    # Called directly from Python there is no calling instance.
    with pytest.raises(deadeye.Trap) as info:
        linker.get(store, "env", "peek")(store, 4)
    assert isinstance(info.value.__cause__, AttributeError)


def test_trap_backtrace_uses_names(engine, script):
    def boom(store_rt, frame, args):
        frame.offset = 0x3A
        raise store_rt.trap("unreachable")

    script.bodies["boom"] = boom
    store = deadeye.Store(engine)
    linker = deadeye.Linker(engine)
    linker.define_func("env", "peek", deadeye.FuncType([i32], [i32]), lambda a: a)
    inst = linker.instantiate(store, deadeye.Module(engine, CALLER_WAT))
    with pytest.raises(deadeye.Trap) as info:
        inst.exports(store)["boom"](store)
    assert info.value.frames == [("boom", 2, 0x3A)]
    assert str(info.value) == "unreachable\nwasm backtrace:\n  0: boom (func 2) @ 0x3a"


# -- linking ------------------------------------------------------------------------------------


def test_linker_errors(engine):
    store = deadeye.Store(engine)
    linker = deadeye.Linker(engine)
    module = deadeye.Module(engine, CALLER_WAT)
    with pytest.raises(deadeye.LinkError, match="unknown import: `env::peek`"):
        linker.instantiate(store, module)
    linker.define_func("env", "peek", deadeye.FuncType([i64], [i32]), lambda a: 0)
    with pytest.raises(deadeye.LinkError, match="incompatible import type for `env::peek`"):
        linker.instantiate(store, module)
    with pytest.raises(deadeye.LinkError, match="expected func, found memory"):
        deadeye.Instance(store, module, [deadeye.Memory(store, deadeye.MemoryType(deadeye.Limits(1)))])
    with pytest.raises(TypeError):
        deadeye.Instance(store, module, ["not an extern"])
    with pytest.raises(deadeye.WasmError):
        linker.get(store, "env", "missing")


def test_define_instance_reexports(engine):
    store = deadeye.Store(engine)
    first = deadeye.Instance(store, deadeye.Module(engine, COMPAT_WAT),
                             [deadeye.Func(store, deadeye.FuncType([i32], [i32]), lambda x: x + 100)])
    linker = deadeye.Linker(engine)
    linker.define_instance(store, "lib", first)
    user = deadeye.Module(engine, """(module
        (import "lib" "double" (func (param i32) (result i32)))
        (import "lib" "mem" (memory 1))
        (import "lib" "counter" (global (mut i64)))
        (import "lib" "tab" (table 2 funcref))
        (export "f" (func 0)) (export "m" (memory 0)))""")
    ex = linker.instantiate(store, user).exports(store)
    assert ex["f"](store, 1) == 101
    assert ex["m"] == first.exports(store)["mem"]
    assert ex[0] == ex["f"] and ex.by_index == (ex["f"], ex["m"]) and len(ex) == 2
    with pytest.raises(deadeye.LinkError, match="expected global i64"):
        linker2 = deadeye.Linker(engine)
        linker2.define_instance(store, "lib", first)
        linker2.instantiate(store, deadeye.Module(
            engine, '(module (import "lib" "counter" (global i64)))'))


def test_module_types(engine):
    module = deadeye.Module(engine, CALLER_WAT)
    (imp,) = module.imports
    assert (imp.module, imp.name, imp.type) == ("env", "peek", deadeye.FuncType([i32], [i32]))
    exports = {e.name: e.type for e in module.exports}
    assert exports["memory"].limits == deadeye.Limits(1, None)
    assert exports["run"] == deadeye.FuncType([i32], [i32])
    assert module.name == "prog"
    m2 = deadeye.Module(engine, COMPAT_WAT)
    types = {e.name: e.type for e in m2.exports}
    assert types["counter"].content == i64 and types["counter"].mutable
    assert types["tab"].element == deadeye.ValType.funcref()


def test_module_loading(engine, tmp_path):
    wasm = real_wasmtime.wat2wasm(CALLER_WAT)
    (tmp_path / "a.wasm").write_bytes(wasm)
    (tmp_path / "a.wat").write_text(CALLER_WAT)
    for name in ("a.wasm", "a.wat"):
        assert [e.name for e in deadeye.Module.from_file(engine, tmp_path / name).exports] == [
            "memory", "run", "boom"]
    with pytest.raises(deadeye.WasmError, match="cannot read"):
        deadeye.Module.from_file(engine, tmp_path / "missing.wasm")
    deadeye.Module.validate(engine, wasm)
    with pytest.raises(deadeye.DecodeError):
        deadeye.Module.validate(engine, b"\0asm\x01\0\0\0\x01")
    with pytest.raises(deadeye.ValidationError):
        deadeye.Module.validate(engine, real_wasmtime.wat2wasm(
            "(module (func (result i32) i64.const 1))"))
    with pytest.raises(deadeye.DecodeError):
        deadeye.Module(engine, b"\xff\xfe")
    with pytest.raises(deadeye.DecodeError):
        deadeye.Module(engine, "(module (func")
    assert deadeye.wat2wasm("(module)") == b"\0asm\x01\0\0\0"


# -- memories, tables, globals ---------------------------------------------------------------------


def test_memory_object(engine):
    store = deadeye.Store(engine)
    m = deadeye.Memory(store, deadeye.MemoryType(deadeye.Limits(1, 2)))
    view = m.buffer(store)
    arr = memoryview(view).cast("I")  # a typed view of the same bytes, as numpy would take
    arr[0] = 0xDEADBEEF  # no copy: visible through the memory
    assert bytes(m.read(store, 0, 4)) == (0xDEADBEEF).to_bytes(4, "little")
    assert m.grow(store, 1) == 1  # works with a live view
    assert m.size(store) == 2 and m.data_len(store) == 2 * 65536
    assert bytes(m.buffer(store)[:4]) == (0xDEADBEEF).to_bytes(4, "little")
    with pytest.raises(deadeye.WasmError):
        m.grow(store, 1)
    with pytest.raises(deadeye.WasmError):
        m.grow(store, -1)
    assert m.read(store, 10, 5) == bytearray()
    with pytest.raises(deadeye.WasmError):
        deadeye.Memory(store, deadeye.MemoryType(deadeye.Limits(3, 2)))
    small = deadeye.Store(deadeye.Engine(deadeye.Config(engine="script", max_memory_pages=2)))
    with pytest.raises(deadeye.WasmError):
        deadeye.Memory(small, deadeye.MemoryType(deadeye.Limits(3)))


def test_table_object(engine):
    store = deadeye.Store(engine)
    fn = deadeye.Func(store, deadeye.FuncType([], [i32]), lambda: 9)
    t = deadeye.Table(store, deadeye.TableType(deadeye.ValType.funcref(), deadeye.Limits(2, 3)), fn)
    assert t.get(store, 0) == fn and t.get(store, 0)(store) == 9 and t.get(store, 5) is None
    t.set(store, 1, None)
    assert t.get(store, 1) is None
    with pytest.raises(deadeye.WasmError):
        t.set(store, 2, None)
    with pytest.raises(TypeError):
        t.set(store, 0, "not a func")
    assert t.grow(store, 1, None) == 2
    with pytest.raises(deadeye.WasmError):
        t.grow(store, 1, None)
    ext = deadeye.Table(store, deadeye.TableType(deadeye.ValType.externref(), deadeye.Limits(1)), None)
    token = object()
    ext.set(store, 0, token)
    assert ext.get(store, 0) is token
    assert ext.type(store).element == deadeye.ValType.externref()


def test_global_object(engine):
    store = deadeye.Store(engine)
    g = deadeye.Global(store, deadeye.GlobalType(f32, True), 1.5)
    g.set_value(store, deadeye.Val.f32(2.5))
    assert g.value(store) == 2.5
    with pytest.raises(TypeError):
        g.set_value(store, "x")
    c = deadeye.Global(store, deadeye.GlobalType(i32, False), -1)
    assert c.value(store) == -1 and c._rt.value == 2**32 - 1
    with pytest.raises(deadeye.WasmError, match="immutable"):
        c.set_value(store, 1)


ELEM_WAT = """
(module
  (import "env" "t" (table 3 funcref))
  (import "env" "f" (func $f (result i32)))
  (import "env" "m" (memory 1))
  (elem (i32.const 0) $f)
  (elem (i32.const 2) $f $f)
  (data (i32.const 0) "never"))
"""


def test_partial_elem_initialisation_through_api(engine):
    store = deadeye.Store(engine)
    t = deadeye.Table(store, deadeye.TableType(deadeye.ValType.funcref(), deadeye.Limits(3)), None)
    f = deadeye.Func(store, deadeye.FuncType([], [i32]), lambda: 1)
    m = deadeye.Memory(store, deadeye.MemoryType(deadeye.Limits(1)))
    with pytest.raises(deadeye.Trap, match="out of bounds table access"):
        deadeye.Instance(store, deadeye.Module(engine, ELEM_WAT), [t, f, m])
    assert t.get(store, 0) == f and t.get(store, 2) is None
    assert bytes(m.read(store, 0, 5)) == b"\0" * 5


def test_fuel_through_store(script):
    engine = deadeye.Engine(deadeye.Config(engine="script", consume_fuel=True))
    store = deadeye.Store(engine)
    store.set_fuel(5)
    module = deadeye.Module(engine, '(module (func (export "spin")))')

    def spin(store_rt, frame, args):
        while True:
            store_rt.consume_fuel(2)

    script.bodies["spin"] = spin
    inst = deadeye.Instance(store, module, [])
    with pytest.raises(deadeye.Trap, match="all fuel consumed"):
        inst.exports(store)["spin"](store)
    assert store.get_fuel() == 0
    assert store.host_data(type(None)) is None


# -- the spec-runner backend -------------------------------------------------------------------

from deadeye import wast  # noqa: E402
from deadeye.wast_backend import ApiBackend, sync_engines  # noqa: E402


class RefusingExecutor:
    def call(self, store, func, args):
        raise deadeye.WasmError("this test executor runs no wasm code")


@pytest.fixture
def refusing_engine():
    api.register_executor("refuse", lambda config: RefusingExecutor())
    yield "refuse"
    api.register_executor("refuse", None)


def test_runner_engines_follow_the_executor_registry(refusing_engine):
    assert "refuse" in wast.ENGINES
    backend = wast.ENGINES["refuse"](None)
    assert isinstance(backend, ApiBackend)
    api.register_executor("refuse", None)
    assert "refuse" not in wast.ENGINES and "wasmtime" in wast.ENGINES
    api.register_executor("refuse", lambda config: RefusingExecutor())
    sync_engines()
    assert "refuse" in wast.ENGINES


@pytest.mark.parametrize("script", ["core/data.wast", "core/imports.wast", "core/elem.wast",
                                    "proposals/multi-memory/data.wast"])
def test_spec_instantiation_commands_pass_without_execution(refusing_engine, script):
    """Every command that needs no wasm execution (decode, validate, link, instantiate
    with segment initialisation) passes; the rest fail only on the executor's refusal."""
    import json
    import os

    spec = os.path.join(os.path.dirname(__file__), "spec")
    path = os.path.join(spec, script)
    result = wast.run_file(path, wast.ENGINES[refusing_engine])
    for failure in result.failures:
        assert failure["kind"] in ("assert_return", "assert_trap", "invoke"), failure
        assert "runs no wasm code" in failure["reason"], failure
    counts = json.load(open(os.path.join(spec, "counts.json")))[script]
    totals = result.to_json()
    for kind in ("assert_unlinkable", "assert_uninstantiable", "register"):
        assert totals[kind]["passed"] == counts[kind], kind
    assert totals["module"]["passed"] == counts["module_text"] + counts["module_binary"] + counts[
        "module_quote"]


def test_backend_protocol_values_are_exact(script):
    backend = ApiBackend("script", None)
    spectest = backend.spectest()
    assert backend.get(spectest, "global_f32") == (IRValType.F32, 0x4426A666)
    assert backend.get(spectest, "global_i64") == (IRValType.I64, 666)
    assert spectest["table"].size(backend.store) == 10
    host = {"echo": deadeye.Func(backend.store, deadeye.FuncType(
        [deadeye.ValType.externref(), f32], [deadeye.ValType.externref(), f32]), lambda r, x: (r, x))}
    handle = backend.compile(real_wasmtime.wat2wasm("""(module
        (import "host" "echo" (func (param externref f32) (result externref f32)))
        (import "spectest" "global_i32" (global $g i32))
        (global (export "g") i32 (global.get $g))
        (export "echo" (func 0)))"""))
    inst = backend.instantiate(handle, {"spectest": spectest, "host": host})
    ref = wast.host_ref(3)
    out = backend.invoke(inst, "echo", [(IRValType.EXTERNREF, ref), (IRValType.F32, 0x7F800001)])
    assert out[0] == (IRValType.EXTERNREF, ref) and out[0][1] is ref
    assert out[1][0] == IRValType.F32 and out[1][1] & 0x7F800000 == 0x7F800000
    assert backend.get(inst, "g") == (IRValType.I32, 666)
    with pytest.raises(deadeye.LinkError, match="unknown import"):
        backend.instantiate(handle, {"spectest": spectest})
    with pytest.raises(deadeye.LinkError):
        backend.invoke(inst, "g", [])


def test_lazy_factories_import_on_first_use(monkeypatch):
    monkeypatch.setitem(api._EXECUTORS, "lazy-ok", api._lazy("weakref", "ref"))
    monkeypatch.setitem(api._EXECUTORS, "lazy-missing", api._lazy("deadeye.no_such_module", "X"))
    engine = deadeye.Engine(deadeye.Config(engine="lazy-ok"))
    assert engine.executor() is engine.config  # factory(config) was called with it
    with pytest.raises(ValueError, match="'lazy-missing' is not available in this build"):
        deadeye.Engine(deadeye.Config(engine="lazy-missing"))
