"""Tests of `deadeye.frontend.lift`: Wasm function bodies to SSA IR.

- Every function of every valid module of the vendored spec suite and of the vendored
  Sightglass programs lifts, passes the IR verifier, and prints/parses back identically.
- Focused control-flow programs run three ways: lifted to IR and run by a small IR
  evaluator kept here, run by a direct structured Wasm interpreter kept here (which counts
  executed instructions by the fuel rule documented in `lift.py`), and run by wasmtime.
  Results must agree, and the fuel the IR blocks charge must equal the reference count.
"""

from __future__ import annotations

import glob
import os

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from deadeye import wast
from deadeye.frontend.decoder import decode_body
from deadeye.frontend.lift import HANDLED_OPS, ModuleLifter, lift_function, lift_module, module_env
from deadeye.frontend.module import Features, parse_module
from deadeye.frontend.opcodes import OPS as WASM_OPS
from deadeye.ir import numerics
from deadeye.ir.errors import Trap, ValidationError
from deadeye.ir import text as ir_text
from deadeye.ir.text import parse_function, print_function
from deadeye.ir.types import ValType
from deadeye.ir.verify import verify, verify_module
from deadeye.sexpr import Atom, SList

HERE = os.path.dirname(__file__)
SPEC = os.path.join(HERE, "spec")
SIGHTGLASS = os.path.join(HERE, "sightglass")
SCRIPTS = sorted(os.path.relpath(p, SPEC).replace(os.sep, "/") for p in wast.find_scripts([SPEC]))
PROGRAMS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(SIGHTGLASS, "*.wasm")))
I64 = ValType.I64


def check_module(m) -> int:
    """Lift, verify and round-trip through the text form every defined function of `m`;
    returns how many there were."""
    env = module_env(m)
    for i in range(len(m.func_types)):
        func = lift_function(m, i, env)
        verify(func, env)
        assert func.index == m.num_imported_funcs + i
        assert func.sig == m.func_type(func.index)
        text = print_function(func)
        again = parse_function(text, env)
        assert again.as_tuple() == func.as_tuple(), text
    return len(m.func_types)


# -- every valid spec module ---------------------------------------------------------------


def spec_modules(path: str):
    """(line, bytes) of every module of a script that must be valid: `module` commands
    (not `module instance`, which reuses a definition) and the modules of
    `assert_unlinkable` and module-level `assert_trap` (valid, failing only when
    instantiated)."""
    source, nodes = wast._read_script(path)
    for kind, node in wast.script_commands(nodes, source, path):
        if kind == "module":
            if (type(node) is SList and len(node.items) > 1 and type(node.items[1]) is Atom
                    and node.items[1].text == "instance"):
                continue
            form = node
            if not isinstance(node, wast.ModuleForm):
                form = wast.parse_module_form(node, source)
        elif kind in ("assert_unlinkable", "assert_uninstantiable"):
            form = wast.parse_module_form(node.items[1], source)
        else:
            continue
        if form.encoding == "binary":
            yield form.line, form.source
        else:
            text = form.source if isinstance(form.source, str) else form.source.decode("utf-8")
            yield form.line, bytes(wasmtime.wat2wasm(text))


@pytest.mark.parametrize("script", SCRIPTS)
def test_spec_modules_lift(script):
    path = os.path.join(SPEC, script)
    features = wast.script_features(path)
    for line, data in spec_modules(path):
        m = parse_module(data, validate="eager", features=features)
        try:
            check_module(m)
        except Exception as e:
            raise AssertionError(f"{script}:{line}: {type(e).__name__}: {e}") from e


def test_spec_suite_is_covered():
    # The per-file test above really sees modules: the suite holds thousands of functions.
    total = 0
    for script in ("core/block.wast", "core/br_table.wast", "core/simd_lane.wast",
                   "proposals/tail-call/return_call.wast",
                   "proposals/multi-memory/memory-multi.wast"):
        path = os.path.join(SPEC, script)
        n = 0
        for _, data in spec_modules(path):
            n += len(parse_module(data, features=wast.script_features(path)).func_types)
        assert n > 0, script
        total += n
    assert total > 100


# -- Sightglass ------------------------------------------------------------------------------


def test_sightglass_vendored():
    assert len(PROGRAMS) >= 19
    for name in ("LICENSE-APACHE", "LICENSE-MIT"):
        assert os.path.exists(os.path.join(SIGHTGLASS, name))
    for p in PROGRAMS:
        assert os.path.exists(os.path.join(SIGHTGLASS, p[:-5] + ".stdout.expected"))


@pytest.mark.parametrize("program", PROGRAMS)
def test_sightglass_lifts(program):
    with open(os.path.join(SIGHTGLASS, program), "rb") as f:
        m = parse_module(f.read(), validate="lazy")
    assert check_module(m) > 0


# -- every op, the env, the lazy entry points -------------------------------------------------


def test_every_wasm_instruction_has_a_translation():
    assert HANDLED_OPS == set(WASM_OPS)


IMPORTS_WAT = """
(module
  (type $t (func (param i32) (result i64)))
  (import "m" "f" (func $f (type $t)))
  (import "m" "g" (global $g (mut f32)))
  (import "m" "t" (table 1 externref))
  (import "m" "mem" (memory 1))
  (func $h (param i32) (result i64) (call $f (local.get 0)))
  (global (mut i64) (i64.const 0))
  (global v128 (v128.const i64x2 0 0))
  (table 2 funcref)
  (memory 2)
  (data "x") (data "y")
  (elem func $h) (elem externref (ref.null extern))
)"""


def test_module_env_lists_imports_first():
    m = parse_module(wasmtime.wat2wasm(IMPORTS_WAT), features=Features())
    env = module_env(m)
    assert env.types == m.types
    assert env.func_types == [0, 0]
    assert env.globals == [(ValType.F32, True), (I64, True), (ValType.V128, False)]
    assert env.tables == [ValType.EXTERNREF, ValType.FUNCREF]
    assert env.memories == 2 and env.datas == 2
    assert env.elems == [ValType.FUNCREF, ValType.EXTERNREF]
    assert env.functions == []


def test_module_lifter_is_lazy_and_caches():
    m = parse_module(wasmtime.wat2wasm(IMPORTS_WAT), validate="lazy")
    assert m.validated == set()
    lifter = ModuleLifter(m)
    assert lifter.lifted() == {}
    f = lifter.function_by_index(1)
    assert m.validated == {0}  # validated on demand
    assert lifter.function(0) is f and lifter.env.functions == [f]
    assert f.index == 1 and f.name == "h"
    with pytest.raises(ValidationError):
        lifter.function_by_index(0)  # imported
    with pytest.raises(ValidationError):
        lift_function(m, 1)


def test_invalid_body_raises_validation_error():
    # A body that does not type-check: the lazily parsed module is validated on lifting.
    data = bytearray(wasmtime.wat2wasm('(module (func (result i32) (i32.const 7)))'))
    i = data.rindex(bytes([0x41, 0x07, 0x0B]))
    data[i:i + 2] = bytes([0x01, 0x01])  # i32.const 7 -> nop nop: no result
    m = parse_module(bytes(data), validate="lazy")
    with pytest.raises(ValidationError):
        lift_function(m, 0)


def test_offsets_and_fuel_are_recorded():
    wat = """(module (memory 1)
      (func (param i32 i32) (result i32)
        local.get 0 local.get 1 i32.div_s
        i32.const 0 i32.load offset=8
        i32.add))"""
    data = wasmtime.wat2wasm(wat)
    m = parse_module(data)
    func = lift_function(m, 0)
    (_, code) = decode_body(m, 0)
    by_op = {i.op: i.offset for i in code}
    ins = {i.op.name: i for i in func.instructions()}
    assert ins["i32.div_s"].offset == by_op["i32.div_s"]
    assert ins["i32.load"].offset == by_op["i32.load"]
    assert ins["i32.load"].imm == (0, 8)
    assert ins["i32.add"].offset is None  # cannot trap
    assert func.entry.fuel == len(code)
    assert func.entry.offset == code[0].offset


# -- a small IR evaluator and a reference Wasm interpreter -------------------------------------


class _Trapped(Exception):
    pass


def run_ir(funcs: dict, index: int, args: list, fuel: list, globals_: list):
    """Evaluate lifted function `index` (scalar subset). `fuel[0]` accumulates the fuel
    of every block entered."""
    func = funcs[index]
    vals = {}
    block, bargs = func.entry, list(args)
    while True:
        fuel[0] += block.fuel
        for p, a in zip(block.params, bargs):
            vals[p] = a
        for ins in block.instrs:
            name = ins.op.name
            a = [vals[x] for x in ins.args]
            if ins.op.terminator:
                if name == "return":
                    return a
                if name in ("unreachable", "trap"):
                    raise _Trapped(name)
                if name == "return_call":
                    return run_ir(funcs, ins.imm[0], a, fuel, globals_)
                if name == "jump":
                    t = ins.targets[0]
                elif name == "br_if":
                    t = ins.targets[0 if a[0] else 1]
                else:
                    assert name == "br_table", name
                    t = ins.targets[min(a[0], len(ins.targets) - 1)]
                block, bargs = t.block, [vals[x] for x in t.args]
                break
            if name.endswith(".const"):
                res = [ins.imm[0]]
            elif name == "call":
                res = run_ir(funcs, ins.imm[0], a, fuel, globals_)
            elif name == "select":
                res = [a[0] if a[2] else a[1]]
            elif name == "global.get":
                res = [globals_[ins.imm[0]]]
            elif name == "global.set":
                globals_[ins.imm[0]] = a[0]
                res = []
            else:
                try:
                    res = [numerics.OPS[name](*a)]
                except Trap as e:
                    raise _Trapped(e.message) from None
            for r, v in zip(ins.results, res):
                vals[r] = v


def run_wasm(m, func_index: int, args: list, fuel: list, globals_: list):
    """Interpret a function's decoded instructions directly (scalar subset), counting
    executed instructions in `fuel[0]` by the rule documented in `deadeye.frontend.lift`."""
    defined = func_index - m.num_imported_funcs
    local_types, code = decode_body(m, defined)
    ft = m.func_type(func_index)
    locals_ = list(args) + [0] * len(local_types)
    end_of, else_of, open_ = {}, {}, []
    for pc, ins in enumerate(code):
        if ins.op in ("block", "loop", "if"):
            open_.append(pc)
        elif ins.op == "else":
            else_of[open_[-1]] = pc
        elif ins.op == "end" and open_:
            end_of[open_.pop()] = pc

    def block_type(bt):
        if bt is None:
            return 0, 0
        if type(bt) is int:
            return len(m.types[bt].params), len(m.types[bt].results)
        return 0, 1

    stack: list = []
    labels: list = []  # (kind, branch target pc, stack height, branch arity)
    pc = 0

    def branch(depth):
        if depth == len(labels):
            return None  # the function's label: return
        kind, target, height, arity = labels[-1 - depth]
        vals = stack[len(stack) - arity:] if arity else []
        del stack[height:]
        stack.extend(vals)
        del labels[len(labels) - depth - (1 if kind != "loop" else 0):]
        return target

    while True:
        ins = code[pc]
        op, imm = ins.op, ins.imm
        fuel[0] += 1
        nxt = pc + 1
        if op in ("block", "loop"):
            n_in, n_out = block_type(imm[0])
            if op == "block":
                labels.append(("block", end_of[pc] + 1, len(stack) - n_in, n_out))
            else:
                labels.append(("loop", pc + 1, len(stack) - n_in, n_in))
        elif op == "if":
            n_in, n_out = block_type(imm[0])
            if stack.pop():
                labels.append(("if", end_of[pc] + 1, len(stack) - n_in, n_out))
            elif pc in else_of:
                labels.append(("if", end_of[pc] + 1, len(stack) - n_in, n_out))
                nxt = else_of[pc] + 1
            else:
                nxt = end_of[pc] + 1  # no else arm: past the end
        elif op == "else":
            nxt = branch(0)
        elif op == "end":
            if not labels:
                return stack[len(stack) - len(ft.results):] if ft.results else []
            labels.pop()
        elif op == "br":
            nxt = branch(imm[0])
        elif op == "br_if":
            if stack.pop():
                nxt = branch(imm[0])
        elif op == "br_table":
            i = stack.pop()
            targets, default = imm
            nxt = branch(targets[i] if i < len(targets) else default)
        elif op == "return":
            nxt = None
        elif op == "unreachable":
            raise _Trapped(op)
        elif op == "nop":
            pass
        elif op == "drop":
            stack.pop()
        elif op in ("select", "select_t"):
            c = stack.pop()
            b = stack.pop()
            a = stack.pop()
            stack.append(a if c else b)
        elif op == "local.get":
            stack.append(locals_[imm[0]])
        elif op == "local.set":
            locals_[imm[0]] = stack.pop()
        elif op == "local.tee":
            locals_[imm[0]] = stack[-1]
        elif op == "global.get":
            stack.append(globals_[imm[0]])
        elif op == "global.set":
            globals_[imm[0]] = stack.pop()
        elif op in ("call", "return_call"):
            n = len(m.func_type(imm[0]).params)
            a = stack[len(stack) - n:] if n else []
            del stack[len(stack) - n:]
            res = run_wasm(m, imm[0], a, fuel, globals_)
            if op == "return_call":
                return res
            stack.extend(res)
        elif op.endswith(".const"):
            stack.append(imm[0])
        else:
            n = len(numerics.SIGNATURES[op].params)
            a = stack[len(stack) - n:]
            del stack[len(stack) - n:]
            try:
                stack.append(numerics.OPS[op](*a))
            except Trap as e:
                raise _Trapped(e.message) from None
        if nxt is None:
            return stack[len(stack) - len(ft.results):] if ft.results else []
        pc = nxt


def _wasmtime_call(data: bytes, name: str, args):
    cfg = wasmtime.Config()
    cfg.wasm_tail_call = True
    store = wasmtime.Store(wasmtime.Engine(cfg))
    inst = wasmtime.Instance(store, wasmtime.Module(store.engine, data), [])
    f = inst.exports(store)[name]
    ft = f.type(store)
    bits = [32 if str(t) == "i32" else 64 for t in ft.params]
    signed = [a - (1 << n) if a >= 1 << (n - 1) else a for a, n in zip(args, bits)]
    try:
        out = f(store, *signed)
    except wasmtime.Trap:
        return "trap"
    if out is None:
        out = []
    elif not isinstance(out, list):
        out = [out]
    masks = [(1 << 32) - 1 if str(t) == "i32" else (1 << 64) - 1 for t in ft.results]
    return [v & mask for v, mask in zip(out, masks)]


def check_three_ways(wat: str, calls, exports=None):
    """Run each (export, args) of `calls` through the lifted IR, the reference
    interpreter and wasmtime: same results (or all trap), and IR fuel == reference fuel."""
    data = bytes(wasmtime.wat2wasm(wat))
    m = parse_module(data)
    lifter = ModuleLifter(m)
    funcs = {i: lifter.function_by_index(i) for i in range(m.num_imported_funcs, m.num_funcs)}
    for f in funcs.values():
        verify(f, lifter.env)
    index = {e.name: e.index for e in m.exports if e.kind == "func"}
    nglobals = m.num_globals
    for name, args in calls:
        ir_fuel, ref_fuel = [0], [0]
        try:
            got = run_ir(funcs, index[name], list(args), ir_fuel, [0] * nglobals)
        except _Trapped:
            got = "trap"
        try:
            ref = run_wasm(m, index[name], list(args), ref_fuel, [0] * nglobals)
        except _Trapped:
            ref = "trap"
        assert got == ref, (name, args)
        if got != "trap":  # fuel is charged per block: a trap mid-block counts it all
            assert ir_fuel[0] == ref_fuel[0], (name, args, ir_fuel[0], ref_fuel[0])
        assert ref_fuel[0] > 0
        assert _wasmtime_call(data, name, args) == ref, (name, args)
    return funcs


# -- focused control flow ----------------------------------------------------------------------

BR_TABLE_LOOPS = """(module
  ;; sum n + (n-1) + ... + 1 with the accumulator as a loop parameter
  (func (export "sum") (param $n i32) (result i32)
    block $done (result i32)
      i32.const 0
      loop $l (param i32) (result i32)
        local.get $n i32.add
        local.get $n i32.const 1 i32.sub local.tee $n
        i32.const 0 i32.le_s
        br_table $l $done
      end
    end)
  ;; two loops with two parameters each; br_table picks the inner loop, the outer loop
  ;; or leaves, from the low bits of a counter
  (func (export "two") (param $n i32) (result i32)
    (local $k i32)
    block $out (result i32 i32)
      i32.const 1 i32.const 0
      loop $outer (param i32 i32) (result i32 i32)
        loop $inner (param i32 i32) (result i32 i32)
          ;; (a, b) -> (b + 1, a + b); loop on while k < n
          local.set $k
          local.get $k i32.const 1 i32.add
          i32.add
          local.get $k
          local.get $n i32.const 1 i32.sub local.tee $n
          i32.const 0 i32.le_s
          if (param i32 i32) (result i32 i32)
            i32.const 2 br_table $inner $outer $out
          end
          local.get $n i32.const 3 i32.and
          br_table $inner $outer $outer $inner
        end
      end
    end
    i32.mul)
  ;; a switch: br_table into nested blocks, each continuation distinct
  (func (export "switch") (param i32) (result i32)
    block $d block $c block $b block $a
      local.get 0 br_table $a $b $c $d
    end i32.const 10 return
    end i32.const 20 return
    end i32.const 30 return
    end i32.const 40))"""


def test_br_table_to_loops_with_params():
    funcs = check_three_ways(BR_TABLE_LOOPS, [("sum", [n]) for n in (0, 1, 2, 7, 30)]
                             + [("two", [n]) for n in (0, 1, 5, 16, 33)]
                             + [("switch", [n]) for n in (0, 1, 2, 3, 4, 99)])
    loops = [b for f in funcs.values() for b in f.blocks if len(b.params) >= 2]
    assert loops  # loop parameters became block parameters


IF_NO_ELSE = """(module
  (func (export "scale") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    if (param i32) (result i32)
      i32.const 10 i32.mul
    end)
  (func (export "pair") (param i32 i32) (result i32)
    local.get 0 local.get 0
    local.get 1
    if (param i32 i32) (result i32 i32)
      i32.const 3 i32.add
      local.get 1
      br_if 0
      drop i32.const 99
    end
    i32.sub)
  (func (export "setlocal") (param i32) (result i32) (local i32)
    i32.const 5 local.set 1
    local.get 0
    if
      local.get 1 i32.const 7 i32.add local.set 1
    end
    local.get 1))"""


def test_if_without_else_with_params():
    calls = [(f, [a, b]) for f in ("scale", "pair") for a in (0, 4, 0xFFFFFFFF) for b in (0, 1)]
    calls += [("setlocal", [c]) for c in (0, 1)]
    check_three_ways(IF_NO_ELSE, calls)


DEAD_CODE = """(module
  (func (export "nested") (param i32) (result i32)
    block $a (result i32)
      block $b
        local.get 0
        br_if $b
        i32.const 1
        br $a
        ;; dead from here: nested constructs, polymorphic stack
        block (result i64)
          unreachable
        end
        drop
        loop $x br $x end
        if (result f32) f32.const 1 else br 1 end
        drop
        i32.add
        br_table 1 2
        i32.const 0 if end
      end
      local.get 0
      i32.const 100 i32.add
      return
      local.get 0
      if (result i32) i32.const 1 else i32.const 2 end
    end
    i32.const 1000 i32.add)
  (func (export "after_return") (param i32) (result i32)
    local.get 0
    if (result i32)
      i32.const 7 return
      loop br 0 end
    else
      local.get 0 i32.const 2 i32.mul
      br 0
      i32.const 5 i32.div_u
    end
    i32.const 1 i32.add)
  (func (export "after_unreachable") (param i32) (result i32)
    block (result i32)
      local.get 0 i32.eqz
      if unreachable i32.const 1 if nop else nop end end
      local.get 0
    end))"""


def test_unreachable_code_after_branches():
    calls = [(f, [a]) for f in ("nested", "after_return", "after_unreachable") for a in (0, 1, 9)]
    check_three_ways(DEAD_CODE, calls)


MULTI_VALUE = """(module
  (type $pair (func (param i32 i32) (result i32 i32)))
  (func $swap (export "swap") (type $pair)
    local.get 1 local.get 0)
  (func (export "blocks") (param i32 i32) (result i32 i32)
    local.get 0 local.get 1
    block (type $pair)
      call $swap
      local.get 0
      br_if 0
      i32.const 1 i32.add
    end
    block (param i32 i32) (result i32 i32 i32)
      i32.const 3
      local.get 1 br_if 0
      drop i32.const 4
    end
    i32.add i32.mul
    local.get 0)
  (func (export "ifelse") (param i32 i32) (result i32 i32)
    local.get 0 local.get 1
    local.get 0
    if (type $pair)
      i32.add i32.const 1
    else
      i32.sub i32.const 2
    end)
  (func (export "tail") (param i32 i32) (result i32 i32)
    local.get 1 local.get 0
    return_call $swap))"""


def test_multi_value_blocks():
    calls = [(f, [a, b]) for f in ("swap", "blocks", "ifelse", "tail")
             for a in (0, 2, 0xFFFFFFF0) for b in (0, 1)]
    check_three_ways(MULTI_VALUE, calls)


LOOP_LOCALS = """(module
  (global $g (mut i32) (i32.const 0))
  ;; factorial with the product and counter in locals changed in the body
  (func (export "fact") (param $n i64) (result i64) (local $r i64)
    i64.const 1 local.set $r
    block $done
      loop $l
        local.get $n i64.eqz br_if $done
        local.get $r local.get $n i64.mul local.set $r
        local.get $n i64.const 1 i64.sub local.set $n
        br $l
      end
    end
    local.get $r)
  ;; nested loops; a local changed only in the inner loop; another only on one if arm
  (func (export "grid") (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $s i32) (local $odd i32)
    loop $rows
      i32.const 0 local.set $j
      block $inner_done
        loop $cols
          local.get $j local.get $n i32.ge_u br_if $inner_done
          local.get $s local.get $i local.get $j i32.mul i32.add local.set $s
          local.get $i local.get $j i32.xor i32.const 1 i32.and
          if
            local.get $odd i32.const 1 i32.add local.set $odd
          else
            global.get $g i32.const 1 i32.add global.set $g
          end
          local.get $j i32.const 1 i32.add local.set $j
          br $cols
        end
      end
      local.get $i i32.const 1 i32.add local.tee $i
      local.get $n i32.lt_u br_if $rows
    end
    local.get $s local.get $odd i32.const 1000 i32.mul i32.add global.get $g i32.add)
  ;; a local read in the loop before being written: its first value is the zero
  (func (export "first_zero") (param $n i32) (result i32) (local $prev i32) (local $acc i32)
    loop $l
      local.get $acc local.get $prev i32.add local.set $acc
      local.get $n local.set $prev
      local.get $n i32.const 1 i32.sub local.tee $n
      br_if $l
    end
    local.get $acc)
  ;; select, and a loop left through a br_table
  (func (export "exit") (param $n i32) (result i32) (local $x i32)
    block $out
      loop $l
        local.get $x i32.const 3 i32.add local.set $x
        local.get $x local.get $n i32.gt_u
        br_table $l $out
      end
    end
    local.get $x i32.const 17 local.get $x i32.const 1 i32.and select)
  ;; br_table targets including the function's label
  (func (export "retlabel") (param i32) (result i32)
    block (result i32)
      local.get 0 i32.const 5 i32.mul
      local.get 0
      br_table 0 1 0
    end
    i32.const 1 i32.add))"""


def test_loops_with_locals_changed_in_the_body():
    calls = [("fact", [n]) for n in (0, 1, 5, 20, 25)]
    calls += [("grid", [n]) for n in (1, 2, 5)]
    calls += [("first_zero", [n]) for n in (1, 2, 6)]
    calls += [("exit", [n]) for n in (0, 4, 40)]
    calls += [("retlabel", [n]) for n in (0, 1, 2, 3)]
    check_three_ways(LOOP_LOCALS, calls)


def test_trapping_division_and_unreachable_agree():
    wat = """(module
      (func (export "div") (param i32 i32) (result i32)
        local.get 0 local.get 1 i32.div_s)
      (func (export "u") (param i32) (result i32)
        i32.const 3 local.get 0 br_if 0 unreachable))"""
    check_three_ways(wat, [("div", [7, 0]), ("div", [0x80000000, 0xFFFFFFFF]), ("div", [9, 2]),
                           ("u", [0]), ("u", [1])])


# -- random structured programs --------------------------------------------------------------

# A generator of random, valid, terminating programs: statements over three i32 locals,
# nested block/loop/if with branches to any enclosing label (arity 0 labels for statements,
# arity 1 for the `(result i32)` block expressions). Loops are bounded by a shared budget
# in $fuel, decremented on every backward branch.

_BIN = ["i32.add", "i32.sub", "i32.mul", "i32.xor", "i32.and", "i32.or", "i32.shl", "i32.rotl",
        "i32.lt_u", "i32.eq", "i32.gt_s"]


@st.composite
def _expr(draw, depth, labels):
    choice = draw(st.integers(0, 4 if depth > 0 else 1))
    if choice == 0:
        return f"(i32.const {draw(st.integers(-5, 40))})"
    if choice == 1:
        return f"(local.get {draw(st.integers(0, 2))})"
    if choice == 2:
        a, b = draw(_expr(depth - 1, labels)), draw(_expr(depth - 1, labels))
        return f"({draw(st.sampled_from(_BIN))} {a} {b})"
    if choice == 3:
        c = draw(_expr(depth - 1, labels))
        a, b = draw(_expr(depth - 1, labels)), draw(_expr(depth - 1, labels))
        return f"(if (result i32) {c} (then {a}) (else {b}))"
    # a value block; statements inside may branch out with a value
    inner = labels + [1]
    body = " ".join(draw(st.lists(_stmt(depth - 1, inner), max_size=3)))
    return f"(block (result i32) {body} {draw(_expr(depth - 1, inner))})"


@st.composite
def _stmt(draw, depth, labels):
    choice = draw(st.integers(0, 6 if depth > 0 else 1))
    if choice <= 1:
        return f"(local.set {draw(st.integers(0, 2))} {draw(_expr(depth, labels))})"
    if choice == 2:
        body = " ".join(draw(st.lists(_stmt(depth - 1, labels + [0]), max_size=3)))
        return f"(block {body})"
    if choice == 3:
        # a bounded loop: spend budget, then maybe branch back
        body = " ".join(draw(st.lists(_stmt(depth - 1, labels + ["loop"]), max_size=3)))
        again = ("(br_if 0 (i32.gt_s (local.tee 3 (i32.sub (local.get 3) (i32.const 1)))"
                 " (i32.const 0)))")
        return f"(loop {body} {again})"
    if choice == 4:
        c = draw(_expr(depth - 1, labels))
        a = " ".join(draw(st.lists(_stmt(depth - 1, labels + [0]), max_size=2)))
        b = " ".join(draw(st.lists(_stmt(depth - 1, labels + [0]), max_size=2)))
        return f"(if {c} (then {a}) (else {b}))" if b else f"(if {c} (then {a}))"
    if choice == 6:
        return f"(return {draw(_expr(depth - 1, labels))})"
    # loop labels are only branched to by the loops' own budgeted back edges
    return _branch_outside_loops(draw, depth, labels)


def _branch_outside_loops(draw, depth, labels):
    n = len(labels)
    choices = [d for d in range(n) if labels[n - 1 - d] != "loop"]
    target = draw(st.sampled_from(choices))
    arity = labels[n - 1 - target]
    value = draw(_expr(depth - 1, labels)) if arity else ""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return f"(br {target} {value})"
    if kind == 1:
        br = f"(br_if {target} {value} {draw(_expr(depth - 1, labels))})"
        return f"(drop {br})" if arity else br
    same = [d for d in choices if labels[n - 1 - d] == arity]
    targets = " ".join(str(draw(st.sampled_from(same))) for _ in range(draw(st.integers(0, 3))))
    return f"(br_table {targets} {target} {value} {draw(_expr(depth - 1, labels))})"


@st.composite
def programs(draw):
    body = " ".join(draw(st.lists(_stmt(3, [1]), min_size=1, max_size=5)))
    result = draw(_expr(2, [1]))
    return (f'(module (func (export "f") (param i32 i32) (result i32) (local i32 i32)\n'
            f"  (local.set 3 (i32.const 40))\n  {body}\n  {result}))")


@settings(max_examples=60, deadline=None)
@given(programs(), st.integers(0, 50), st.integers(0, 2**32 - 1))
def test_random_structured_programs(wat, a, b):
    check_three_ways(wat, [("f", [a, b])])


IMMEDIATES_WAT = """(module
  (type $t (func (param i32) (result i32)))
  (memory $m0 1) (memory $m1 1)
  (table $t0 2 funcref) (table $t1 2 funcref)
  (data $d0 "ab") (data $d1 "cd")
  (elem $e0 func $f) (elem $e1 func $f)
  (func $f (param i32) (result i32) local.get 0)
  (func (export "g") (param i32) (result v128) (local $v v128)
    (local.set $v (v128.load16_lane $m1 offset=6 3 (local.get 0) (v128.const i64x2 0 0)))
    (v128.store8_lane $m1 offset=2 15 (local.get 0) (local.get $v))
    (i32.store16 $m1 offset=12 (local.get 0) (i32.load8_u $m0 offset=5 (local.get 0)))
    (memory.copy $m1 $m0 (i32.const 0) (i32.const 1) (i32.const 2))
    (memory.init $m1 $d1 (i32.const 0) (i32.const 1) (i32.const 1))
    (table.copy $t1 $t0 (i32.const 0) (i32.const 1) (i32.const 1))
    (table.init $t1 $e1 (i32.const 0) (i32.const 0) (i32.const 1))
    (drop (call_indirect $t1 (type $t) (i32.const 4) (i32.const 0)))
    (drop (select (result i64) (i64.const 1) (i64.const 2) (local.get 0)))
    (i8x16.shuffle 31 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14
      (v128.const i64x2 1 2) (i8x16.replace_lane 9 (v128.const i64x2 3 4) (i32.const 5)))))"""


def test_immediates_are_translated():
    m = parse_module(wasmtime.wat2wasm(IMMEDIATES_WAT))
    func = lift_function(m, 1)
    verify(func, module_env(m))
    imms = {i.op.name: i.imm for i in func.instructions()}
    assert imms["v128.load16_lane"] == (1, 6, 3)  # (mem, offset, lane)
    assert imms["v128.store8_lane"] == (1, 2, 15)
    assert imms["i32.store16"] == (1, 12)
    assert imms["i32.load8_u"] == (0, 5)
    assert imms["memory.copy"] == (1, 0)  # (dst, src)
    assert imms["memory.init"] == (1, 1)  # (data, mem)
    assert imms["table.copy"] == (1, 0)
    assert imms["table.init"] == (1, 1)  # (elem, table)
    assert imms["call_indirect"] == (0, 1)  # (type, table)
    assert imms["select"] == ()
    assert imms["i8x16.shuffle"] == ((31,) + tuple(range(15)),)
    assert imms["i8x16.replace_lane"] == (9,)
    # operands keep the stack order: the store's address comes first
    store = next(i for i in func.instructions() if i.op.name == "i32.store16")
    assert store.args[1].defn.op.name == "i32.load8_u"
    sel = next(i for i in func.instructions() if i.op.name == "select")
    assert [a.defn.imm for a in sel.args[:2]] == [(1,), (2,)]


def test_lift_module_round_trips_as_a_module():
    m = parse_module(wasmtime.wat2wasm(MULTI_VALUE))
    irm = lift_module(m)
    assert [f.index for f in irm.functions] == list(range(m.num_funcs))
    verify_module(irm)
    again = ir_text.parse_module(ir_text.print_module(irm))
    assert [f.as_tuple() for f in again.functions] == [f.as_tuple() for f in irm.functions]
    assert again.types == irm.types and again.func_types == irm.func_types
