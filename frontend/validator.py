"""The Wasm validator: module-level checks and the spec's operand/control-stack
algorithm for function bodies.

The plain operators (everything with a stack signature in `opcodes.py`) are checked
generically from the table; only control, variables, calls, references, tables and
bulk memory have handlers here. Value types on the operand stack are `ValType`s, with
`UNKNOWN` (0) for the bottom type produced after unreachable code."""

from __future__ import annotations

from deadeye.ir.errors import DecodeError, ValidationError
from deadeye.ir.types import FuncType, ValType

from .decoder import decode_body_raw
from .module import ConstExpr, GlobalType, Limits, Module, TableType
from .opcodes import OPS, OpInfo, block_signature

I32, I64, F32, F64, V128 = ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF
UNKNOWN = 0
_NUM_OR_VEC = frozenset({I32, I64, F32, F64, V128, UNKNOWN})
_REFS = frozenset({FUNCREF, EXTERNREF, UNKNOWN})

MAX_PAGES = 65536
# Frame fields (frames are small lists for speed).
KIND, START, END, HEIGHT, UNREACH = range(5)

# Per-op lists for the generic path: params as a list (to compare with a stack slice)
# and results, keyed by the op's name (str hashes are cached, OpInfo hashes are not).
_PLAIN = {
    name: (list(info.params), list(info.results), len(info.params))
    for name, info in OPS.items()
    if info.is_plain
}


class Context:
    """The module's index spaces, flattened once for validation (and handy for the
    lifter: every function's type, every table, memory and global type by index)."""

    __slots__ = ("types", "funcs", "tables", "memories", "globals", "num_elems", "data_count", "refs",
                 "elem_types", "features", "module_checked")

    def __init__(self, m: Module):
        self.types = m.types
        self.module_checked = False  # module-level rules passed (so every type index exists)
        self.funcs: list[FuncType | None] = []
        self.tables: list[TableType] = []
        self.memories: list = []
        self.globals: list[GlobalType] = []
        for imp in m.imports:
            if imp.kind == "func":
                self.funcs.append(m.types[imp.desc] if imp.desc < len(m.types) else None)
            elif imp.kind == "table":
                self.tables.append(imp.desc)
            elif imp.kind == "memory":
                self.memories.append(imp.desc)
            else:
                self.globals.append(imp.desc)
        self.funcs.extend(m.types[t] if t < len(m.types) else None for t in m.func_types)
        self.tables.extend(m.tables)
        self.memories.extend(m.memories)
        self.globals.extend(g.type for g in m.globals)
        self.num_elems = len(m.elems)
        self.elem_types = [e.elem_type for e in m.elems]
        self.data_count = m.data_count
        self.features = m.features
        # Functions that `ref.func` may name: those referenced outside function bodies.
        refs = set()
        exprs = [g.init for g in m.globals]
        for e in m.elems:
            exprs.extend(e.items)
        for expr in exprs:
            for ins in expr.instrs:
                if ins.op == "ref.func":
                    refs.add(ins.imm[0])
        refs.update(e.index for e in m.exports if e.kind == "func")
        self.refs = refs


def module_context(m: Module) -> Context:
    """The module's flattened index spaces (built once, cached on the module)."""
    ctx = m.validation_context
    if ctx is None:
        ctx = m.validation_context = Context(m)
    return ctx


# -- module level -------------------------------------------------------------------------


def validate_module(m: Module, bodies: bool = True) -> None:
    """Validate everything but (unless `bodies`) the function bodies."""
    ctx = module_context(m)
    if not ctx.module_checked:
        _validate_module_level(m, ctx)
        ctx.module_checked = True
    if bodies:
        for i in range(len(m.func_types)):
            validate_function(m, i)


def _validate_module_level(m: Module, ctx: Context) -> None:
    ntypes = len(m.types)
    offsets = m.entity_offsets

    def at(kind: str, i: int) -> int | None:
        lst = offsets.get(kind, ())
        return lst[i] if 0 <= i < len(lst) else None

    for i, imp in enumerate(m.imports):
        if imp.kind == "func" and imp.desc >= ntypes:
            raise ValidationError(f"unknown type {imp.desc}", at("import", i))
        if imp.kind == "table":
            _check_table_limits(imp.desc.limits, at("import", i))
        elif imp.kind == "memory":
            _check_memory_limits(imp.desc.limits, at("import", i))
    for i, t in enumerate(m.func_types):
        if t >= ntypes:
            raise ValidationError(f"unknown type {t}", at("func", i), m.num_imported_funcs + i)
    for i, t in enumerate(m.tables):
        _check_table_limits(t.limits, at("table", i))
    for i, mem in enumerate(m.memories):
        _check_memory_limits(mem.limits, at("memory", i))
    if len(ctx.memories) > 1 and not m.features.multi_memory:
        second = [i for i, imp in enumerate(m.imports) if imp.kind == "memory"][1:2]
        where = at("import", second[0]) if second else at("memory", 1 - m.num_imported_memories)
        raise ValidationError("multiple memories", where)

    # Constant expressions (global initialisers, segment offsets and items) see only
    # the imported globals (Wasm 2.0 and the extended-const proposal).
    nglobals = m.num_imported_globals
    for g in m.globals:
        validate_const_expr(ctx, g.init, g.type.valtype, nglobals)

    seen = set()
    limits = {"func": len(ctx.funcs), "table": len(ctx.tables), "memory": len(ctx.memories),
              "global": len(ctx.globals)}
    for i, e in enumerate(m.exports):
        if e.index >= limits[e.kind]:
            raise ValidationError(f"unknown {'function' if e.kind == 'func' else e.kind} {e.index}",
                                  at("export", i))
        if e.name in seen:
            raise ValidationError(f"duplicate export name {e.name!r}", at("export", i))
        seen.add(e.name)

    if m.start is not None:
        if m.start >= len(ctx.funcs):
            raise ValidationError(f"unknown function {m.start}", at("start", 0))
        ft = ctx.funcs[m.start]
        if ft.params or ft.results:
            raise ValidationError("start function must have type [] -> []", at("start", 0))

    for seg in m.elems:
        for item in seg.items:
            validate_const_expr(ctx, item, seg.elem_type, nglobals)
        if seg.mode == "active":
            if seg.table >= len(ctx.tables):
                raise ValidationError(f"unknown table {seg.table}", seg.offset.offset)
            if ctx.tables[seg.table].elem != seg.elem_type:
                raise ValidationError("type mismatch: element segment type differs from its table's",
                                      seg.offset.offset)
            validate_const_expr(ctx, seg.offset, I32, nglobals)
    for seg in m.datas:
        if seg.mode == "active":
            if seg.memory >= len(ctx.memories):
                raise ValidationError(f"unknown memory {seg.memory}", seg.offset.offset)
            validate_const_expr(ctx, seg.offset, I32, nglobals)


def _check_table_limits(lim: Limits, offset: int | None) -> None:
    if lim.max is not None and lim.min > lim.max:
        raise ValidationError("size minimum must not be greater than maximum", offset)


def _check_memory_limits(lim: Limits, offset: int | None) -> None:
    if lim.min > MAX_PAGES or (lim.max is not None and lim.max > MAX_PAGES):
        raise ValidationError("memory size must be at most 65536 pages (4GiB)", offset)
    if lim.max is not None and lim.min > lim.max:
        raise ValidationError("size minimum must not be greater than maximum", offset)


_EXTENDED = frozenset({"i32.add", "i32.sub", "i32.mul", "i64.add", "i64.sub", "i64.mul"})


def validate_const_expr(ctx: Context, expr: ConstExpr, expected: ValType, nglobals: int) -> None:
    """A constant expression of type `expected`; `global.get` may name the first
    `nglobals` globals, and only immutable ones."""
    stack: list[ValType] = []
    for ins in expr.instrs:
        info = OPS[ins.op]
        if not info.const or (ins.op in _EXTENDED and not ctx.features.extended_const):
            raise ValidationError("constant expression required", ins.offset)
        op = ins.op
        if op == "global.get":
            g = ins.imm[0]
            if g >= nglobals:
                raise ValidationError(f"unknown global {g}", ins.offset)
            gt = ctx.globals[g]
            if gt.mutable:
                raise ValidationError("constant expression required", ins.offset)
            stack.append(gt.valtype)
        elif op == "ref.func":
            f = ins.imm[0]
            if f >= len(ctx.funcs):
                raise ValidationError(f"unknown function {f}", ins.offset)
            stack.append(FUNCREF)
        elif op == "ref.null":
            stack.append(ins.imm[0])
        else:
            n = len(info.params)
            if len(stack) < n or tuple(stack[len(stack) - n :]) != info.params:
                raise ValidationError("type mismatch", ins.offset)
            del stack[len(stack) - n :]
            stack.extend(info.results)
    if stack != [expected]:
        raise ValidationError("type mismatch", expr.offset)


# -- function bodies ----------------------------------------------------------------------


def validate_function(m: Module, defined_index: int) -> None:
    """Validate the body of defined function `defined_index` (a no-op once it passed)."""
    if defined_index in m.validated:
        return
    ctx = module_context(m)
    if not ctx.module_checked:  # e.g. after parse_module(validate="none")
        validate_module(m, bodies=False)
    func_index = m.num_imported_funcs + defined_index
    ft = ctx.funcs[func_index]
    locals_, instrs = decode_body_raw(m, defined_index)
    try:
        _FuncValidator(ctx, ft, list(ft.params) + locals_, func_index).run(instrs)
    except ValidationError as e:
        if e.func_index is None:
            raise ValidationError(e.message, e.offset, func_index) from None
        raise
    except DecodeError as e:
        raise DecodeError(e.message, e.offset, func_index) from None
    m.validated.add(defined_index)


class _FuncValidator:
    __slots__ = ("ctx", "ft", "locals", "func_index", "stack", "ctrls")

    def __init__(self, ctx: Context, ft: FuncType, locals_: list, func_index: int):
        self.ctx = ctx
        self.ft = ft
        self.locals = locals_
        self.func_index = func_index
        self.stack: list = []
        self.ctrls: list = []

    # -- the spec's primitives --
    def pop(self, expected, off):
        stack = self.stack
        frame = self.ctrls[-1]
        if len(stack) == frame[HEIGHT]:
            if frame[UNREACH]:
                return UNKNOWN
            raise ValidationError(_mismatch(expected, None), off)
        actual = stack.pop()
        if actual != expected and expected and actual:
            raise ValidationError(_mismatch(expected, actual), off)
        return actual

    def pop_vals(self, types, off) -> None:
        stack = self.stack
        n = len(types)
        frame = self.ctrls[-1]
        # fast path: the top of the stack is exactly these types
        if n and len(stack) - frame[HEIGHT] >= n and stack[-n:] == list(types):
            del stack[-n:]
            return
        for t in reversed(types):
            self.pop(t, off)

    def push_ctrl(self, kind: str, start, end) -> None:
        self.ctrls.append([kind, start, end, len(self.stack), False])
        self.stack.extend(start)

    def pop_ctrl(self, off):
        frame = self.ctrls[-1]
        self.pop_vals(frame[END], off)
        if len(self.stack) != frame[HEIGHT]:
            raise ValidationError("type mismatch: values remaining on the stack at end of block", off)
        self.ctrls.pop()
        return frame

    def unreachable(self) -> None:
        frame = self.ctrls[-1]
        del self.stack[frame[HEIGHT] :]
        frame[UNREACH] = True

    def label(self, depth: int, off):
        if depth >= len(self.ctrls):
            raise ValidationError(f"unknown label {depth}", off)
        frame = self.ctrls[-1 - depth]
        return frame[START] if frame[KIND] == "loop" else frame[END]

    def block_type(self, bt, off) -> tuple[tuple, tuple]:
        if type(bt) is int and bt >= len(self.ctx.types):
            raise ValidationError(f"unknown type {bt}", off)
        return block_signature(self.ctx.types, bt)

    def memory(self, idx: int, off) -> None:
        if idx >= len(self.ctx.memories):
            raise ValidationError(f"unknown memory {idx}", off)

    def table(self, idx: int, off) -> TableType:
        if idx >= len(self.ctx.tables):
            raise ValidationError(f"unknown table {idx}", off)
        return self.ctx.tables[idx]

    def func_type(self, idx: int, off) -> FuncType:
        if idx >= len(self.ctx.funcs):
            raise ValidationError(f"unknown function {idx}", off)
        return self.ctx.funcs[idx]

    def type_at(self, idx: int, off) -> FuncType:
        if idx >= len(self.ctx.types):
            raise ValidationError(f"unknown type {idx}", off)
        return self.ctx.types[idx]

    # -- the main loop --
    def run(self, instrs) -> None:
        self.ctrls.append(["func", (), self.ft.results, 0, False])
        stack = self.stack
        ctrls = self.ctrls
        plain = _PLAIN
        handlers = _HANDLERS
        imm_checks = _IMM_CHECKS
        for info, imm, off in instrs:
            name = info.name
            p = plain.get(name)
            if p is not None:
                params, results, n = p
                if n:
                    if len(stack) - ctrls[-1][HEIGHT] >= n and stack[-n:] == params:
                        del stack[-n:]
                    else:
                        for t in reversed(params):
                            self.pop(t, off)
                if results:
                    stack.extend(results)
                if imm:
                    check = imm_checks.get(info.imm)
                    if check is not None:
                        check(self, info, imm, off)
            else:
                handlers[name](self, info, imm, off)


def _mismatch(expected, actual) -> str:
    e = str(ValType(expected)) if expected else "a value"
    a = str(ValType(actual)) if actual else "nothing"
    return f"type mismatch: expected {e}, found {a}"


# -- immediate checks of the plain operators ----------------------------------------------


def _check_memarg(v: _FuncValidator, info: OpInfo, imm, off) -> None:
    v.memory(imm[2], off)
    if imm[0] > info.align:
        raise ValidationError("alignment must not be larger than natural", off)


def _check_memarg_lane(v: _FuncValidator, info: OpInfo, imm, off) -> None:
    _check_memarg(v, info, imm, off)
    if imm[3] >= info.lanes:
        raise ValidationError("invalid lane index", off)


def _check_lane(v: _FuncValidator, info: OpInfo, imm, off) -> None:
    if imm[0] >= info.lanes:
        raise ValidationError("invalid lane index", off)


def _check_shuffle(v: _FuncValidator, info: OpInfo, imm, off) -> None:
    if max(imm[0]) >= 32:
        raise ValidationError("invalid lane index", off)


_IMM_CHECKS = {
    "memarg": _check_memarg,
    "memarg+lane": _check_memarg_lane,
    "lane": _check_lane,
    "shuffle16": _check_shuffle,
}


# -- handlers of the context-dependent ops --------------------------------------------------

_HANDLERS = {}


def _handler(*names: str):
    def deco(fn):
        for n in names:
            assert n in OPS and not OPS[n].is_plain, n
            _HANDLERS[n] = fn
        return fn

    return deco


@_handler("nop")
def _nop(v, info, imm, off):
    pass


@_handler("unreachable")
def _unreachable(v, info, imm, off):
    v.unreachable()


@_handler("block", "loop")
def _block(v, info, imm, off):
    params, results = v.block_type(imm[0], off)
    v.pop_vals(params, off)
    v.push_ctrl(info.name, params, results)


@_handler("if")
def _if(v, info, imm, off):
    params, results = v.block_type(imm[0], off)
    v.pop(I32, off)
    v.pop_vals(params, off)
    v.push_ctrl("if", params, results)


@_handler("else")
def _else(v, info, imm, off):
    if v.ctrls[-1][KIND] != "if":
        raise DecodeError("else without matching if", off)
    frame = v.pop_ctrl(off)
    v.push_ctrl("else", frame[START], frame[END])


@_handler("end")
def _end(v, info, imm, off):
    frame = v.pop_ctrl(off)
    if frame[KIND] == "if" and tuple(frame[START]) != tuple(frame[END]):
        raise ValidationError("type mismatch: if without else must leave its parameters", off)
    if v.ctrls:
        v.stack.extend(frame[END])


@_handler("br")
def _br(v, info, imm, off):
    v.pop_vals(v.label(imm[0], off), off)
    v.unreachable()


@_handler("br_if")
def _br_if(v, info, imm, off):
    labels = v.label(imm[0], off)
    v.pop(I32, off)
    v.pop_vals(labels, off)
    v.stack.extend(labels)


@_handler("br_table")
def _br_table(v, info, imm, off):
    targets, default = imm
    v.pop(I32, off)
    default_types = v.label(default, off)
    arity = len(default_types)
    for t in targets:
        types = v.label(t, off)
        if len(types) != arity:
            raise ValidationError("type mismatch: br_table targets have different arities", off)
        # check against each label without consuming (the spec's pop-then-push)
        popped = [v.pop(ty, off) for ty in reversed(types)]
        v.stack.extend(reversed(popped))
    v.pop_vals(default_types, off)
    v.unreachable()


@_handler("return")
def _return(v, info, imm, off):
    v.pop_vals(v.ft.results, off)
    v.unreachable()


@_handler("call")
def _call(v, info, imm, off):
    ft = v.func_type(imm[0], off)
    v.pop_vals(ft.params, off)
    v.stack.extend(ft.results)


def _indirect_type(v, imm, off) -> FuncType:
    typeidx, tableidx = imm
    if v.table(tableidx, off).elem != FUNCREF:
        raise ValidationError("type mismatch: call_indirect needs a funcref table", off)
    ft = v.type_at(typeidx, off)
    v.pop(I32, off)
    return ft


@_handler("call_indirect")
def _call_indirect(v, info, imm, off):
    ft = _indirect_type(v, imm, off)
    v.pop_vals(ft.params, off)
    v.stack.extend(ft.results)


def _tail(v, ft: FuncType, off) -> None:
    if tuple(ft.results) != tuple(v.ft.results):
        raise ValidationError("type mismatch: tail call results differ from the caller's", off)
    v.pop_vals(ft.params, off)
    v.unreachable()


@_handler("return_call")
def _return_call(v, info, imm, off):
    _tail(v, v.func_type(imm[0], off), off)


@_handler("return_call_indirect")
def _return_call_indirect(v, info, imm, off):
    _tail(v, _indirect_type(v, imm, off), off)


@_handler("drop")
def _drop(v, info, imm, off):
    v.pop(UNKNOWN, off)


@_handler("select")
def _select(v, info, imm, off):
    v.pop(I32, off)
    t1 = v.pop(UNKNOWN, off)
    t2 = v.pop(UNKNOWN, off)
    if t1 not in _NUM_OR_VEC or t2 not in _NUM_OR_VEC:
        raise ValidationError("type mismatch: select without types needs numeric or vector operands", off)
    if t1 != t2 and t1 and t2:
        raise ValidationError(_mismatch(t1, t2), off)
    v.stack.append(t1 or t2)


@_handler("select_t")
def _select_t(v, info, imm, off):
    types = imm[0]
    if len(types) != 1:
        raise ValidationError("invalid result arity", off)
    t = types[0]
    v.pop(I32, off)
    v.pop(t, off)
    v.pop(t, off)
    v.stack.append(t)


def _local(v, idx, off):
    if idx >= len(v.locals):
        raise ValidationError(f"unknown local {idx}", off)
    return v.locals[idx]


@_handler("local.get")
def _local_get(v, info, imm, off):
    v.stack.append(_local(v, imm[0], off))


@_handler("local.set")
def _local_set(v, info, imm, off):
    v.pop(_local(v, imm[0], off), off)


@_handler("local.tee")
def _local_tee(v, info, imm, off):
    t = _local(v, imm[0], off)
    v.pop(t, off)
    v.stack.append(t)


def _global(v, idx, off) -> GlobalType:
    if idx >= len(v.ctx.globals):
        raise ValidationError(f"unknown global {idx}", off)
    return v.ctx.globals[idx]


@_handler("global.get")
def _global_get(v, info, imm, off):
    v.stack.append(_global(v, imm[0], off).valtype)


@_handler("global.set")
def _global_set(v, info, imm, off):
    g = _global(v, imm[0], off)
    if not g.mutable:
        raise ValidationError("global is immutable", off)
    v.pop(g.valtype, off)


@_handler("table.get")
def _table_get(v, info, imm, off):
    t = v.table(imm[0], off)
    v.pop(I32, off)
    v.stack.append(t.elem)


@_handler("table.set")
def _table_set(v, info, imm, off):
    t = v.table(imm[0], off)
    v.pop(t.elem, off)
    v.pop(I32, off)


@_handler("table.size")
def _table_size(v, info, imm, off):
    v.table(imm[0], off)
    v.stack.append(I32)


@_handler("table.grow")
def _table_grow(v, info, imm, off):
    t = v.table(imm[0], off)
    v.pop(I32, off)
    v.pop(t.elem, off)
    v.stack.append(I32)


@_handler("table.fill")
def _table_fill(v, info, imm, off):
    t = v.table(imm[0], off)
    v.pop(I32, off)
    v.pop(t.elem, off)
    v.pop(I32, off)


def _elem(v, idx, off) -> ValType:
    if idx >= v.ctx.num_elems:
        raise ValidationError(f"unknown elem segment {idx}", off)
    return v.ctx.elem_types[idx]


@_handler("table.copy")
def _table_copy(v, info, imm, off):
    dst, src = v.table(imm[0], off), v.table(imm[1], off)
    if dst.elem != src.elem:
        raise ValidationError("type mismatch: table.copy between tables of different types", off)
    v.pop_vals((I32, I32, I32), off)


@_handler("table.init")
def _table_init(v, info, imm, off):
    et = _elem(v, imm[0], off)
    t = v.table(imm[1], off)
    if t.elem != et:
        raise ValidationError("type mismatch: table.init segment type differs from the table's", off)
    v.pop_vals((I32, I32, I32), off)


@_handler("elem.drop")
def _elem_drop(v, info, imm, off):
    _elem(v, imm[0], off)


@_handler("memory.size")
def _memory_size(v, info, imm, off):
    v.memory(imm[0], off)
    v.stack.append(I32)


@_handler("memory.grow")
def _memory_grow(v, info, imm, off):
    v.memory(imm[0], off)
    v.pop(I32, off)
    v.stack.append(I32)


@_handler("memory.fill")
def _memory_fill(v, info, imm, off):
    v.memory(imm[0], off)
    v.pop_vals((I32, I32, I32), off)


@_handler("memory.copy")
def _memory_copy(v, info, imm, off):
    v.memory(imm[0], off)
    v.memory(imm[1], off)
    v.pop_vals((I32, I32, I32), off)


def _data(v, idx, off) -> None:
    if v.ctx.data_count is None:
        raise DecodeError("data count section required", off)
    if idx >= v.ctx.data_count:
        raise ValidationError(f"unknown data segment {idx}", off)


@_handler("memory.init")
def _memory_init(v, info, imm, off):
    v.memory(imm[1], off)
    _data(v, imm[0], off)
    v.pop_vals((I32, I32, I32), off)


@_handler("data.drop")
def _data_drop(v, info, imm, off):
    _data(v, imm[0], off)


@_handler("ref.null")
def _ref_null(v, info, imm, off):
    v.stack.append(imm[0])


@_handler("ref.is_null")
def _ref_is_null(v, info, imm, off):
    t = v.pop(UNKNOWN, off)
    if t not in _REFS:
        raise ValidationError(f"type mismatch: ref.is_null on {ValType(t)}", off)
    v.stack.append(I32)


@_handler("ref.func")
def _ref_func(v, info, imm, off):
    v.func_type(imm[0], off)
    if imm[0] not in v.ctx.refs:
        raise ValidationError(f"undeclared function reference {imm[0]}", off)
    v.stack.append(FUNCREF)


_missing = {n for n, i in OPS.items() if not i.is_plain} - set(_HANDLERS)
assert not _missing, _missing
