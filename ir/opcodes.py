"""The one table of IR operations.

Every IR operation has one `OpInfo` record here: its name, its operand and result types
(fixed, or computed by a small rule for the polymorphic and module-dependent ops), its
immediate fields, and a side-effect/trap classification (`Effect` flags).

Naming: IR value ops are named exactly as the Wasm instructions they come from
("i32.add", "f64.sqrt", "i8x16.shuffle", "i32.load8_u", "v128.load32_lane"...), so the
exact semantics in `ir.numerics.OPS` apply by name. Constants are "i32.const" ...
"v128.const" whose immediate is the bit pattern. The rest of Wasm appears as IR ops with
explicit immediates: memory ops carry `mem` and `offset` (and `lane`), `call` its function
index, `call_indirect` its type and table indices, and so on.

Terminators (flag `CONTROL`, `terminator=True`) end a block: `jump`, `br_if`, `br_table`,
`return`, `unreachable`, `trap` (with a message: the lifter's explicit trap), `return_call`
and `return_call_indirect`. Their branch targets are not operands; they live in the
instruction's `targets` (see `function.py`).

The table is generated from a few families (e.g. `i32.add` is `[i32 i32] -> [i32]` because
"add" is a binary op of the integer family), not written out op by op.

`Effect` flags: `PURE` (no flag) means the op can be removed when unused, moved freely and
merged with an identical op; `MAY_TRAP` ops can trap; `READS_MEM`/`WRITES_MEM` mean the op
reads/writes instance state (linear memory, a table, a global or a segment: `resource`
says which); `CALL` runs arbitrary code; `CONTROL` marks terminators.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Callable

from deadeye.ir.errors import ValidationError
from deadeye.ir.types import FuncType, ValType

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF


class Effect(enum.IntFlag):
    PURE = 0
    MAY_TRAP = 1
    READS_MEM = 2
    WRITES_MEM = 4
    CALL = 8
    CONTROL = 16


@dataclass(frozen=True, slots=True)
class Imm:
    """One immediate field. `kind` says how to check and print it:
    index kinds "func" "type" "table" "mem" "global" "data" "elem" (u32 indices into the
    module's index spaces), "offset" (u64), "lane" (0 <= v < `limit`), "i32" "i64" "f32"
    "f64" "v128" (bit patterns), "reftype" (a `ValType` reference type), "str", and
    "shuffle" (a tuple of 16 lane indices below 32)."""

    name: str
    kind: str
    limit: int = 0


INDEX_KINDS = ("func", "type", "table", "mem", "global", "data", "elem")
BITS = {"i32": 32, "i64": 64, "f32": 32, "f64": 64, "v128": 128}

# A type rule: (op, imm, operand types, module env or None) -> (operand types, result
# types), or None when the answer needs a module env that is not available.
Rule = Callable[["OpInfo", tuple, tuple, object], "tuple[tuple, tuple] | None"]


@dataclass(frozen=True, slots=True, eq=False)
class OpInfo:
    name: str
    params: tuple[ValType, ...] | None  # fixed operand types, or None: see `rule`
    results: tuple[ValType, ...] | None
    imm: tuple[Imm, ...]
    effects: Effect
    rule: Rule | None = None
    terminator: bool = False
    resource: str | None = None  # "memory" "table" "global" "data" "elem" for state ops
    code: int = -1  # dense index into OP_LIST, for table-driven dispatch

    @property
    def is_pure(self) -> bool:
        return self.effects == Effect.PURE

    @property
    def needs_env(self) -> bool:
        """True when result types come from the module (calls, globals, tables)."""
        return self.name in _ENV_RESULT_OPS

    def __repr__(self) -> str:
        return f"<op {self.name}>"


OPS: dict[str, OpInfo] = {}
OP_LIST: list[OpInfo] = []


def _add(name, params, results, imm=(), effects=Effect.PURE, rule=None, terminator=False,
         resource=None):
    assert name not in OPS, name
    info = OpInfo(name, None if params is None else tuple(params),
                  None if results is None else tuple(results), tuple(imm), effects, rule,
                  terminator, resource, len(OP_LIST))
    OPS[name] = info
    OP_LIST.append(info)


def _t(name: str) -> ValType:
    return ValType.from_name(name)


MEMARG = (Imm("mem", "mem"), Imm("offset", "offset"))
LOAD = Effect.READS_MEM | Effect.MAY_TRAP
STORE = Effect.WRITES_MEM | Effect.MAY_TRAP

# --- scalar numeric families -------------------------------------------------------------
for t in ("i32", "i64", "f32", "f64"):
    _add(f"{t}.const", (), (_t(t),), (Imm("value", t),))

_INT_UN = "clz ctz popcnt extend8_s extend16_s"
_INT_BIN = "add sub mul and or xor shl shr_s shr_u rotl rotr"
_INT_TRAPPING = "div_s div_u rem_s rem_u"
_INT_CMP = "eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u"
_FLT_UN = "abs neg ceil floor trunc nearest sqrt"
_FLT_BIN = "add sub mul div min max copysign"
_FLT_CMP = "eq ne lt gt le ge"
for t in ("i32", "i64"):
    T = _t(t)
    _add(f"{t}.eqz", (T,), (I32,))
    for op in _INT_UN.split() + (["extend32_s"] if t == "i64" else []):
        _add(f"{t}.{op}", (T,), (T,))
    for op in _INT_BIN.split():
        _add(f"{t}.{op}", (T, T), (T,))
    for op in _INT_TRAPPING.split():
        _add(f"{t}.{op}", (T, T), (T,), effects=Effect.MAY_TRAP)
    for op in _INT_CMP.split():
        _add(f"{t}.{op}", (T, T), (I32,))
for t in ("f32", "f64"):
    T = _t(t)
    for op in _FLT_UN.split():
        _add(f"{t}.{op}", (T,), (T,))
    for op in _FLT_BIN.split():
        _add(f"{t}.{op}", (T, T), (T,))
    for op in _FLT_CMP.split():
        _add(f"{t}.{op}", (T, T), (I32,))

# conversions: "to.op_from" -> [from] -> [to]
_CONVERSIONS = """
i32.wrap_i64 i64.extend_i32_s i64.extend_i32_u f32.demote_f64 f64.promote_f32
i32.reinterpret_f32 i64.reinterpret_f64 f32.reinterpret_i32 f64.reinterpret_i64
"""
for name in _CONVERSIONS.split():
    _add(name, (_t(re.search(r"_([if](?:32|64))", name).group(1)),), (_t(name[:3]),))
for to in ("i32", "i64"):
    for frm in ("f32", "f64"):
        for sign in "su":
            _add(f"{to}.trunc_{frm}_{sign}", (_t(frm),), (_t(to),), effects=Effect.MAY_TRAP)
            _add(f"{to}.trunc_sat_{frm}_{sign}", (_t(frm),), (_t(to),))
for to in ("f32", "f64"):
    for frm in ("i32", "i64"):
        for sign in "su":
            _add(f"{to}.convert_{frm}_{sign}", (_t(frm),), (_t(to),))

# --- memory ------------------------------------------------------------------------------
_LOADS = {
    "i32": "load load8_s load8_u load16_s load16_u",
    "i64": "load load8_s load8_u load16_s load16_u load32_s load32_u",
    "f32": "load", "f64": "load",
    "v128": "load load8x8_s load8x8_u load16x4_s load16x4_u load32x2_s load32x2_u "
            "load8_splat load16_splat load32_splat load64_splat load32_zero load64_zero",
}
_STORES = {"i32": "store store8 store16", "i64": "store store8 store16 store32",
           "f32": "store", "f64": "store", "v128": "store"}
for t, ops in _LOADS.items():
    for op in ops.split():
        _add(f"{t}.{op}", (I32,), (_t(t),), MEMARG, LOAD, resource="memory")
for t, ops in _STORES.items():
    for op in ops.split():
        _add(f"{t}.{op}", (I32, _t(t)), (), MEMARG, STORE, resource="memory")
for bits in (8, 16, 32, 64):
    lane = Imm("lane", "lane", 128 // bits)
    _add(f"v128.load{bits}_lane", (I32, V128), (V128,), MEMARG + (lane,), LOAD,
         resource="memory")
    _add(f"v128.store{bits}_lane", (I32, V128), (), MEMARG + (lane,), STORE,
         resource="memory")

_MEM = Imm("mem", "mem")
_add("memory.size", (), (I32,), (_MEM,), Effect.READS_MEM, resource="memory")
_add("memory.grow", (I32,), (I32,), (_MEM,), Effect.READS_MEM | Effect.WRITES_MEM,
     resource="memory")
_add("memory.copy", (I32, I32, I32), (), (Imm("dst", "mem"), Imm("src", "mem")), LOAD | STORE,
     resource="memory")
_add("memory.fill", (I32, I32, I32), (), (_MEM,), STORE, resource="memory")
_add("memory.init", (I32, I32, I32), (), (Imm("data", "data"), _MEM), LOAD | STORE,
     resource="memory")
_add("data.drop", (), (), (Imm("data", "data"),), Effect.WRITES_MEM, resource="data")

# --- SIMD --------------------------------------------------------------------------------
_add("v128.const", (), (V128,), (Imm("value", "v128"),))
_add("i8x16.shuffle", (V128, V128), (V128,), (Imm("lanes", "shuffle"),))
_SHAPES = {"i8x16": (I32, 16), "i16x8": (I32, 8), "i32x4": (I32, 4), "i64x2": (I64, 2),
           "f32x4": (F32, 4), "f64x2": (F64, 2)}
for shape, (scalar, lanes) in _SHAPES.items():
    lane = (Imm("lane", "lane", lanes),)
    _add(f"{shape}.splat", (scalar,), (V128,))
    for suffix in (("_s", "_u") if lanes > 4 else ("",)):
        _add(f"{shape}.extract_lane{suffix}", (V128,), (scalar,), lane)
    _add(f"{shape}.replace_lane", (V128, scalar), (V128,), lane)

# shape -> (unary v->v, binary vv->v, v->i32 tests, shifts v,i32->v, comparisons)
_SIMD = {
    "i8x16": ("abs neg popcnt", "swizzle add add_sat_s add_sat_u sub sub_sat_s sub_sat_u "
              "min_s min_u max_s max_u avgr_u narrow_i16x8_s narrow_i16x8_u"),
    "i16x8": ("abs neg extadd_pairwise_i8x16_s extadd_pairwise_i8x16_u extend_low_i8x16_s "
              "extend_high_i8x16_s extend_low_i8x16_u extend_high_i8x16_u",
              "add add_sat_s add_sat_u sub sub_sat_s sub_sat_u mul min_s min_u max_s max_u "
              "avgr_u q15mulr_sat_s narrow_i32x4_s narrow_i32x4_u extmul_low_i8x16_s "
              "extmul_high_i8x16_s extmul_low_i8x16_u extmul_high_i8x16_u"),
    "i32x4": ("abs neg extadd_pairwise_i16x8_s extadd_pairwise_i16x8_u extend_low_i16x8_s "
              "extend_high_i16x8_s extend_low_i16x8_u extend_high_i16x8_u trunc_sat_f32x4_s "
              "trunc_sat_f32x4_u trunc_sat_f64x2_s_zero trunc_sat_f64x2_u_zero",
              "add sub mul min_s min_u max_s max_u dot_i16x8_s extmul_low_i16x8_s "
              "extmul_high_i16x8_s extmul_low_i16x8_u extmul_high_i16x8_u"),
    "i64x2": ("abs neg extend_low_i32x4_s extend_high_i32x4_s extend_low_i32x4_u "
              "extend_high_i32x4_u",
              "add sub mul extmul_low_i32x4_s extmul_high_i32x4_s extmul_low_i32x4_u "
              "extmul_high_i32x4_u"),
    "f32x4": ("abs neg sqrt ceil floor trunc nearest convert_i32x4_s convert_i32x4_u "
              "demote_f64x2_zero", "add sub mul div min max pmin pmax"),
    "f64x2": ("abs neg sqrt ceil floor trunc nearest convert_low_i32x4_s convert_low_i32x4_u "
              "promote_low_f32x4", "add sub mul div min max pmin pmax"),
}
_SIMD_CMP = {"i8x16": _INT_CMP, "i16x8": _INT_CMP, "i32x4": _INT_CMP,
             "i64x2": "eq ne lt_s gt_s le_s ge_s", "f32x4": _FLT_CMP, "f64x2": _FLT_CMP}
for shape, (unary, binary) in _SIMD.items():
    for op in unary.split():
        _add(f"{shape}.{op}", (V128,), (V128,))
    for op in binary.split() + _SIMD_CMP[shape].split():
        _add(f"{shape}.{op}", (V128, V128), (V128,))
    if shape[0] == "i":
        _add(f"{shape}.all_true", (V128,), (I32,))
        _add(f"{shape}.bitmask", (V128,), (I32,))
        for op in ("shl", "shr_s", "shr_u"):
            _add(f"{shape}.{op}", (V128, I32), (V128,))
_add("v128.not", (V128,), (V128,))
for op in ("and", "andnot", "or", "xor"):
    _add(f"v128.{op}", (V128, V128), (V128,))
_add("v128.bitselect", (V128, V128, V128), (V128,))
_add("v128.any_true", (V128,), (I32,))


# --- polymorphic and module-dependent ops ------------------------------------------------
def _fail(msg):
    raise ValidationError(msg)


def _env_list(env, attr, index, what):
    if env is None:
        return None
    items = getattr(env, attr)
    if not 0 <= index < len(items):
        _fail(f"{what} index {index} out of range (module has {len(items)})")
    return items[index]


def _func_type(env, index) -> FuncType | None:
    if env is None:
        return None
    n = len(env.func_types)
    if not 0 <= index < n:
        _fail(f"function index {index} out of range (module has {n})")
    return _env_list(env, "types", env.func_types[index], "type")


def _rule_select(op, imm, args, env):
    t = args[0] if args else I32
    return (t, t, I32), (t,)


def _rule_call(op, imm, args, env):
    ft = _func_type(env, imm[0])
    return None if ft is None else (ft.params, ft.results)


def _indirect(env, imm):
    ft = _env_list(env, "types", imm[0], "type")
    if ft is not None and _env_list(env, "tables", imm[1], "table") != FUNCREF:
        _fail(f"table {imm[1]} does not hold funcref")
    return ft


def _rule_call_indirect(op, imm, args, env):
    ft = _indirect(env, imm)
    return None if ft is None else (ft.params + (I32,), ft.results)


def _rule_return_call(op, imm, args, env):
    ft = _func_type(env, imm[0])
    return None if ft is None else (ft.params, ())


def _rule_return_call_indirect(op, imm, args, env):
    ft = _indirect(env, imm)
    return None if ft is None else (ft.params + (I32,), ())


def _rule_global_get(op, imm, args, env):
    g = _env_list(env, "globals", imm[0], "global")
    return None if g is None else ((), (g[0],))


def _rule_global_set(op, imm, args, env):
    g = _env_list(env, "globals", imm[0], "global")
    if g is None:
        return None
    if not g[1]:
        _fail(f"global {imm[0]} is immutable")
    return (g[0],), ()


def _table_rule(params, results):
    """A table op whose operand/result pattern mentions the element type as None."""

    def rule(op, imm, args, env):
        elem = _env_list(env, "tables", imm[0], "table")
        if elem is None:
            return None
        sub = lambda ts: tuple(elem if t is None else t for t in ts)  # noqa: E731
        return sub(params), sub(results)

    return rule


def _rule_ref_null(op, imm, args, env):
    return (), (imm[0],)


def _rule_ref_is_null(op, imm, args, env):
    t = args[0] if args else FUNCREF
    if not t.is_ref:
        _fail(f"ref.is_null needs a reference operand, got {t}")
    return (t,), (I32,)


def _rule_return(op, imm, args, env):
    # The verifier checks `return` against the enclosing function's results.
    return tuple(args), ()


_TABLE = Imm("table", "table")
_add("select", None, None, (), rule=_rule_select)
_add("global.get", None, None, (Imm("index", "global"),), Effect.READS_MEM,
     rule=_rule_global_get, resource="global")
_add("global.set", None, (), (Imm("index", "global"),), Effect.WRITES_MEM,
     rule=_rule_global_set, resource="global")
_add("table.get", None, None, (_TABLE,), Effect.READS_MEM | Effect.MAY_TRAP,
     rule=_table_rule((I32,), (None,)), resource="table")
_add("table.set", None, (), (_TABLE,), Effect.WRITES_MEM | Effect.MAY_TRAP,
     rule=_table_rule((I32, None), ()), resource="table")
_add("table.size", (), (I32,), (_TABLE,), Effect.READS_MEM, resource="table")
_add("table.grow", None, (I32,), (_TABLE,), Effect.READS_MEM | Effect.WRITES_MEM,
     rule=_table_rule((None, I32), (I32,)), resource="table")
_add("table.fill", None, (), (_TABLE,), STORE,
     rule=_table_rule((I32, None, I32), ()), resource="table")
_add("table.copy", (I32, I32, I32), (), (Imm("dst", "table"), Imm("src", "table")),
     LOAD | STORE, resource="table")
_add("table.init", (I32, I32, I32), (), (Imm("elem", "elem"), _TABLE), LOAD | STORE,
     resource="table")
_add("elem.drop", (), (), (Imm("elem", "elem"),), Effect.WRITES_MEM, resource="elem")
_add("ref.null", None, None, (Imm("type", "reftype"),), rule=_rule_ref_null)
_add("ref.is_null", None, (I32,), (), rule=_rule_ref_is_null)
_add("ref.func", (), (FUNCREF,), (Imm("func", "func"),))
_CALL = Effect.CALL | Effect.MAY_TRAP | Effect.READS_MEM | Effect.WRITES_MEM
_add("call", None, None, (Imm("func", "func"),), _CALL, rule=_rule_call)
_add("call_indirect", None, None, (Imm("type", "type"), _TABLE), _CALL,
     rule=_rule_call_indirect)

# --- terminators (branch targets live in Instruction.targets) ------------------------------
_CTL = Effect.CONTROL
_add("jump", (), (), (), _CTL, terminator=True)
_add("br_if", (I32,), (), (), _CTL, terminator=True)
_add("br_table", (I32,), (), (), _CTL, terminator=True)
_add("return", None, (), (), _CTL, rule=_rule_return, terminator=True)
_add("unreachable", (), (), (), _CTL | Effect.MAY_TRAP, terminator=True)
_add("trap", (), (), (Imm("message", "str"),), _CTL | Effect.MAY_TRAP, terminator=True)
_add("return_call", None, (), (Imm("func", "func"),), _CTL | _CALL, rule=_rule_return_call,
     terminator=True)
_add("return_call_indirect", None, (), (Imm("type", "type"), _TABLE), _CTL | _CALL,
     rule=_rule_return_call_indirect, terminator=True)

# Ops whose result types cannot be computed from operand types and immediates alone.
_ENV_RESULT_OPS = frozenset({"call", "call_indirect", "global.get", "table.get"})
# How many successors each terminator has: None = any number (br_table, at least one).
TARGET_COUNT = {"jump": 1, "br_if": 2, "br_table": None, "return": 0, "unreachable": 0,
                "trap": 0, "return_call": 0, "return_call_indirect": 0}


def op(name: str) -> OpInfo:
    """The record for `name`; raises ValidationError for an unknown op."""
    info = OPS.get(name)
    if info is None:
        raise ValidationError(f"unknown IR op {name!r}")
    return info


def signature(info: OpInfo, imm: tuple, arg_types: tuple, env=None):
    """(operand types, result types) of one use of `info`, or None when that needs a
    module env and `env` is None. Raises ValidationError for a bad index or operand kind."""
    if info.rule is None:
        return info.params, info.results
    return info.rule(info, imm, tuple(arg_types), env)


def check_imm(info: OpInfo, imm: tuple, env=None) -> list[str]:
    """Problems with the immediates of one use of `info` (empty when fine). With a module
    env, index immediates are also checked against its index spaces."""
    if len(imm) != len(info.imm):
        return [f"{info.name} takes {len(info.imm)} immediate(s), got {len(imm)}"]
    problems = []
    for field, value in zip(info.imm, imm):
        kind = field.kind
        if kind == "str":
            ok = isinstance(value, str)
        elif kind == "reftype":
            ok = isinstance(value, ValType) and value.is_ref
        elif kind == "shuffle":
            ok = (isinstance(value, tuple) and len(value) == 16
                  and all(type(v) is int and 0 <= v < 32 for v in value))
        elif type(value) is not int:
            ok = False
        elif kind == "lane":
            ok = 0 <= value < field.limit
        elif kind in BITS:
            ok = 0 <= value < (1 << BITS[kind])
        elif kind == "offset":
            ok = 0 <= value < (1 << 64)
        else:
            ok = 0 <= value < (1 << 32)
            if ok and env is not None:
                count = env.index_space_size(kind)
                if value >= count:
                    problems.append(f"{info.name}: {field.kind} {value} out of range "
                                    f"(module has {count})")
                    continue
        if not ok:
            problems.append(f"{info.name}: bad immediate {field.name}={value!r}")
    return problems
