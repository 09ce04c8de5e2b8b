"""The IR evaluator on functions written in the IR text form: control flow, block
parameters (parallel copies), multi-value, calls and tail calls, memory, tables, globals,
fuel, and every trap with its message and backtrace."""

from __future__ import annotations

import os

import pytest

from deadeye.frontend.module import GlobalType, Limits, MemoryType, Names, TableType
from deadeye.interp.ireval import IREvaluator, compile_function
from deadeye.interp.memory import MemoryInstance, TableInstance
from deadeye.interp.runtime import GlobalInstance, ModuleInstance, Store, WasmFunction
from deadeye.ir import numerics
from deadeye.ir.errors import Trap
from deadeye.ir.text import parse_function, parse_module
from deadeye.ir.types import ValType

M32 = (1 << 32) - 1


class _FakeModule:
    """What the runtime asks of a module: names and the import count."""

    def __init__(self, names, types):
        self.types = types
        self.names = Names()
        self.num_imported_funcs = 0
        self._names = names

    def func_name(self, index):
        return self._names[index]


def instance(text, *, memory_pages=None, table=None, globals_=(), fuel=None, depth=None,
             canonicalize=False):
    """Parse an IR module and make an instance of it whose functions the evaluator runs
    (through its provider, as the pipeline does). Returns (store, exports by name)."""
    irmod = parse_module(text)
    if canonicalize:  # NaN canonicalization is an IR pass, as in the pipeline
        from deadeye.opt.nan_canon import canonicalize_nans

        for f in irmod.functions:
            canonicalize_nans(f)
    ev = IREvaluator(lambda wf: irmod.functions[wf.defined_index])
    kw = {}
    if fuel is not None:
        kw["consume_fuel"] = True
    if depth is not None:
        kw["max_call_depth"] = depth
    store = Store(ev, **kw)
    if fuel is not None:
        store.set_fuel(fuel)
    inst = ModuleInstance(_FakeModule([f.name for f in irmod.functions], irmod.types), store)
    for i, f in enumerate(irmod.functions):
        inst.funcs.append(WasmFunction(inst, i, f.sig))
    if memory_pages is not None:
        inst.memories.append(MemoryInstance(MemoryType(Limits(memory_pages, memory_pages + 1))))
    if table is not None:
        t = TableInstance(TableType(ValType.FUNCREF, Limits(len(table), None)))
        t.elements[:] = [None if i is None else inst.funcs[i] for i in table]
        inst.tables.append(t)
    for t, mut, v in globals_:
        inst.globals.append(GlobalInstance(GlobalType(t, mut), v))
    funcs = {f.name: wf for f, wf in zip(irmod.functions, inst.funcs)}
    return store, funcs, inst


def call(store, func, *args):
    return store.call(func, list(args))


HEADER = "type 0 = (i32) -> (i32)\nfunc 0 = type 0\n"

SUM_LOOP = """
function %sum(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.const 0
    jump block1(v0, v1)
block1(v2: i32, v3: i32) fuel=5:
    v4 = i32.eqz v2
    br_if v4, block2, block3
block2:
    return v3
block3:
    v5 = i32.add v3, v2
    v6 = i32.const 1
    v7 = i32.sub v2, v6
    jump block1(v7, v5)
}
"""


def test_loop_with_block_params():
    store, f, _ = instance(HEADER + SUM_LOOP)
    assert call(store, f["sum"], 100) == [5050]
    assert call(store, f["sum"], 0) == [0]
    # wrapping arithmetic comes from numerics: 1 + ... + 100000 mod 2**32
    assert call(store, f["sum"], 100000) == [(100000 * 100001 // 2) & M32]


def test_parallel_copy_on_back_edge():
    # fib by swapping two block parameters: a sequential copy would lose a value.
    text = """type 0 = (i32) -> (i64)
func 0 = type 0
function %fib(v0: i32) -> i64 {
block0(v0: i32):
    v1 = i64.const 0
    v2 = i64.const 1
    jump block1(v0, v1, v2)
block1(v3: i32, v4: i64, v5: i64):
    br_if v3, block2, block3
block2:
    v6 = i64.add v4, v5
    v7 = i32.const 1
    v8 = i32.sub v3, v7
    jump block1(v8, v5, v6)
block3:
    return v4
}
"""
    store, f, _ = instance(text)
    a, b = 0, 1
    for _ in range(90):
        a, b = b, a + b
    assert call(store, f["fib"], 90) == [a]


def test_parallel_copy_swaps_and_rotates():
    # each iteration rotates (a, b, c) -> (b, c, a): only a true parallel copy does that
    text = """type 0 = (i32, i32, i32, i32) -> (i32, i32, i32)
func 0 = type 0
function %rot(v0: i32, v1: i32, v2: i32, v3: i32) -> i32, i32, i32 {
block0(v0: i32, v1: i32, v2: i32, v3: i32):
    jump block1(v0, v1, v2, v3)
block1(v4: i32, v5: i32, v6: i32, v7: i32):
    br_if v7, block2, block3
block2:
    v8 = i32.const 1
    v9 = i32.sub v7, v8
    jump block1(v5, v6, v4, v9)
block3:
    return v4, v5, v6
}
"""
    store, f, _ = instance(text)
    for n in range(7):
        abc = [10, 20, 30]
        want = abc[n % 3:] + abc[:n % 3]
        assert call(store, f["rot"], 10, 20, 30, n) == want


def test_multi_value_call_and_return():
    text = """type 0 = (i32, i64) -> (i64, i32)
type 1 = (i32, i64) -> (i64)
func 0 = type 0
func 1 = type 1
function %swap(v0: i32, v1: i64) -> i64, i32 {
block0(v0: i32, v1: i64):
    return v1, v0
}
function %use(v0: i32, v1: i64) -> i64 {
block0(v0: i32, v1: i64):
    v2: i64, v3: i32 = call 0 v0, v1
    v4 = i64.extend_i32_u v3
    v5 = i64.sub v2, v4
    return v5
}
"""
    store, f, _ = instance(text)
    assert call(store, f["swap"], 7, 9) == [9, 7]
    assert call(store, f["use"], 3, 10) == [7]
    assert call(store, f["use"], 11, 10) == [(10 - 11) & ((1 << 64) - 1)]


BR_TABLE = HEADER + """
function %classify(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.const 100
    v2 = i32.const 200
    v3 = i32.const 300
    br_table v0, [block1(v1), block1(v2), block2], block1(v3)
block1(v4: i32):
    return v4
block2:
    v5 = i32.const -1
    return v5
}
"""


@pytest.mark.parametrize("arg, expected", [(0, 100), (1, 200), (2, M32), (3, 300),
                                           (M32, 300)])
def test_br_table(arg, expected):
    store, f, _ = instance(BR_TABLE)
    assert call(store, f["classify"], arg) == [expected]


def test_select_and_simd_lane_immediates():
    text = """type 0 = (i32, i32, i32) -> (i32)
func 0 = type 0
function %f(v0: i32, v1: i32, v2: i32) -> i32 {
block0(v0: i32, v1: i32, v2: i32):
    v3 = select v0, v1, v2
    v4 = i32x4.splat v3
    v5 = i32.const 5
    v6 = i32x4.replace_lane 2 v4, v5
    v7 = i32x4.extract_lane 2 v6
    v8 = i32x4.extract_lane 1 v6
    v9 = i32.add v7, v8
    return v9
}
"""
    store, f, _ = instance(text)
    assert call(store, f["f"], 10, 20, 1) == [15]
    assert call(store, f["f"], 10, 20, 0) == [25]


def test_nan_canonicalization_mode():
    text = """type 0 = (f32, f32) -> (f32)
func 0 = type 0
function %add(v0: f32, v1: f32) -> f32 {
block0(v0: f32, v1: f32):
    v2 = f32.add v0, v1
    return v2
}
"""
    nan = 0x7FA00001  # a signalling NaN with a payload
    store, f, _ = instance(text)
    plain = call(store, f["add"], nan, 0x3F800000)[0]
    assert plain == numerics.OPS["f32.add"](nan, 0x3F800000)
    store, f, _ = instance(text, canonicalize=True)
    assert call(store, f["add"], nan, 0x3F800000) == [numerics.CANONICAL_NAN_F32]


MEMORY = """type 0 = (i32) -> (i32)
type 1 = (i32, i32) -> ()
type 2 = () -> (i32)
func 0 = type 0
func 1 = type 1
func 2 = type 0
func 3 = type 2
memories 1
function %load(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.load mem=0 offset=0 v0 @0x10
    return v1
}
function %store16(v0: i32, v1: i32) {
block0(v0: i32, v1: i32):
    i32.store16 mem=0 offset=1 v0, v1 @0x20
    return
}
function %load_far(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.load8_s mem=0 offset=4294967295 v0 @0x30
    return v1
}
function %grow() -> i32 {
block0:
    v0 = i32.const 1
    v1 = memory.grow 0 v0
    v2 = memory.size 0
    v3 = i32.const 16
    v4 = i32.shl v1, v3
    v5 = i32.or v4, v2
    return v5
}
"""


def test_memory_load_store_and_bounds():
    store, f, _ = instance(MEMORY, memory_pages=1)
    call(store, f["store16"], 10, 0x12345678)
    assert call(store, f["load"], 10) == [0x5678 << 8]
    assert call(store, f["load"], 65532) == [0]
    with pytest.raises(Trap) as e:
        call(store, f["load"], 65533)
    assert e.value.message == "out of bounds memory access"
    assert e.value.frames == [("load", 0, 0x10)]
    # base + offset is computed without wrapping: 1 + 0xffffffff is past any memory
    with pytest.raises(Trap, match="out of bounds memory access"):
        call(store, f["load_far"], 1)


def test_memory_grow_and_size():
    store, f, _ = instance(MEMORY, memory_pages=1)
    assert call(store, f["grow"]) == [(1 << 16) | 2]
    # the maximum is 2 pages: the next grow fails with -1 and the size stays
    assert call(store, f["grow"]) == [(0xFFFF << 16) | 2]
    assert call(store, f["load"], 65536) == [0]  # the new page is addressable


CALLS = """type 0 = (i32) -> (i32)
type 1 = (i32, i32) -> (i32)
func 0 = type 0
func 1 = type 0
func 2 = type 1
func 3 = type 0
func 4 = type 0
table 0 = funcref
function %double(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.add v0, v0
    return v1
}
function %recurse(v0: i32) -> i32 {
block0(v0: i32) @0x40:
    v1: i32 = call 1 v0 @0x44
    return v1
}
function %count(v0: i32, v1: i32) -> i32 {
block0(v0: i32, v1: i32):
    br_if v0, block1, block2
block1:
    v2 = i32.const 1
    v3 = i32.sub v0, v2
    v4 = i32.add v1, v2
    return_call 2 v3, v4
block2:
    return v1
}
function %indirect(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.const 21
    v2: i32 = call_indirect type=0 table=0 v1, v0 @0x50
    return v2
}
function %tail_indirect(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.const 4
    return_call_indirect type=0 table=0 v1, v0 @0x60
}
"""


def test_call_indirect_and_its_traps():
    store, f, _ = instance(CALLS, table=[0, None, 2])
    assert call(store, f["indirect"], 0) == [42]
    for index, message in [(1, "uninitialized element"), (2, "indirect call type mismatch"),
                           (3, "undefined element"), (M32, "undefined element")]:
        with pytest.raises(Trap) as e:
            call(store, f["indirect"], index)
        assert e.value.message == message
        assert e.value.frames == [("indirect", 3, 0x50)]


def test_return_call_indirect():
    store, f, _ = instance(CALLS, table=[0, None, 2])
    assert call(store, f["tail_indirect"], 0) == [8]


def test_tail_calls_run_in_constant_stack():
    store, f, _ = instance(CALLS, depth=50)
    assert call(store, f["count"], 1_000_000, 0) == [1_000_000]
    assert store.depth == 0


def test_infinite_recursion_exhausts_the_call_stack():
    store, f, _ = instance(CALLS, depth=500)
    with pytest.raises(Trap) as e:
        call(store, f["recurse"], 1)
    assert e.value.message == "call stack exhausted"
    assert len(e.value.frames) == 500
    assert set(e.value.frames) == {("recurse", 1, 0x44)}
    assert store.depth == 0  # the store unwound its frames


@pytest.mark.parametrize("body, message", [
    ("unreachable @0x7", "unreachable"),
    ('trap "integer overflow" @0x7', "integer overflow"),
])
def test_explicit_traps(body, message):
    text = f"""type 0 = () -> ()
func 0 = type 0
function %t() {{
block0:
    {body}
}}
"""
    store, f, _ = instance(text)
    with pytest.raises(Trap) as e:
        call(store, f["t"])
    assert e.value.message == message
    assert e.value.frames == [("t", 0, 7)]


def test_numeric_trap_carries_offset():
    text = """type 0 = (i32, i32) -> (i32)
func 0 = type 0
function %div(v0: i32, v1: i32) -> i32 {
block0(v0: i32, v1: i32):
    v2 = i32.div_s v0, v1 @0x99
    return v2
}
"""
    store, f, _ = instance(text)
    assert call(store, f["div"], 7, 2) == [3]
    with pytest.raises(Trap) as e:
        call(store, f["div"], 7, 0)
    assert (e.value.message, e.value.frames) == ("integer divide by zero", [("div", 0, 0x99)])
    with pytest.raises(Trap, match="integer overflow"):
        call(store, f["div"], 0x80000000, M32)


def test_globals():
    text = """type 0 = (i64) -> (i64)
func 0 = type 0
global 0 = mut i64
function %bump(v0: i64) -> i64 {
block0(v0: i64):
    v1: i64 = global.get 0
    v2 = i64.add v1, v0
    global.set 0 v2
    return v1
}
"""
    store, f, inst = instance(text, globals_=[(ValType.I64, True, 40)])
    assert call(store, f["bump"], 2) == [40]
    assert call(store, f["bump"], 5) == [42]
    assert inst.globals[0].value == 47


def test_fuel_is_charged_per_block():
    # sum(n) runs block1 n+1 times at 5 units each; the other blocks cost nothing
    store, f, _ = instance(HEADER + SUM_LOOP, fuel=1000)
    assert call(store, f["sum"], 10) == [55]
    assert store.get_fuel() == 1000 - 5 * 11
    store.set_fuel(5 * 11 - 1)
    with pytest.raises(Trap) as e:
        call(store, f["sum"], 10)
    assert e.value.message == "all fuel consumed"
    assert store.get_fuel() == 0


def test_compiled_form_is_cached_and_shared():
    store, f, _ = instance(HEADER + SUM_LOOP)
    call(store, f["sum"], 3)
    code = f["sum"].code
    call(store, f["sum"], 4)
    assert f["sum"].code is code
    # the compact form keeps constants out of the executed ops
    func = parse_function(SUM_LOOP)
    c = compile_function(func)
    assert c.template[1] == 0 and c.template[6] == 1


# -- the pipeline and the "ir" engine through the public API ------------------------------

def test_ir_engine_is_registered_and_caches_per_module():
    import deadeye
    from deadeye import pipeline

    assert "ir" in deadeye.api.available_engines()
    engine = deadeye.Engine(deadeye.Config(engine="ir"))
    module = deadeye.Module(engine, deadeye.wat2wasm(
        '(module (func (export "f") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3))))'))
    store = deadeye.Store(engine)
    a = deadeye.Instance(store, module, []).exports(store)["f"]
    b = deadeye.Instance(deadeye.Store(engine), module, []).exports(store)["f"]
    assert pipeline.pipeline_for(module._module).lifter.lifted() == {}  # nothing before a call
    assert a(store, 5) == 15 and b(store, 6) == 18
    lifted = pipeline.pipeline_for(module._module).lifter.lifted()
    assert list(lifted) == [0]
    assert pipeline.ir_function(module._module, 0) is lifted[0]
    assert a._rt.code is b._rt.code  # both instances run the same compact form


def test_lazy_validation_happens_on_first_call():
    import deadeye
    from deadeye.ir.errors import ValidationError

    wasm = deadeye.wat2wasm('(module (func (export "a") (result i32) (i32.const 5))'
                            ' (func (export "b") (result i32) (i32.const 7)))')
    assert wasm.count(b"\x41\x07\x0b") == 1
    wasm = wasm.replace(b"\x41\x07\x0b", b"\x01\x6a\x0b")  # b's body: nop; i32.add
    with pytest.raises(ValidationError):
        deadeye.Module(deadeye.Engine(deadeye.Config(engine="ir")), wasm)
    engine = deadeye.Engine(deadeye.Config(engine="ir", lazy=True))
    store = deadeye.Store(engine)
    ex = deadeye.Instance(store, deadeye.Module(engine, wasm), []).exports(store)
    assert ex["a"](store) == 5
    with pytest.raises(ValidationError, match="type mismatch") as e:
        ex["b"](store)
    assert e.value.func_index == 1
    assert store._rt.frames == []


# -- random valid IR functions: every op and terminator compiles and runs safely ----------

from hypothesis import HealthCheck, given, settings  # noqa: E402

from deadeye.frontend.module import Limits as _Limits  # noqa: E402
from deadeye.interp.memory import DataInstance, ElemInstance  # noqa: E402
from deadeye.interp.ireval import _access_bytes  # noqa: E402
from deadeye.interp.runtime import HostFunction, check_value  # noqa: E402
from ir_testlib import make_env, random_functions  # noqa: E402

_ZERO = {ValType.FUNCREF: None, ValType.EXTERNREF: None}


def _random_instance(env, func, store):
    """An instance shaped like `env`: host functions returning zeros, small memories and
    tables, and `func` as one more (wasm) function."""
    inst = ModuleInstance(_FakeModule({len(env.func_types): func.name}, env.types), store)
    for i, ti in enumerate(env.func_types):
        ty = env.types[ti]
        inst.funcs.append(HostFunction(ty, lambda s, a, ty=ty: [_ZERO.get(t, 0) for t in ty.results],
                                       f"host{i}"))
    for _ in range(env.memories):
        inst.memories.append(MemoryInstance(MemoryType(_Limits(1, 2))))
    for t in env.tables:
        table = TableInstance(TableType(t, _Limits(4, 8)))
        if t == ValType.FUNCREF:
            table.elements[:3] = inst.funcs[:3]
        inst.tables.append(table)
    for t, mut in env.globals:
        inst.globals.append(GlobalInstance(GlobalType(t, mut), _ZERO.get(t, 0)))
    inst.datas = [DataInstance(bytes(range(i * 3))) for i in range(env.datas)]
    inst.elems = [ElemInstance(t, [None] * 2) for t in env.elems]
    return inst


@settings(max_examples=int(os.environ.get("IREVAL_EXAMPLES", "60")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(random_functions(max_blocks=4, max_instrs=5))
def test_random_functions_run_or_trap(func):
    env = make_env()
    for b in func.blocks:  # every block costs fuel, so random loops end
        b.fuel = max(1, b.fuel)
    store = Store(IREvaluator(lambda wf: func), consume_fuel=True)
    store.set_fuel(500)
    inst = _random_instance(env, func, store)
    wf = WasmFunction(inst, len(env.func_types), func.sig)
    inst.funcs.append(wf)
    args = [_ZERO.get(t, 1) for t in func.sig.params]
    try:
        results = store.call(wf, args)
    except Trap as t:
        assert t.frames and t.frames[0][1] == len(env.func_types)
        return
    assert len(results) == len(func.sig.results)
    for t, v in zip(func.sig.results, results):
        assert check_value(t, v), (t, v)


def _walk(func, args, inst, store, fuel):
    """A deliberately naive IR interpreter over the IR objects themselves (a dict of
    values, one instruction at a time), to check the evaluator's compiled form against.
    Returns (results or None, trap message or None)."""
    vals = dict(zip(func.params, args))
    block = func.entry
    try:
        while True:
            if block.fuel > fuel:
                raise Trap("all fuel consumed")
            fuel -= block.fuel
            for ins in block.instrs:
                name, imm = ins.op.name, ins.imm
                a = [vals[v] for v in ins.args]
                res = None
                if name.endswith(".const"):
                    res = [imm[0]]
                elif name in numerics.OPS:
                    res = [numerics.OPS[name](*a, *imm)]
                elif ins.op.resource == "memory" and (".load" in name or ".store" in name):
                    mem = inst.memories[imm[0]]
                    n = _access_bytes(name)
                    addr = a[0] + imm[1]
                    conv = numerics.MEMORY_OPS.get(name)
                    if ".load" in name:
                        raw = int.from_bytes(mem.read(addr, n), "little")
                        if name.endswith("_lane"):
                            res = [conv(a[1], raw, imm[2])]
                        else:
                            res = [raw if conv is None else conv(raw)]
                    else:
                        if name.endswith("_lane"):
                            raw = conv(a[1], imm[2])
                        else:
                            raw = a[1] if conv is None else conv(a[1])
                        mem.write(addr, raw.to_bytes(n, "little"))
                elif name == "select":
                    res = [a[0] if a[2] else a[1]]
                elif name == "global.get":
                    res = [inst.globals[imm[0]].value]
                elif name == "global.set":
                    inst.globals[imm[0]].value = a[0]
                elif name == "ref.null":
                    res = [None]
                elif name == "ref.is_null":
                    res = [int(a[0] is None)]
                elif name == "ref.func":
                    res = [inst.funcs[imm[0]]]
                elif name == "memory.size":
                    res = [inst.memories[imm[0]].pages]
                elif name == "memory.grow":
                    res = [inst.memories[imm[0]].grow(a[0]) & M32]
                elif name == "memory.copy":
                    inst.memories[imm[0]].copy(a[0], inst.memories[imm[1]], a[1], a[2])
                elif name == "memory.fill":
                    inst.memories[imm[0]].fill(*a)
                elif name == "memory.init":
                    inst.memories[imm[1]].init(a[0], inst.datas[imm[0]], a[1], a[2])
                elif name == "data.drop":
                    inst.datas[imm[0]].drop()
                elif name == "elem.drop":
                    inst.elems[imm[0]].drop()
                elif name == "table.get":
                    res = [inst.tables[imm[0]].get(a[0])]
                elif name == "table.set":
                    inst.tables[imm[0]].set(*a)
                elif name == "table.size":
                    res = [len(inst.tables[imm[0]])]
                elif name == "table.grow":
                    res = [inst.tables[imm[0]].grow(a[1], a[0]) & M32]
                elif name == "table.fill":
                    inst.tables[imm[0]].fill(*a)
                elif name == "table.copy":
                    inst.tables[imm[0]].copy(a[0], inst.tables[imm[1]], a[1], a[2])
                elif name == "table.init":
                    inst.tables[imm[1]].init(a[0], inst.elems[imm[0]], a[1], a[2])
                elif name in ("call", "return_call"):
                    res = store.call(inst.funcs[imm[0]], a)
                elif name in ("call_indirect", "return_call_indirect"):
                    elements = inst.tables[imm[1]].elements
                    if a[-1] >= len(elements):
                        raise Trap("undefined element")
                    f = elements[a[-1]]
                    if f is None:
                        raise Trap("uninitialized element")
                    if f.type != inst.types[imm[0]]:
                        raise Trap("indirect call type mismatch")
                    res = store.call(f, a[:-1])
                elif name == "jump" or name == "br_if" or name == "br_table":
                    if name == "jump":
                        target = ins.targets[0]
                    elif name == "br_if":
                        target = ins.targets[0 if a[0] else 1]
                    else:
                        target = ins.targets[min(a[0], len(ins.targets) - 1)]
                    new = [vals[v] for v in target.args]
                    vals.update(zip(target.block.params, new))
                    block = target.block
                    break
                elif name == "return":
                    return a, None
                elif name == "unreachable":
                    raise Trap("unreachable")
                elif name == "trap":
                    raise Trap(imm[0])
                else:
                    raise AssertionError(f"walker: unknown op {name}")
                if name.startswith("return_call"):
                    return res, None
                if res is not None:
                    vals.update(zip(ins.results, res))
    except Trap as t:
        return None, t.message


def _plain(v):
    """Function references differ between the two instances: compare them by name."""
    return v.name if isinstance(v, (HostFunction, WasmFunction)) else v


def _state(inst):
    return ([bytes(m.data) for m in inst.memories], [_plain(g.value) for g in inst.globals],
            [[_plain(f) for f in t.elements] for t in inst.tables], [len(d) for d in inst.datas],
            [len(e) for e in inst.elems])


@settings(max_examples=int(os.environ.get("IREVAL_EXAMPLES", "60")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(random_functions(max_blocks=5, max_instrs=6))
def test_random_functions_match_a_naive_walker(func):
    env = make_env()
    for b in func.blocks:
        b.fuel = max(1, b.fuel)
    store = Store(IREvaluator(lambda wf: func), consume_fuel=True)
    store.set_fuel(400)
    inst = _random_instance(env, func, store)
    wf = WasmFunction(inst, len(env.func_types), func.sig)
    inst.funcs.append(wf)
    args = [_ZERO.get(t, 1) for t in func.sig.params]
    try:
        got = (store.call(wf, args), None)
    except Trap as t:
        got = (None, t.message)
    ref_store = Store(None)
    ref_inst = _random_instance(env, func, ref_store)
    ref_inst.funcs.append(WasmFunction(ref_inst, len(env.func_types), func.sig))
    want = _walk(func, args, ref_inst, ref_store, 400)

    def norm(outcome):
        res, msg = outcome
        return (None if res is None else [_plain(v) for v in res]), msg

    assert norm(got) == norm(want)
    assert _state(inst) == _state(ref_inst)
