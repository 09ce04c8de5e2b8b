"""The native engine's own handling of state that used to need Python: full wasm backtraces
from native frames, interrupts of native loops, globals and call_indirect's table lookups.
The interpreter engine is the oracle (same API, independent executor)."""


import pytest

import deadeye
from deadeye.ir.errors import Trap
from interrupt_testlib import run_interrupted

MODES = ["direct", "indirect", "loop"]


def _instance(wat, engine="native", dispatch="direct", imports=(), store=None, eng=None):
    eng = eng or deadeye.Engine(deadeye.Config(engine=engine, dispatch=dispatch))
    store = store or deadeye.Store(eng)
    inst = deadeye.Instance(store, deadeye.Module(eng, deadeye.wat2wasm(wat)), list(imports))
    return eng, store, inst.exports(store)


def _both(wat, dispatch, imports=lambda store: ()):
    """(store, exports) on native and on the interpreter."""
    out = []
    for engine in ("native", "interp"):
        eng = deadeye.Engine(deadeye.Config(engine=engine, dispatch=dispatch))
        store = deadeye.Store(eng)
        _, _, ex = _instance(wat, store=store, eng=eng, imports=imports(store))
        out.append((store, ex))
    return out


def _trap(f, *args):
    with pytest.raises(Trap) as ei:
        f(*args)
    return ei.value


# -- backtraces ------------------------------------------------------------------------------
DEEP = """(module
  (type $t (func (param i32) (result i32)))
  (import "host" "cb" (func $cb (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $c $viahost)
  (func $c (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
  (func $b (param i32) (result i32)
    (i32.add (call_indirect (type $t) (local.get 0) (i32.const 0)) (i32.const 1)))
  (func $a (export "a") (param i32) (result i32) (i32.add (i32.const 2) (call $b (local.get 0))))
  (func $viahost (param i32) (result i32) (call $cb (local.get 0)))
  (func (export "outer") (param i32) (result i32)
    (i32.mul (call_indirect (type $t) (local.get 0) (i32.const 1)) (i32.const 3))))
"""


@pytest.mark.parametrize("dispatch", MODES)
def test_trap_backtrace_has_every_native_frame(dispatch):
    runs = []
    for store, ex in _both(DEEP, dispatch, lambda store: [deadeye.Func(
            store, deadeye.FuncType([deadeye.ValType.i32()], [deadeye.ValType.i32()]),
            lambda x: ex_ref[0]["a"](store_ref[0], x))]):
        store_ref, ex_ref = [store], [ex]
        assert ex["a"](store, 1) == 4
        deep = _trap(ex["a"], store, 0)
        # wasm -> host -> wasm: both native activations' frames, in order
        nested = _trap(ex["outer"], store, 0)
        runs.append((deep, nested))
    (nd, nn), (idp, inn) = runs
    assert nd.message == idp.message == "integer divide by zero"
    assert [f[0] for f in nd.frames] == ["c", "b", "a"]
    assert nd.frames == idp.frames  # names, indices and wasm offsets
    assert [f[0] for f in nn.frames] == ["c", "b", "a", "viahost", "outer"]
    assert nn.frames == inn.frames


# -- interrupts ------------------------------------------------------------------------------
LOOP = """(module
  (func $spin (export "spin") (loop $l (br $l)))
  (func (export "spin_calls") (loop $l (call $once) (br $l)))
  (func $once)
  (func (export "rec") (return_call 3))
  (func (export "spin_table") (local i32)
    (loop $l (local.set 0 (i32.sub (i32.const 0) (local.get 0)))
      (br_table $l $l (local.get 0))))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
"""


@pytest.mark.parametrize("dispatch", MODES)
@pytest.mark.parametrize("export", ["spin", "spin_calls", "rec", "spin_table"])
def test_interrupt_stops_native_loop(dispatch, export):
    eng, store, ex = _instance(LOOP, dispatch=dispatch)
    t = run_interrupted(store, ex[export], (eng if export == "spin" else store).interrupt, 0.1)
    assert t.message == "interrupted" and t.frames and t.frames[0][0]
    assert ex["add"](store, 2, 3) == 5  # the interrupt was consumed


def test_pending_interrupt_stops_next_native_call():
    _, store, ex = _instance(LOOP)
    store.interrupt()
    with pytest.raises(Trap, match="interrupted"):
        ex["spin"](store)
    assert ex["add"](store, 1, 1) == 2


# -- globals ---------------------------------------------------------------------------------
GLOBALS = """(module
  (import "env" "shared" (global $sh (mut i32)))
  (global $i (export "i") (mut i32) (i32.const -1))
  (global $l (export "l") (mut i64) (i64.const 0x7fffffffffffffff))
  (global $f (export "f") (mut f32) (f32.const 1.5))
  (global $d (export "d") (mut f64) (f64.const -2.25))
  (global $v (mut v128) (v128.const i64x2 1 -1))
  (global $r (mut externref) (ref.null extern))
  (global $k i32 (i32.const 7))
  (func (export "step") (param i64) (result i64)
    (global.set $i (i32.add (global.get $i) (i32.wrap_i64 (local.get 0))))
    (global.set $l (i64.add (global.get $l) (local.get 0)))
    (global.set $f (f32.mul (global.get $f) (f32.const 2)))
    (global.set $d (f64.sub (global.get $d) (f64.const 1)))
    (global.set $v (i64x2.add (global.get $v) (i64x2.splat (local.get 0))))
    (global.set $sh (i32.add (global.get $sh) (global.get $k)))
    (i64.add (i64.extend_i32_u (global.get $i))
             (i64.add (i64x2.extract_lane 1 (global.get $v)) (i64.extend_i32_u (global.get $sh)))))
  (func (export "lane0") (result i64) (i64x2.extract_lane 0 (global.get $v)))
  (func (export "swap") (param externref) (result externref)
    (global.get $r) (global.set $r (local.get 0))))
"""


@pytest.mark.parametrize("dispatch", MODES)
def test_globals_agree_with_interpreter_and_host(dispatch):
    gty = deadeye.GlobalType(deadeye.ValType.i32(), True)
    results = []
    for store, ex in _both(GLOBALS, dispatch,
                           lambda store: [deadeye.Global(store, gty, deadeye.Val.i32(5))]):
        out = [ex["step"](store, n) for n in (1, 0xFFFFFFFF, 1 << 40)]
        assert _resumes(store) == 0  # globals never leave native code
        ex["i"].set_value(store, 100)  # host writes are seen by the next native entry
        out.append(ex["step"](store, 3))
        out += [ex["i"].value(store), ex["l"].value(store), ex["f"].value(store),
                ex["d"].value(store), ex["lane0"](store)]
        marker = object()
        out += [ex["swap"](store, marker) is None, ex["swap"](store, None) is marker]
        results.append(out)
    assert results[0] == results[1]


def test_imported_global_is_shared_between_instances():
    gty = deadeye.GlobalType(deadeye.ValType.i32(), True)
    eng = deadeye.Engine(deadeye.Config(engine="native"))
    store = deadeye.Store(eng)
    g = deadeye.Global(store, gty, deadeye.Val.i32(0))
    _, _, a = _instance(GLOBALS, store=store, eng=eng, imports=[g])
    _, _, b = _instance(GLOBALS, store=store, eng=eng, imports=[g])
    a["step"](store, 0)
    b["step"](store, 0)
    assert g.value(store) == 14


# -- tables and call_indirect ----------------------------------------------------------------
TABLES = """(module
  (type $r (func (result i32)))
  (type $r2 (func (result i32)))
  (type $p (func (param i32) (result i32)))
  (table $t (export "t") 4 funcref)
  (elem (i32.const 0) $one $two $inc)
  (func $one (export "one") (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 2))
  (func $inc (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $r2) (local.get 0)))
  (func (export "tail") (param i32) (result i32) (return_call_indirect $t (type $r) (local.get 0)))
  (func (export "tail_arg") (param i32 i32) (result i32)
    (return_call_indirect $t (type $p) (local.get 1) (local.get 0)))
  (func (export "size") (result i32) (table.size $t))
  (func (export "grow") (result i32) (table.grow $t (ref.null func) (i32.const 2)))
  (func (export "set") (param i32 i32) (table.set $t (local.get 0) (table.get $t (local.get 1))))
  (func (export "sum") (param i32) (result i32) (local i32)
    (loop $l
      (local.set 1 (i32.add (local.get 1)
        (call_indirect $t (type $r) (i32.and (local.get 0) (i32.const 1)))))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (local.get 1)))
"""


def _resumes(store) -> int:
    stats = getattr(store._rt.executor, "stats", None)
    return stats["resumes"] if stats else 0


def _outcome(f, *args):
    try:
        return f(*args)
    except Trap as t:
        return t.message


@pytest.mark.parametrize("dispatch", MODES)
def test_call_indirect_cache_follows_table_changes(dispatch):
    results = []
    for store, ex in _both(TABLES, dispatch):
        c = ex["call"]
        before = _resumes(store)
        out = [ex["sum"](store, 1000)]
        assert _resumes(store) - before <= 2  # only the cache misses leave native code
        out += [_outcome(c, store, i) for i in range(6)]  # hit, mismatch, null, out of range
        out += [_outcome(ex["tail"], store, i) for i in range(3)]
        # the argument moved into place overwrites the index register: the cache must
        # file $inc under element 2, not 1
        out += [ex["tail_arg"](store, 2, 1), _outcome(ex["tail_arg"], store, 1, 5)]
        ex["set"](store, 0, 1)  # wasm writes the table: index 0 now holds $two
        out += [c(store, 0), ex["sum"](store, 10)]
        ex["t"].set(store, 0, ex["one"])  # the host writes it back
        out += [c(store, 0), ex["size"](store), ex["grow"](store), ex["size"](store)]
        out += [_outcome(c, store, 5), ex["sum"](store, 11)]
        results.append(out)
    assert results[0] == results[1]
    assert results[0][:7] == [1500, 1, 2, "indirect call type mismatch", "uninitialized element",
                              "undefined element", "undefined element"]


# -- bulk memory -----------------------------------------------------------------------------
BULK = """(module (memory 1)
  (func (export "cp") (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fill") (param i32 i32 i32) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "ld") (param i32) (result i64) (i64.load (local.get 0))))
"""


@pytest.mark.parametrize("dispatch", MODES)
def test_memory_copy_and_fill_run_natively(dispatch):
    results = []
    for store, ex in _both(BULK, dispatch):
        out = []
        ex["fill"](store, 10, 0x1AB, 8)  # the value's low byte only
        ex["cp"](store, 13, 10, 8)  # overlapping, forward
        ex["cp"](store, 9, 12, 8)  # overlapping, backward
        out += [ex["ld"](store, a) for a in (8, 16)]
        before = _resumes(store)
        for args in [(65530, 0, 6), (65536, 0, 0), (0, 65536, 0), (65530, 0, 7), (0, 65530, 7),
                     (65537, 0, 0), (0xFFFFFFFF, 0, 2), (0, 0, 0xFFFFFFFF)]:
            out += [_outcome(ex["cp"], store, *args), _outcome(ex["fill"], store, *args)]
        if store._rt.executor.__class__.__name__ == "NativeExecutor":
            assert _resumes(store) - before == sum(o == "out of bounds memory access" for o in out)
        out.append(ex["ld"](store, 65528))  # a trapping fill wrote nothing
        results.append(out)
    assert results[0] == results[1]
