"""LLVM IR for the bytecode ISA: one handler per op, generated from the ISA table.

Every handler has the signature

    i32 handler(i8* pc, i64* fp, i8* mem, i64 memlen, i64* ctx)

`pc` points at the op's first byte in the executor's private code stream, `fp` at slot 0 of
the current frame, `mem`/`memlen` describe memory 0 and `ctx` is the context block (see
`CTX_FIELDS`). The hot state thus travels in the five argument registers of both the
System V x86-64 and the AAPCS64 conventions. A handler decodes its operands at constant
offsets, does its work, finds the next handler and ends in a `musttail` call to it, so a
chain of handlers never grows the native stack. Whatever a handler cannot finish inline
(traps, calls that leave native code, growth, slow ops, fuel exhaustion, the entry frame's
return) stores pc and fp in the context and returns a status to Python.

Dispatch modes (how "find the next handler" is done):
- `direct`: the private code stream holds each op's handler address in place of its
  opcode (8 bytes; the pre-decode pass in `native.py` re-encodes the stream and relocates
  branch offsets); the operands follow at offset 8.
- `indirect`: the stream is the bytecode as encoded; the opcode indexes a table of handler
  addresses (256 primary entries, then the extended page).
- `loop`: one function with a loop around a `switch` on the op index; the op bodies are the
  same templates, with "continue at pc" meaning a branch back to the loop head. The
  fallback for targets without `musttail`.

A fused op's handler is its parts' templates composed (`PartEmit`): one dispatch at the end,
the value a part writes passed to the next part in a machine register when it is linked.

Semantics templates come from `ir.numerics` by op name (the ISA row's `numerics` field);
ops without an inline template (everything outside `native_ops()`: tables but for
`table.size` and `call_indirect`, `ref.func`, segments, bulk memory but for memory 0's
`memory.copy`/`memory.fill`) and accesses to memories other than 0 return
`SLOW`/`GROW`/`HOST_CALL`, and `native.py` runs them with the ISA's reference semantics on
the same registers.
"""

from __future__ import annotations

import re

import llvmlite.ir as ir

from deadeye.interp.isa.table import ESCAPE, EXTENDED, OP_LIST, Op, Status, _access_bytes, trap_code
from deadeye.ir import numerics

I1, I8, I16, I32, I64, I128 = (ir.IntType(n) for n in (1, 8, 16, 32, 64, 128))
F32, F64 = ir.FloatType(), ir.DoubleType()
P8, P64 = I8.as_pointer(), I64.as_pointer()
HTY = ir.FunctionType(I32, [P8, P64, P8, I64, P64])
HPTR = HTY.as_pointer()

# Our statuses beyond the ISA's: run this op in Python (reference semantics) and resume;
# the store's interrupt flag was seen set (at a backward branch or a tail call: every
# unbounded execution passes one; plain calls are bounded by the call depth).
SLOW = 6
INTERRUPTED = 7
STATUS_NAMES = {**{s.value: s.name for s in Status}, SLOW: "SLOW", INTERRUPTED: "INTERRUPTED"}

# Context block: i64 fields. `interrupt` is the address of the store's interrupt byte;
# `globals` of the instance's globals (2 slots each: value and mask, or a v128's two
# halves); `tables` of 3 slots per table (entry cache address, cache length, size);
# `sigs` of the canonical signature id (+1) of each module type. See `native.py`.
CTX_FIELDS = ("payload", "pc", "fp", "fuel", "csp", "cs_limit", "cs_base", "regs_end",
              "functab", "frametab", "pool", "scratch", "interrupt", "globals", "tables", "sigs",
              "mem", "memlen")
CTX = {name: i for i, name in enumerate(CTX_FIELDS)}
TABLE_SIZE = 256 + len(EXTENDED)
MODES = ("direct", "indirect", "loop")
DIRECT_PREFIX = 8

TRAP_CODE = {"div0": trap_code(numerics.DIV_BY_ZERO), "overflow": trap_code(numerics.INT_OVERFLOW),
             "conversion": trap_code(numerics.INVALID_CONVERSION),
             "mem": trap_code("out of bounds memory access")}


def table_slot(op: Op) -> int:
    """The op's entry in the indirect dispatch table."""
    return 256 + op.opcode if op.extended else op.opcode


def _c(t, v):
    return ir.Constant(t, v)


class Intrinsics:
    """Declares LLVM intrinsics by their mangled names on first use."""

    def __init__(self, module: ir.Module):
        self.module = module
        self.cache: dict[str, ir.Function] = {}

    def __call__(self, name: str, ret, args) -> ir.Function:
        fn = self.cache.get(name)
        if fn is None:
            fn = self.cache[name] = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
        return fn


def _suffix(t) -> str:
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_suffix(t.element)}"
    if isinstance(t, ir.IntType):
        return f"i{t.width}"
    return "f32" if isinstance(t, ir.FloatType) else "f64"


class Emit:
    """The per-op emission context the semantics templates write against.

    `jump(pc)` continues at another op (mode specific), `exit(status)` returns to Python
    with pc and fp saved, `trap_if(cond, code)` splits the block."""

    def __init__(self, gen: "Generator", op: Op, b: ir.IRBuilder, pc, fp, mem, memlen, ctx,
                 general: bool = False):
        self.gen, self.op, self.b = gen, op, b
        self.general = general  # copy slot lists of any length inline (see `_copy_slots`)
        self.pc, self.fp, self.mem, self.memlen, self.ctx = pc, fp, mem, memlen, ctx
        self.base = DIRECT_PREFIX if gen.mode == "direct" else len(op.prefix)
        self.offsets = {name: at - len(op.prefix) + self.base for name, _k, at in op.layout}
        self.kinds = {o.name: o.kind for o in op.operands}
        self.intr = gen.intr

    # -- stream and registers ---------------------------------------------------------------
    def at(self, off):
        off = off if isinstance(off, ir.Value) else _c(I64, off)
        return self.b.gep(self.pc, [off])

    def load_stream(self, off, t):
        return self.b.load(self.b.bitcast(self.at(off), t.as_pointer()), align=1)

    def operand(self, name: str):
        """The raw operand: an int of its encoded width (i128 for v128/shuffle)."""
        kind = self.kinds[name]
        w = kind.width
        t = {1: I8, 2: I16, 4: I32, 8: I64, 16: I128}[w]
        return self.load_stream(self.offsets[name], t)

    def index(self, name: str):
        return self.b.zext(self.operand(name), I64)

    def slot_ptr(self, idx):
        return self.b.gep(self.fp, [idx])

    def reg(self, name: str):
        return self.b.load(self.slot_ptr(self.index(name)), align=8)

    def set_reg(self, name: str, v):
        if v.type.width < 64:
            v = self.b.zext(v, I64)
        self.b.store(v, self.slot_ptr(self.index(name)), align=8)

    def vreg(self, name: str):
        p = self.b.bitcast(self.slot_ptr(self.index(name)), I128.as_pointer())
        return self.b.load(p, align=8)

    def set_vreg(self, name: str, v):
        p = self.b.bitcast(self.slot_ptr(self.index(name)), I128.as_pointer())
        self.b.store(v, p, align=8)

    def ctx_ptr(self, field: str):
        return self.b.gep(self.ctx, [_c(I64, CTX[field])])

    def ctx_get(self, field: str):
        return self.b.load(self.ctx_ptr(field), align=8)

    def ctx_set(self, field: str, v):
        self.b.store(v, self.ctx_ptr(field), align=8)

    def pool(self, idx):
        base = self.b.inttoptr(self.ctx_get("pool"), P64)
        return self.b.load(self.b.gep(base, [self.b.zext(idx, I64)]), align=8)

    # -- control ------------------------------------------------------------------------------
    def next_pc(self):
        return self.at(self.gen.size(self.op))

    def next(self):
        self.jump(self.next_pc())

    def branch(self, off_name: str = "off"):
        off = self.b.sext(self.operand(off_name), I64)
        self.poll_if_backward(off)
        self.jump(self.at(off))

    def poll_interrupt(self):
        """Leave with INTERRUPTED when the store's interrupt byte is set (one load of the
        cell's address from the context, one of the byte; atomic so that the `loop` mode's
        single function cannot hoist it out of a guest loop)."""
        cell = self.b.inttoptr(self.ctx_get("interrupt"), P8)
        flag = self.b.load_atomic(cell, "monotonic", 1)
        self.exit_if(self.b.icmp_unsigned("!=", flag, _c(I8, 0)), INTERRUPTED)

    def poll_if_backward(self, off):
        """Every loop has a backward branch: poll only on those (forward ones skip it)."""
        ok = self.split(self.b.icmp_signed("<=", off, _c(I64, 0)), "backward")
        self.poll_interrupt()
        self.b.branch(ok)
        self.b.position_at_end(ok)

    def jump(self, pc, fp=None, mem=None, memlen=None):
        self.gen.jump(self, pc, fp or self.fp, mem or self.mem, memlen or self.memlen)

    def exit(self, status: int, payload=None, pc=None, fp=None):
        if payload is not None:
            self.ctx_set("payload", payload if isinstance(payload, ir.Value) else _c(I64, payload))
        self.ctx_set("pc", self.b.ptrtoint(pc or self.pc, I64))
        self.ctx_set("fp", self.b.ptrtoint(fp or self.fp, I64))
        self.gen.leave(self, _c(I32, status))

    def split(self, cond, name="slow"):
        """cbranch on cond: returns with the builder in the `cond` block; the caller must
        terminate it; `resume()` continues in the other block."""
        bad = self.b.append_basic_block(name)
        ok = self.b.append_basic_block("ok")
        self.b.cbranch(cond, bad, ok)
        self.b.position_at_end(bad)
        return ok

    def trap_if(self, cond, code: int):
        ok = self.split(cond, "trap")
        self.exit(Status.TRAP, code)
        self.b.position_at_end(ok)

    def exit_if(self, cond, status: int):
        ok = self.split(cond, "exit")
        self.exit(status)
        self.b.position_at_end(ok)

    def call_intr(self, name: str, ret, args):
        return self.b.call(self.intr(name, ret, [a.type for a in args]), args)


# ==========================================================================================
# Scalar numerics templates: fn(e, *inputs) -> result (ints of the operator's width).
# ==========================================================================================
def _ftype(n):
    return F32 if n == 32 else F64


def _fconst(n):
    # (sign, quiet bit, canonical NaN, abs mask, +inf)
    if n == 32:
        return 1 << 31, 1 << 22, 0x7FC00000, (1 << 31) - 1, 0x7F800000
    return 1 << 63, 1 << 51, 0x7FF8000000000000, (1 << 63) - 1, 0x7FF0000000000000


def is_nan_bits(b, x, n):
    _s, _q, _c_, absm, inf = _fconst(n)
    t = x.type
    return b.icmp_unsigned(">", b.and_(x, _c(t, absm)), _c(t, inf))


def nan_pick(b, n, args):
    """The NaN result of the NaN rule: the first NaN operand quieted, else canonical."""
    _s, q, canon, _a, _i = _fconst(n)
    t = args[0].type
    r = _c(t, canon)
    for a in reversed(args):
        r = b.select(is_nan_bits(b, a, n), b.or_(a, _c(t, q)), r)
    return r


def _fbits(b, x, n):
    return b.bitcast(x, _ftype(n))


def _ibits(b, f, n):
    return b.bitcast(f, ir.IntType(n))


def _farith(kind):
    def t(e, n, *args):
        b = e.b
        fs = [_fbits(b, a, n) for a in args]
        ft = _ftype(n)
        if kind in ("add", "sub", "mul", "div"):
            r = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[kind](*fs)
        else:
            llname = {"nearest": "roundeven"}.get(kind, kind)
            r = e.call_intr(f"llvm.{llname}.{_suffix(ft)}", ft, fs)
        rb = _ibits(b, r, n)
        return b.select(is_nan_bits(b, rb, n), nan_pick(b, n, args), rb)
    return t


def _fminmax(kind):
    def t(e, n, x, y):
        b = e.b
        fx, fy = _fbits(b, x, n), _fbits(b, y, n)
        eq = b.fcmp_ordered("==", fx, fy)
        better = b.fcmp_ordered("<" if kind == "min" else ">", fx, fy)
        # Equal operands differ at most in the zero's sign: min prefers -0 (or), max +0 (and).
        same = b.or_(x, y) if kind == "min" else b.and_(x, y)
        r = b.select(eq, same, b.select(better, x, y))
        uno = b.fcmp_unordered("uno", fx, fy)
        return b.select(uno, nan_pick(b, n, [x, y]), r)
    return t


def _fsign(kind):
    def t(e, n, x, y=None):
        b = e.b
        sign, *_ = _fconst(n)
        tt = x.type
        if kind == "abs":
            return b.and_(x, _c(tt, sign - 1))
        if kind == "neg":
            return b.xor(x, _c(tt, sign))
        return b.or_(b.and_(x, _c(tt, sign - 1)), b.and_(y, _c(tt, sign)))
    return t


_FCMP = {"eq": ("==", True), "ne": ("!=", False), "lt": ("<", True), "gt": (">", True),
         "le": ("<=", True), "ge": (">=", True)}


def _fcmp(kind):
    def t(e, n, x, y):
        b = e.b
        op, ordered = _FCMP[kind]
        fx, fy = _fbits(b, x, n), _fbits(b, y, n)
        c = b.fcmp_ordered(op, fx, fy) if ordered else b.fcmp_unordered(op, fx, fy)
        return b.zext(c, I32)
    return t


_ICMP = {"eq": ("==", None), "ne": ("!=", None), "lt_s": ("<", True), "lt_u": ("<", False),
         "gt_s": (">", True), "gt_u": (">", False), "le_s": ("<=", True), "le_u": ("<=", False),
         "ge_s": (">=", True), "ge_u": (">=", False)}


def icmp(b, kind, x, y):
    op, signed = _ICMP[kind]
    return b.icmp_signed(op, x, y) if signed in (True, None) else b.icmp_unsigned(op, x, y)


def _int_template(kind):
    def t(e, n, x, y=None):
        b = e.b
        tt = ir.IntType(n)
        if kind in ("add", "sub", "mul", "and", "or", "xor"):
            return {"add": b.add, "sub": b.sub, "mul": b.mul, "and": b.and_, "or": b.or_,
                    "xor": b.xor}[kind](x, y)
        if kind in ("shl", "shr_s", "shr_u"):
            cnt = b.and_(y, _c(tt, n - 1))
            return {"shl": b.shl, "shr_s": b.ashr, "shr_u": b.lshr}[kind](x, cnt)
        if kind in ("rotl", "rotr"):
            f = "fshl" if kind == "rotl" else "fshr"
            return e.call_intr(f"llvm.{f}.i{n}", tt, [x, x, y])
        if kind in _ICMP:
            return b.zext(icmp(b, kind, x, y), I32)
        if kind == "eqz":
            return b.zext(b.icmp_unsigned("==", x, _c(tt, 0)), I32)
        if kind in ("clz", "ctz"):
            f = "ctlz" if kind == "clz" else "cttz"
            return e.call_intr(f"llvm.{f}.i{n}", tt, [x, _c(I1, 0)])
        if kind == "popcnt":
            return e.call_intr(f"llvm.ctpop.i{n}", tt, [x])
        if kind in ("div_s", "div_u", "rem_s", "rem_u"):
            e.trap_if(b.icmp_unsigned("==", y, _c(tt, 0)), TRAP_CODE["div0"])
            if kind == "div_u":
                return b.udiv(x, y)
            if kind == "rem_u":
                return b.urem(x, y)
            minus1 = b.icmp_signed("==", y, _c(tt, -1))
            if kind == "div_s":
                e.trap_if(b.and_(minus1, b.icmp_signed("==", x, _c(tt, -(1 << (n - 1))))),
                          TRAP_CODE["overflow"])
                return b.sdiv(x, y)
            # x rem -1 is 0; avoid the hardware's INT_MIN rem -1 fault.
            return b.select(minus1, _c(tt, 0), b.srem(x, b.select(minus1, _c(tt, 1), y)))
        m = re.fullmatch(r"extend(\d+)_s", kind)
        if m:
            return b.sext(b.trunc(x, ir.IntType(int(m.group(1)))), tt)
        raise KeyError(kind)
    return t


def _trunc_bounds(src: int, dst: int, signed: bool) -> tuple[float, bool, float]:
    """(lower bound, lower bound inclusive?, upper bound exclusive) in the float domain
    such that x in range <=> trunc(x) fits the integer type."""
    if signed:
        lo = -(2.0 ** (dst - 1)) - 1
        mant = 24 if src == 32 else 53
        # -2^(d-1) - 1 is representable only when the ulp at 2^(d-1) is at most 1.
        if dst - 1 < mant:
            return lo, False, 2.0 ** (dst - 1)
        return -(2.0 ** (dst - 1)), True, 2.0 ** (dst - 1)
    return -1.0, False, 2.0 ** dst


def _trunc(src, dst, signed, sat):
    def t(e, _n, x):
        b = e.b
        f = _fbits(b, x, src)
        it = ir.IntType(dst)
        if sat:
            name = f"llvm.fpto{'s' if signed else 'u'}i.sat.i{dst}.{_suffix(f.type)}"
            return e.call_intr(name, it, [f])
        e.trap_if(b.fcmp_unordered("uno", f, f), TRAP_CODE["conversion"])
        lo, incl, hi = _trunc_bounds(src, dst, signed)
        ft = _ftype(src)
        lo_ok = b.fcmp_ordered(">=" if incl else ">", f, _c(ft, lo))
        hi_ok = b.fcmp_ordered("<", f, _c(ft, hi))
        e.trap_if(b.not_(b.and_(lo_ok, hi_ok)), TRAP_CODE["overflow"])
        return b.fptosi(f, it) if signed else b.fptoui(f, it)
    return t


def _convert(src, dst, signed):
    def t(e, _n, x):
        b = e.b
        f = (b.sitofp if signed else b.uitofp)(x, _ftype(dst))
        return _ibits(b, f, dst)
    return t


def _demote(e, _n, x):
    b = e.b
    r = _ibits(b, b.fptrunc(_fbits(b, x, 64), F32), 32)
    # NaN: sign, quiet bit, the payload's top bits (as ir.numerics).
    sign = b.trunc(b.lshr(x, _c(I64, 32)), I32)
    sign = b.and_(sign, _c(I32, 0x80000000))
    pay = b.and_(b.trunc(b.lshr(x, _c(I64, 29)), I32), _c(I32, 0x3FFFFF))
    nan = b.or_(b.or_(sign, _c(I32, 0x7FC00000)), pay)
    return b.select(is_nan_bits(b, x, 64), nan, r)


def _promote(e, _n, x):
    b = e.b
    r = _ibits(b, b.fpext(_fbits(b, x, 32), F64), 64)
    x64 = b.zext(x, I64)
    sign = b.shl(b.and_(x64, _c(I64, 0x80000000)), _c(I64, 32))
    pay = b.shl(b.and_(x64, _c(I64, 0x3FFFFF)), _c(I64, 29))
    nan = b.or_(b.or_(sign, _c(I64, 0x7FF8000000000000)), pay)
    return b.select(is_nan_bits(b, x, 32), nan, r)


def _scalar_templates() -> dict:
    """numerics name -> (template, width N passed to it)."""
    T: dict = {}
    for n in (32, 64):
        i, f = f"i{n}", f"f{n}"
        for k in ("add sub mul and or xor shl shr_s shr_u rotl rotr div_s div_u rem_s rem_u "
                  "clz ctz popcnt eqz eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u").split():
            T[f"{i}.{k}"] = (_int_template(k), n)
        for k in (8, 16, 32):
            if k < n:
                T[f"{i}.extend{k}_s"] = (_int_template(f"extend{k}_s"), n)
        for k in ("add sub mul div sqrt ceil floor trunc nearest").split():
            T[f"{f}.{k}"] = (_farith(k), n)
        for k in ("min", "max"):
            T[f"{f}.{k}"] = (_fminmax(k), n)
        for k in ("abs", "neg", "copysign"):
            T[f"{f}.{k}"] = (_fsign(k), n)
        for k in _FCMP:
            T[f"{f}.{k}"] = (_fcmp(k), n)
    for dst in (32, 64):
        for src in (32, 64):
            for sg in "su":
                T[f"i{dst}.trunc_f{src}_{sg}"] = (_trunc(src, dst, sg == "s", False), dst)
                T[f"i{dst}.trunc_sat_f{src}_{sg}"] = (_trunc(src, dst, sg == "s", True), dst)
                T[f"f{dst}.convert_i{src}_{sg}"] = (_convert(src, dst, sg == "s"), dst)
    T["i32.wrap_i64"] = (lambda e, n, x: e.b.trunc(x, I32), 32)
    T["i64.extend_i32_s"] = (lambda e, n, x: e.b.sext(x, I64), 64)
    T["i64.extend_i32_u"] = (lambda e, n, x: e.b.zext(x, I64), 64)
    T["f32.demote_f64"] = (_demote, 32)
    T["f64.promote_f32"] = (_promote, 64)
    for name in ("i32.reinterpret_f32", "i64.reinterpret_f64", "f32.reinterpret_i32",
                 "f64.reinterpret_i64"):
        T[name] = (lambda e, n, x: x, 0)
    return T


SCALAR = _scalar_templates()


# ==========================================================================================
# SIMD templates: fn(e, *inputs) -> i128. Integer lanes use LLVM vector types; float lanes
# apply the scalar template (NaN rule included) lane by lane.
# ==========================================================================================
def _shape(s: str) -> tuple[int, int, bool]:
    m = re.fullmatch(r"([if])(\d+)x(\d+)", s)
    return int(m.group(2)), int(m.group(3)), m.group(1) == "f"


def vec(b, x, w, lanes):
    return b.bitcast(x, ir.VectorType(ir.IntType(w), lanes))


def unvec(b, v):
    return b.bitcast(v, I128)


def _splat_vec(b, scalar, lanes):
    vt = ir.VectorType(scalar.type, lanes)
    v = b.insert_element(ir.Constant(vt, ir.Undefined), scalar, _c(I32, 0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def _lanewise_scalar(scalar_fn, w, lanes, nargs):
    def t(e, *args):
        b = e.b
        vs = [vec(b, a, w, lanes) for a in args[:nargs]]
        out = ir.Constant(ir.VectorType(ir.IntType(w), lanes), ir.Undefined)
        for i in range(lanes):
            xs = [b.extract_element(v, _c(I32, i)) for v in vs]
            out = b.insert_element(out, scalar_fn(e, w, *xs), _c(I32, i))
        return unvec(b, out)
    return t


def _simd_int(kind, w, lanes):
    vt = ir.VectorType(ir.IntType(w), lanes)
    zero = ir.Constant(vt, [0] * lanes)

    def t(e, x, y=None):
        b = e.b
        a = vec(b, x, w, lanes)
        c = vec(b, y, w, lanes) if y is not None and kind not in ("shl", "shr_s", "shr_u") else None
        if kind in ("add", "sub", "mul"):
            r = {"add": b.add, "sub": b.sub, "mul": b.mul}[kind](a, c)
        elif kind == "neg":
            r = b.sub(zero, a)
        elif kind == "abs":
            r = b.select(b.icmp_signed("<", a, zero), b.sub(zero, a), a)
        elif kind in _ICMP:
            r = b.sext(icmp(b, kind, a, c), vt)
        elif kind in ("min_s", "min_u", "max_s", "max_u"):
            cmp = ("lt_" if kind.startswith("min") else "gt_") + kind[-1]
            r = b.select(icmp(b, cmp, a, c), a, c)
        elif kind == "avgr_u":
            wt = ir.VectorType(ir.IntType(2 * w), lanes)
            s = b.add(b.add(b.zext(a, wt), b.zext(c, wt)), ir.Constant(wt, [1] * lanes))
            r = b.trunc(b.lshr(s, ir.Constant(wt, [1] * lanes)), vt)
        elif kind == "q15mulr_sat_s":
            wt = ir.VectorType(I32, lanes)
            p = b.mul(b.sext(a, wt), b.sext(c, wt))
            p = b.ashr(b.add(p, ir.Constant(wt, [0x4000] * lanes)), ir.Constant(wt, [15] * lanes))
            hi = ir.Constant(wt, [0x7FFF] * lanes)
            p = b.select(b.icmp_signed(">", p, hi), hi, p)
            r = b.trunc(p, vt)
        elif kind.endswith("_sat_s") or kind.endswith("_sat_u"):
            op = kind.split("_")[0]
            r = e.call_intr(f"llvm.{kind[-1]}{op}.sat.{_suffix(vt)}", vt, [a, c])
        elif kind in ("shl", "shr_s", "shr_u"):
            cnt = b.and_(y, _c(I32, w - 1))
            cnt = b.trunc(cnt, ir.IntType(w)) if w < 32 else (b.zext(cnt, I64) if w == 64 else cnt)
            r = {"shl": b.shl, "shr_s": b.ashr, "shr_u": b.lshr}[kind](a, _splat_vec(b, cnt, lanes))
        elif kind == "popcnt":
            r = e.call_intr(f"llvm.ctpop.{_suffix(vt)}", vt, [a])
        else:
            raise KeyError(kind)
        return unvec(b, r)
    return t


def _simd_lane_ops(shape):
    w, lanes, flt = _shape(shape)
    it = ir.IntType(w)
    T = {}

    def splat(e, x):
        b = e.b
        s = b.trunc(x, it) if x.type.width > w else x
        return unvec(b, _splat_vec(b, s, lanes))

    def extract(sign):
        def t(e, v, lane):
            b = e.b
            x = b.extract_element(vec(b, v, w, lanes), lane)
            if w < 32:
                x = (b.sext if sign == "s" else b.zext)(x, I32)
            return x
        return t

    def replace(e, v, x, lane):
        b = e.b
        s = b.trunc(x, it) if x.type.width > w else x
        return unvec(b, b.insert_element(vec(b, v, w, lanes), s, lane))

    T[f"{shape}.splat"] = splat
    T[f"{shape}.replace_lane"] = replace
    if w < 32:
        T[f"{shape}.extract_lane_s"] = extract("s")
        T[f"{shape}.extract_lane_u"] = extract("u")
    else:
        T[f"{shape}.extract_lane"] = extract("u")
    return T


def _all_true(w, lanes):
    def t(e, x):
        b = e.b
        ne = b.icmp_unsigned("!=", vec(b, x, w, lanes), ir.Constant(ir.VectorType(ir.IntType(w), lanes), [0] * lanes))
        bits = b.bitcast(ne, ir.IntType(lanes))
        return b.zext(b.icmp_unsigned("==", bits, _c(ir.IntType(lanes), (1 << lanes) - 1)), I32)
    return t


def _bitmask(w, lanes):
    def t(e, x):
        b = e.b
        neg = b.icmp_signed("<", vec(b, x, w, lanes), ir.Constant(ir.VectorType(ir.IntType(w), lanes), [0] * lanes))
        return b.zext(b.bitcast(neg, ir.IntType(lanes)), I32)
    return t


def _half(b, v, lanes, high):
    idx = list(range(lanes // 2, lanes)) if high else list(range(lanes // 2))
    return b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes // 2), idx))


def _extend(w, lanes, high, signed, mul=False):
    """dst lanes of width 2w from half of the src (lanes of width w)."""
    wt = ir.VectorType(ir.IntType(2 * w), lanes // 2)

    def t(e, x, y=None):
        b = e.b
        ext = b.sext if signed else b.zext
        r = ext(_half(b, vec(b, x, w, lanes), lanes, high), wt)
        if mul:
            r = b.mul(r, ext(_half(b, vec(b, y, w, lanes), lanes, high), wt))
        return unvec(b, r)
    return t


def _pairs(b, v, lanes):
    even = ir.Constant(ir.VectorType(I32, lanes // 2), list(range(0, lanes, 2)))
    odd = ir.Constant(ir.VectorType(I32, lanes // 2), list(range(1, lanes, 2)))
    u = ir.Constant(v.type, ir.Undefined)
    return b.shuffle_vector(v, u, even), b.shuffle_vector(v, u, odd)


def _extadd(w, lanes, signed):
    wt = ir.VectorType(ir.IntType(2 * w), lanes // 2)

    def t(e, x):
        b = e.b
        ext = b.sext if signed else b.zext
        ev, od = _pairs(b, vec(b, x, w, lanes), lanes)
        return unvec(b, b.add(ext(ev, wt), ext(od, wt)))
    return t


def _dot(e, x, y):
    b = e.b
    wt = ir.VectorType(I32, 8)
    p = b.mul(b.sext(vec(b, x, 16, 8), wt), b.sext(vec(b, y, 16, 8), wt))
    ev, od = _pairs(b, p, 8)
    return unvec(b, b.add(ev, od))


def _narrow(w, lanes, signed):
    """Narrow two vectors of `lanes` lanes of width w into 2*lanes lanes of width w/2."""
    src = ir.VectorType(ir.IntType(w), 2 * lanes)
    dst = ir.VectorType(ir.IntType(w // 2), 2 * lanes)

    def t(e, x, y):
        b = e.b
        cat = b.shuffle_vector(vec(b, x, w, lanes), vec(b, y, w, lanes),
                               ir.Constant(ir.VectorType(I32, 2 * lanes), list(range(2 * lanes))))
        h = w // 2
        lo, hi = (-(1 << (h - 1)), (1 << (h - 1)) - 1) if signed else (0, (1 << h) - 1)
        lo_c, hi_c = ir.Constant(src, [lo] * 2 * lanes), ir.Constant(src, [hi] * 2 * lanes)
        c = b.select(b.icmp_signed("<", cat, lo_c), lo_c, cat)
        c = b.select(b.icmp_signed(">", c, hi_c), hi_c, c)
        return unvec(b, b.trunc(c, dst))
    return t


def _bytes_select(b, src, idxs, limit):
    """16 lanes: out[i] = src[idx[i]] if idx[i] < limit else 0 (src: <limit x i8>)."""
    out = ir.Constant(ir.VectorType(I8, 16), [0] * 16)
    for i in range(16):
        k = b.extract_element(idxs, _c(I32, i))
        inr = b.icmp_unsigned("<", k, _c(I8, limit))
        safe = b.select(inr, k, _c(I8, 0))
        v = b.extract_element(src, b.zext(safe, I32))
        out = b.insert_element(out, b.select(inr, v, _c(I8, 0)), _c(I32, i))
    return unvec(b, out)


def _swizzle(e, x, y):
    b = e.b
    return _bytes_select(b, vec(b, x, 8, 16), vec(b, y, 8, 16), 16)


def _shuffle(e, x, y, mask):
    b = e.b
    cat = b.shuffle_vector(vec(b, x, 8, 16), vec(b, y, 8, 16),
                           ir.Constant(ir.VectorType(I32, 32), list(range(32))))
    return _bytes_select(b, cat, vec(b, mask, 8, 16), 32)


def _v128_bitwise(kind):
    def t(e, x, y=None, z=None):
        b = e.b
        if kind == "not":
            return b.not_(x)
        if kind == "andnot":
            return b.and_(x, b.not_(y))
        if kind == "bitselect":
            return b.or_(b.and_(x, z), b.and_(y, b.not_(z)))
        if kind == "any_true":
            return b.zext(b.icmp_unsigned("!=", x, _c(I128, 0)), I32)
        return {"and": b.and_, "or": b.or_, "xor": b.xor}[kind](x, y)
    return t


def _fvec_cmp(kind, w, lanes):
    def t(e, x, y):
        b = e.b
        ft = ir.VectorType(_ftype(w), lanes)
        fx, fy = b.bitcast(vec(b, x, w, lanes), ft), b.bitcast(vec(b, y, w, lanes), ft)
        op, ordered = _FCMP[kind]
        c = b.fcmp_ordered(op, fx, fy) if ordered else b.fcmp_unordered(op, fx, fy)
        return unvec(b, b.sext(c, ir.VectorType(ir.IntType(w), lanes)))
    return t


def _pminmax(kind, w, lanes):
    def t(e, x, y):
        b = e.b
        ft = ir.VectorType(_ftype(w), lanes)
        vx, vy = vec(b, x, w, lanes), vec(b, y, w, lanes)
        fx, fy = b.bitcast(vx, ft), b.bitcast(vy, ft)
        # pmin: b < a ? b : a;  pmax: a < b ? b : a (no NaN rule: an operand is returned).
        c = b.fcmp_ordered("<", fy, fx) if kind == "pmin" else b.fcmp_ordered("<", fx, fy)
        return unvec(b, b.select(c, vy, vx))
    return t


def _fvec_convert(signed: bool, to64: bool):
    def t(e, x):
        b = e.b
        if to64:  # f64x2.convert_low_i32x4
            lo = _half(b, vec(b, x, 32, 4), 4, False)
            f = (b.sitofp if signed else b.uitofp)(lo, ir.VectorType(F64, 2))
        else:
            f = (b.sitofp if signed else b.uitofp)(vec(b, x, 32, 4), ir.VectorType(F32, 4))
        return b.bitcast(f, I128)
    return t


def _trunc_sat_vec(signed: bool, zero: bool):
    def t(e, x):
        b = e.b
        sg = "s" if signed else "u"
        if zero:
            f = b.bitcast(vec(b, x, 64, 2), ir.VectorType(F64, 2))
            r = e.call_intr(f"llvm.fpto{sg}i.sat.v2i32.v2f64", ir.VectorType(I32, 2), [f])
            r = b.shuffle_vector(r, ir.Constant(r.type, [0, 0]), ir.Constant(ir.VectorType(I32, 4), [0, 1, 2, 3]))
        else:
            f = b.bitcast(vec(b, x, 32, 4), ir.VectorType(F32, 4))
            r = e.call_intr(f"llvm.fpto{sg}i.sat.v4i32.v4f32", ir.VectorType(I32, 4), [f])
        return unvec(b, r)
    return t


def _demote_zero(e, x):
    b = e.b
    v = vec(b, x, 64, 2)
    out = ir.Constant(ir.VectorType(I32, 4), [0] * 4)
    for i in range(2):
        out = b.insert_element(out, _demote(e, 32, b.extract_element(v, _c(I32, i))), _c(I32, i))
    return unvec(b, out)


def _promote_low(e, x):
    b = e.b
    v = vec(b, x, 32, 4)
    out = ir.Constant(ir.VectorType(I64, 2), [0] * 2)
    for i in range(2):
        out = b.insert_element(out, _promote(e, 64, b.extract_element(v, _c(I32, i))), _c(I32, i))
    return unvec(b, out)


def _simd_templates() -> dict:
    T: dict = {}
    for shape in ("i8x16", "i16x8", "i32x4", "i64x2", "f32x4", "f64x2"):
        T.update(_simd_lane_ops(shape))
    for shape in ("i8x16", "i16x8", "i32x4", "i64x2"):
        w, lanes, _f = _shape(shape)
        for k in ("add sub mul neg abs eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u "
                  "min_s min_u max_s max_u avgr_u add_sat_s add_sat_u sub_sat_s sub_sat_u "
                  "shl shr_s shr_u popcnt q15mulr_sat_s").split():
            T[f"{shape}.{k}"] = _simd_int(k, w, lanes)
        T[f"{shape}.all_true"] = _all_true(w, lanes)
        T[f"{shape}.bitmask"] = _bitmask(w, lanes)
    for w, lanes, src in ((16, 8, "i8x16"), (32, 4, "i16x8"), (64, 2, "i32x4")):
        sw = w // 2
        for sg in "su":
            for half in ("low", "high"):
                T[f"i{w}x{lanes}.extend_{half}_{src}_{sg}"] = _extend(sw, 2 * lanes, half == "high", sg == "s")
                T[f"i{w}x{lanes}.extmul_{half}_{src}_{sg}"] = _extend(sw, 2 * lanes, half == "high", sg == "s", True)
            T[f"i{w}x{lanes}.extadd_pairwise_{src}_{sg}"] = _extadd(sw, 2 * lanes, sg == "s")
    for sg in "su":
        T[f"i8x16.narrow_i16x8_{sg}"] = _narrow(16, 8, sg == "s")
        T[f"i16x8.narrow_i32x4_{sg}"] = _narrow(32, 4, sg == "s")
    T["i32x4.dot_i16x8_s"] = _dot
    T["i8x16.swizzle"] = _swizzle
    T["i8x16.shuffle"] = _shuffle
    for k in ("not", "and", "or", "xor", "andnot", "bitselect", "any_true"):
        T[f"v128.{k}"] = _v128_bitwise(k)
    for shape in ("f32x4", "f64x2"):
        w, lanes, _f = _shape(shape)
        for k in ("add sub mul div min max sqrt ceil floor trunc nearest abs neg").split():
            fn, _n = SCALAR[f"f{w}.{k}"]
            nargs = 2 if k in ("add", "sub", "mul", "div", "min", "max") else 1
            T[f"{shape}.{k}"] = _lanewise_scalar(fn, w, lanes, nargs)
        for k in _FCMP:
            T[f"{shape}.{k}"] = _fvec_cmp(k, w, lanes)
        for k in ("pmin", "pmax"):
            T[f"{shape}.{k}"] = _pminmax(k, w, lanes)
    for sg in "su":
        T[f"f32x4.convert_i32x4_{sg}"] = _fvec_convert(sg == "s", False)
        T[f"f64x2.convert_low_i32x4_{sg}"] = _fvec_convert(sg == "s", True)
        T[f"i32x4.trunc_sat_f32x4_{sg}"] = _trunc_sat_vec(sg == "s", False)
        T[f"i32x4.trunc_sat_f64x2_{sg}_zero"] = _trunc_sat_vec(sg == "s", True)
    T["f32x4.demote_f64x2_zero"] = _demote_zero
    T["f64x2.promote_low_f32x4"] = _promote_low
    return T


SIMD = _simd_templates()


# ==========================================================================================
# Op bodies
# ==========================================================================================
_BITS = {0x7F: 32, 0x7E: 64, 0x7D: 32, 0x7C: 64, 0x7B: 128}


def _numeric_inputs(e: Emit):
    op, b = e.op, e.b
    info = numerics.INFO[op.numerics]
    form = "branch" if op.name.startswith("br_") else "select" if op.name.startswith("select_") else "value"
    skip = {"dst", "off"} | ({"a", "b"} if form == "select" else set())
    vals, pi = [], 0
    for o in op.operands:
        if o.name in skip:
            continue
        k = o.kind.name
        if k == "lane":
            vals.append(b.zext(e.operand(o.name), I32))
            continue
        if k == "shuffle":
            vals.append(e.operand(o.name))
            continue
        bits = _BITS[int(info.params[pi])]
        pi += 1
        if k in ("vs",):
            v = e.vreg(o.name)
        elif k == "xs":
            v = e.reg(o.name)
        elif k == "pool":
            v = e.pool(e.operand(o.name))
        else:  # an immediate: u8 shift count, u32 pattern, sx32 sign-extended
            raw = e.operand(o.name)
            v = b.sext(raw, I64) if k == "sx32" else b.zext(raw, I64) if raw.type.width < 64 else raw
        if bits == 32 and v.type.width != 32:
            v = b.trunc(v, I32)
        vals.append(v)
    return info, form, vals


def _byte_ptr(e: Emit, name: str, byte_off):
    p = e.b.bitcast(e.slot_ptr(e.index(name)), P8)
    return e.b.gep(p, [byte_off])


def _lane_offset(e: Emit, lane_bytes: int):
    return e.b.mul(e.b.zext(e.operand("lane"), I64), _c(I64, lane_bytes))


def body_lane(e: Emit):
    """Ops with a lane or byte index known only at run time address the v128's bytes in
    its register slots (a variable vector index would spill the vector to the stack)."""
    b, name = e.b, e.op.numerics
    shape, what = name.split(".")
    if what in ("swizzle", "shuffle"):
        out = ir.Constant(ir.VectorType(I8, 16), [0] * 16)
        for i in range(16):
            if what == "swizzle":
                k = b.load(_byte_ptr(e, "b", _c(I64, i)), align=1)
                inr = b.icmp_unsigned("<", k, _c(I8, 16))
                v = b.load(_byte_ptr(e, "a", b.zext(b.and_(k, _c(I8, 15)), I64)), align=1)
                v = b.select(inr, v, _c(I8, 0))
            else:  # mask bytes are validated below 32 when the code is installed
                k = e.load_stream(e.offsets["mask"] + i, I8)
                low = b.icmp_unsigned("<", k, _c(I8, 16))
                idx = b.zext(b.and_(k, _c(I8, 15)), I64)
                v = b.select(low, b.load(_byte_ptr(e, "a", idx), align=1),
                             b.load(_byte_ptr(e, "b", idx), align=1))
            out = b.insert_element(out, v, _c(I32, i))
        e.set_vreg("dst", unvec(b, out))
        e.next()
        return
    w, lanes, _f = _shape(shape)
    it = ir.IntType(w)
    off = _lane_offset(e, w // 8)
    if what.startswith("extract_lane"):
        x = b.load(b.bitcast(_byte_ptr(e, "a", off), it.as_pointer()), align=1)
        if w < 32:
            x = (b.sext if what.endswith("_s") else b.zext)(x, I32)
        e.set_reg("dst", x)
    else:  # replace_lane: copy the vector, then overwrite one lane in the destination
        x = e.reg("b")
        e.set_vreg("dst", e.vreg("a"))
        x = b.trunc(x, it) if w < 64 else x
        b.store(x, b.bitcast(_byte_ptr(e, "dst", off), it.as_pointer()), align=1)
    e.next()


LANE_OPS = frozenset(n for n in SIMD if n.endswith(("extract_lane", "extract_lane_s", "extract_lane_u",
                                                     "replace_lane", ".swizzle", ".shuffle")))


def body_numeric(e: Emit):
    if e.op.numerics in LANE_OPS:
        return body_lane(e)
    info, form, vals = _numeric_inputs(e)
    name = e.op.numerics
    if name in SCALAR:
        fn, n = SCALAR[name]
        r = fn(e, n, *vals)
    else:
        r = SIMD[name](e, *vals)
    b = e.b
    if form == "value":
        (e.set_vreg if int(info.results[0]) == 0x7B else e.set_reg)("dst", r)
        e.next()
    elif form == "branch":
        ok = e.split(b.icmp_unsigned("!=", r, _c(r.type, 0)), "taken")
        e.branch()
        b.position_at_end(ok)
        e.next()
    else:
        pick = b.icmp_unsigned("!=", r, _c(r.type, 0))
        e.set_reg("dst", b.select(pick, e.reg("a"), e.reg("b")))
        e.next()


def _mem_shape(op: Op):
    t, rest = op.name.split(".", 1)
    rest = rest.removesuffix("_m0")
    m = re.fullmatch(r"(load|store)(\d+)?(?:x(\d+))?(?:_(s|u|splat|zero|lane))?", rest)
    kind, bits, count, mod = m.group(1), m.group(2), m.group(3), m.group(4)
    return t, kind, int(bits) if bits else None, int(count) if count else None, mod


def _mem_access(e: Emit, nbytes: int):
    """Pointer to the bounds-checked effective address (traps when out of bounds)."""
    b = e.b
    if "mem" in e.kinds:
        e.exit_if(b.icmp_unsigned("!=", e.operand("mem"), _c(I32, 0)), SLOW)
    ea = b.add(b.zext(b.trunc(e.reg("addr"), I32), I64), b.zext(e.operand("offset"), I64))
    e.trap_if(b.icmp_unsigned(">", b.add(ea, _c(I64, nbytes)), e.memlen), TRAP_CODE["mem"])
    return b.gep(e.mem, [ea])


def body_memory(e: Emit):
    b = e.b
    t, kind, bits, count, mod = _mem_shape(e.op)
    base = e.op.name.removesuffix("_m0").split(".", 1)[1]
    n = _access_bytes(t, base)
    tbits = {"i32": 32, "i64": 64, "f32": 32, "f64": 64, "v128": 128}[t]
    ptr = _mem_access(e, n)
    acc = ir.IntType(8 * n)
    p = b.bitcast(ptr, acc.as_pointer())
    if kind == "load":
        raw = b.load(p, align=1)
        if count:  # v128.loadNxM_s/u: M lanes of N bits widened to 2N
            w = bits
            v = b.bitcast(raw, ir.VectorType(ir.IntType(w), count))
            r = unvec(b, (b.sext if mod == "s" else b.zext)(v, ir.VectorType(ir.IntType(2 * w), count)))
        elif mod == "splat":
            r = unvec(b, _splat_vec(b, raw, 128 // (8 * n)))
        elif mod == "zero":
            r = b.zext(raw, I128)
        elif mod == "lane":
            e.set_vreg("dst", e.vreg("src"))
            b.store(raw, b.bitcast(_byte_ptr(e, "dst", _lane_offset(e, n)), acc.as_pointer()), align=1)
            e.next()
            return
        elif 8 * n < tbits:
            r = (b.sext if mod == "s" else b.zext)(raw, ir.IntType(tbits))
        else:
            r = raw
        (e.set_vreg if tbits == 128 else e.set_reg)("dst", r)
    else:
        if mod == "lane":
            val = b.load(b.bitcast(_byte_ptr(e, "src", _lane_offset(e, n)), acc.as_pointer()), align=1)
        else:
            val = e.vreg("src") if tbits == 128 else e.reg("src")
            if val.type.width > 8 * n:
                val = b.trunc(val, acc)
        b.store(val, p, align=1)
    e.next()


def _copy_slots(e: Emit, list_off: int):
    """Parallel move of the slot list at operand offset `list_off` (u16 count, u16 slots)
    to slots 0.. of the frame, through the context's scratch buffer (all reads before any
    write). A handler copies no slot or one (most returns) inline and hands longer lists to
    its `general` twin (see `Generator`), so that its own code needs no callee-saved
    registers or vector code."""
    b = e.b
    cnt = e.load_stream(list_off, I16)
    if not e.general:
        one = b.append_basic_block("one_slot")
        many = b.append_basic_block("many_slots")
        done = b.append_basic_block("copied")
        sw = b.switch(cnt, many)
        sw.add_case(_c(I16, 0), done)
        sw.add_case(_c(I16, 1), one)
        b.position_at_end(one)
        slot = b.zext(e.load_stream(list_off + 2, I16), I64)
        b.store(b.load(e.slot_ptr(slot), align=8), e.fp, align=8)
        b.branch(done)
        b.position_at_end(many)
        twin = e.gen.general[e.op.index]
        b.ret(b.call(twin, [e.pc, e.fp, e.mem, e.memlen, e.ctx], tail="musttail"))
        b.position_at_end(done)
        return
    cnt = b.zext(cnt, I64)
    scratch = b.inttoptr(e.ctx_get("scratch"), P64)
    for phase in ("read", "write"):
        pre = b.block
        loop = b.append_basic_block(phase)
        done = b.append_basic_block(phase + "_done")
        b.cbranch(b.icmp_unsigned("==", cnt, _c(I64, 0)), done, loop)
        b.position_at_end(loop)
        i = b.phi(I64)
        i.add_incoming(_c(I64, 0), pre)
        if phase == "read":
            off = b.add(_c(I64, list_off + 2), b.mul(i, _c(I64, 2)))
            slot = b.zext(e.load_stream(off, I16), I64)
            b.store(b.load(e.slot_ptr(slot), align=8), b.gep(scratch, [i]), align=8)
        else:
            b.store(b.load(b.gep(scratch, [i]), align=8), b.gep(e.fp, [i]), align=8)
        nxt = b.add(i, _c(I64, 1))
        i.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_unsigned("<", nxt, cnt), loop, done)
        b.position_at_end(done)


def _frame_fits(e: Emit, func_idx, newfp):
    b = e.b
    frames = b.inttoptr(e.ctx_get("frametab"), P64)
    size = b.load(b.gep(frames, [func_idx]), align=8)
    end = b.add(b.ptrtoint(newfp, I64), b.mul(size, _c(I64, 8)))
    e.exit_if(b.icmp_unsigned(">", end, e.ctx_get("regs_end")), Status.STACK_EXHAUSTED)


def _entry_of(e: Emit, func_idx):
    b = e.b
    tab = b.inttoptr(e.ctx_get("functab"), P64)
    entry = b.load(b.gep(tab, [func_idx]), align=8)
    e.exit_if(b.icmp_unsigned("==", entry, _c(I64, 0)), Status.HOST_CALL)
    return b.inttoptr(entry, P8)


def _table_field(e: Emit, field: int):
    """Field 0 (entry cache), 1 (cache length) or 2 (size) of the `table` operand's entry
    in the context's table array (the index is checked when the code is installed)."""
    b = e.b
    tabs = b.inttoptr(e.ctx_get("tables"), P64)
    at = b.add(b.mul(e.index("table"), _c(I64, 3)), _c(I64, field))
    return b.load(b.gep(tabs, [at]), align=8)


def _indirect_target(e: Emit):
    """The module function index of `table[index]` from the table's entry cache, whose
    entries are `(canonical signature + 1) << 32 | function index`, 0 when not cached.
    Anything but a cached entry of the expected signature (out of range, null, a host or
    foreign function, not cached yet, a mismatch) leaves with HOST_CALL, and Python
    resolves it (trapping, calling through the store, or filling the cache)."""
    b = e.b
    idx = b.zext(b.trunc(e.reg("index"), I32), I64)
    e.exit_if(b.icmp_unsigned(">=", idx, _table_field(e, 1)), Status.HOST_CALL)
    cache = b.inttoptr(_table_field(e, 0), P64)
    ent = b.load(b.gep(cache, [idx]), align=8)
    sigs = b.inttoptr(e.ctx_get("sigs"), P64)
    want = b.load(b.gep(sigs, [e.index("type")]), align=8)
    e.exit_if(b.icmp_unsigned("!=", b.lshr(ent, _c(I64, 32)), want), Status.HOST_CALL)
    return b.and_(ent, _c(I64, 0xFFFFFFFF))


def body_control(e: Emit):
    b, name = e.b, e.op.name
    if name == "jump":
        e.branch()
    elif name in ("br_if", "br_if_not"):
        c = b.icmp_unsigned("!=", b.trunc(e.reg("cond"), I32), _c(I32, 0))
        if name == "br_if_not":
            c = b.not_(c)
        ok = e.split(c, "taken")
        e.branch()
        b.position_at_end(ok)
        e.next()
    elif name == "br_table":
        idx = b.zext(b.trunc(e.reg("index"), I32), I64)
        at = e.offsets["targets"]
        n = b.zext(e.load_stream(at, I32), I64)
        i = b.select(b.icmp_unsigned("<", idx, n), idx, n)
        off = b.sext(e.load_stream(b.add(_c(I64, at + 4), b.mul(i, _c(I64, 4))), I32), I64)
        e.poll_if_backward(off)
        e.jump(e.at(off))
    elif name == "return":
        _copy_slots(e, e.offsets["results"])
        csp = e.ctx_get("csp")
        ok = e.split(b.icmp_unsigned("==", csp, e.ctx_get("cs_base")), "entry_return")
        e.exit(Status.RETURNED)
        b.position_at_end(ok)
        top = b.sub(csp, _c(I64, 16))
        e.ctx_set("csp", top)
        ptr = b.inttoptr(top, P64)
        ret_pc = b.inttoptr(b.load(ptr, align=8), P8)
        ret_fp = b.inttoptr(b.load(b.gep(ptr, [_c(I64, 1)]), align=8), P64)
        e.jump(ret_pc, ret_fp)
    elif name in ("call", "call_indirect"):  # no poll: call depth is bounded anyway
        f = e.index("func") if name == "call" else _indirect_target(e)
        entry = _entry_of(e, f)
        newfp = b.gep(e.fp, [e.index("frame")])
        _frame_fits(e, f, newfp)
        csp = e.ctx_get("csp")
        e.exit_if(b.icmp_unsigned(">=", csp, e.ctx_get("cs_limit")), Status.STACK_EXHAUSTED)
        ptr = b.inttoptr(csp, P64)
        b.store(b.ptrtoint(e.next_pc(), I64), ptr, align=8)
        b.store(b.ptrtoint(e.fp, I64), b.gep(ptr, [_c(I64, 1)]), align=8)
        e.ctx_set("csp", b.add(csp, _c(I64, 16)))
        e.jump(entry, newfp)
    elif name in ("return_call", "return_call_indirect"):  # unbounded: poll
        e.poll_interrupt()
        f = e.index("func") if name == "return_call" else _indirect_target(e)
        entry = _entry_of(e, f)
        _frame_fits(e, f, e.fp)
        _copy_slots(e, e.offsets["args"])
        e.jump(entry)
    elif name == "call_host":
        e.exit(Status.HOST_CALL)
    elif name == "unreachable":
        e.exit(Status.TRAP, 0)
    elif name == "trap":
        e.exit(Status.TRAP, b.zext(e.operand("code"), I64))
    elif name == "fuel":
        left = b.sub(e.ctx_get("fuel"), b.zext(e.operand("units"), I64))
        e.exit_if(b.icmp_signed("<", left, _c(I64, 0)), Status.OUT_OF_FUEL)
        e.ctx_set("fuel", left)
        e.next()
    else:
        raise KeyError(name)


def body_move(e: Emit):
    b, name = e.b, e.op.name
    if name == "mov":
        e.set_reg("dst", e.reg("src"))
    elif name in ("mov128", "const128", "select128"):
        if name == "mov128":
            v = e.vreg("src")
        elif name == "const128":
            v = e.operand("imm")
        else:
            c = b.icmp_unsigned("!=", b.trunc(e.reg("cond"), I32), _c(I32, 0))
            v = b.select(c, e.vreg("a"), e.vreg("b"))
        e.set_vreg("dst", v)
    elif name in ("const32", "constf32", "constf64"):
        e.set_reg("dst", e.operand("imm"))
    elif name == "const64":
        e.set_reg("dst", b.sext(e.operand("imm"), I64))
    elif name == "const64_pool":
        e.set_reg("dst", e.pool(e.operand("pool")))
    elif name == "select":
        c = b.icmp_unsigned("!=", b.trunc(e.reg("cond"), I32), _c(I32, 0))
        e.set_reg("dst", b.select(c, e.reg("a"), e.reg("b")))
    else:
        raise KeyError(name)
    e.next()


def _bulk_memory(e: Emit):
    """memory.copy/memory.fill on memory 0: both ranges are checked before any byte moves
    (then libc's memmove/memset); other memories go to Python."""
    b = e.b
    mems = ("dst_mem", "src_mem") if e.op.name == "memory.copy" else ("mem",)
    for m in mems:
        e.exit_if(b.icmp_unsigned("!=", e.operand(m), _c(I32, 0)), SLOW)

    def u32(name):
        return b.zext(b.trunc(e.reg(name), I32), I64)

    d, n = u32("d"), u32("n")
    past = b.icmp_unsigned(">", b.add(d, n), e.memlen)
    if e.op.name == "memory.copy":
        src = u32("s")
        past = b.or_(past, b.icmp_unsigned(">", b.add(src, n), e.memlen))
    e.trap_if(past, TRAP_CODE["mem"])
    dst = b.gep(e.mem, [d])
    if e.op.name == "memory.copy":
        e.call_intr("llvm.memmove.p0i8.p0i8.i64", ir.VoidType(),
                    [dst, b.gep(e.mem, [src]), n, _c(I1, 0)])
    else:
        e.call_intr("llvm.memset.p0i8.i64", ir.VoidType(),
                    [dst, b.trunc(e.reg("val"), I8), n, _c(I1, 0)])
    e.next()


def body_state(e: Emit):
    b, name = e.b, e.op.name
    if name == "ref.null":  # handle 0 is null (see native.py)
        e.set_reg("dst", _c(I64, 0))
        e.next()
    elif name == "ref.is_null":
        e.set_reg("dst", b.zext(b.icmp_unsigned("==", e.reg("src"), _c(I64, 0)), I32))
        e.next()
    elif name == "memory.size":
        e.exit_if(b.icmp_unsigned("!=", e.operand("mem"), _c(I32, 0)), SLOW)
        e.set_reg("dst", b.lshr(e.memlen, _c(I64, 16)))
        e.next()
    elif name in ("memory.grow", "table.grow"):
        e.exit(Status.GROW)
    elif name.startswith("global."):  # indices and types are checked at installation
        g = b.gep(b.inttoptr(e.ctx_get("globals"), P64), [b.mul(e.index("global"), _c(I64, 2))])
        p128 = b.bitcast(g, I128.as_pointer())
        if name == "global.get":
            e.set_reg("dst", b.load(g, align=8))
        elif name == "global.set":  # the mask slot keeps an i32/f32 global 32 bits wide
            mask = b.load(b.gep(g, [_c(I64, 1)]), align=8)
            b.store(b.and_(e.reg("src"), mask), g, align=8)
        elif name == "global.get128":
            e.set_vreg("dst", b.load(p128, align=8))
        else:
            b.store(e.vreg("src"), p128, align=8)
        e.next()
    elif name == "table.size":
        e.set_reg("dst", _table_field(e, 2))
        e.next()
    elif name in ("memory.copy", "memory.fill"):
        _bulk_memory(e)
    else:
        e.exit(SLOW)


class PartEmit(Emit):
    """The emission context of one part of a fused op: the part's operand names map to the
    fused op's fields; `next()` falls through to the next part (or dispatches after the
    whole op); a linked operand reads the value the previous part wrote, not its slot."""

    def __init__(self, e: Emit, part: Op, names: dict, bound: dict, join):
        super().__init__(e.gen, e.op, e.b, e.pc, e.fp, e.mem, e.memlen, e.ctx, general=e.general)
        self.fused, self.op = e.op, part
        self.offsets = {n: self.offsets[f] for n, f in names.items()}
        self.kinds = {o.name: o.kind for o in part.operands}
        self.bound, self.join = bound, join
        self.written: list = []  # values stored to `dst`
        self.nexts = 0

    def reg(self, name: str):
        v = self.bound.get(name)
        return v if v is not None else super().reg(name)

    def set_reg(self, name: str, v):
        if v.type.width < 64:
            v = self.b.zext(v, I64)
        super().set_reg(name, v)
        if name == "dst":
            self.written.append(v)

    def next_pc(self):
        return self.at(self.gen.size(self.fused))

    def next(self):
        self.nexts += 1
        if self.join is None:
            self.jump(self.next_pc())
        else:
            self.b.branch(self.join)

    def result(self):
        """The value written to `dst` when it reaches the join on one path, else None."""
        return self.written[0] if self.nexts == 1 and len(self.written) == 1 else None


def body_fused(e: Emit):
    parts = e.op.parts
    value = None
    for k, ((part, names), link) in enumerate(zip(parts, e.op.links)):
        bound = {link: value} if link is not None and value is not None else {}
        join = e.b.append_basic_block(f"part{k + 1}") if k + 1 < len(parts) else None
        pe = PartEmit(e, part, names, bound, join)
        body_for(part)(pe)
        if join is not None:
            e.b.position_at_end(join)
            value = pe.result()


def body_for(op: Op):
    """The template that emits `op`."""
    if op.parts:
        return body_fused
    if op.group == "control":
        return body_control
    if op.group == "move":
        return body_move
    if op.group == "memory" and op.name.split(".", 1)[1].removesuffix("_m0").startswith(("load", "store")):
        return body_memory
    if op.numerics and (op.numerics in SCALAR or op.numerics in SIMD):
        return body_numeric
    return body_state


def native_ops() -> list[str]:
    """Ops whose handler finishes inline (no Python round trip in the common case)."""
    out = []
    for op in OP_LIST:
        body = body_for(op)
        if body is body_state and not (op.name in ("ref.null", "ref.is_null", "memory.size",
                                                   "table.size", "memory.copy", "memory.fill")
                                       or op.name.startswith("global.")):
            continue
        if op.name == "call_host":
            continue
        out.append(op.name)
    return out


# ==========================================================================================
# Module generation per dispatch mode
# ==========================================================================================
class Generator:
    def __init__(self, mode: str, triple: str = ""):
        if mode not in MODES:
            raise ValueError(f"unknown dispatch mode {mode!r}")
        self.mode = mode
        self.module = ir.Module(name=f"deadeye_{mode}")
        if triple:
            self.module.triple = triple
        self.intr = Intrinsics(self.module)
        self.general: dict[int, ir.Function] = {}  # op index -> its twin for long slot lists

    def size(self, op: Op) -> int:
        base = DIRECT_PREFIX if self.mode == "direct" else len(op.prefix)
        return base + sum(o.kind.width for o in op.operands)

    # -- mode hooks ---------------------------------------------------------------------------
    def jump(self, e: Emit, pc, fp, mem, memlen):
        b = e.b
        if self.mode == "loop":
            blk = b.block
            for phi, v in zip(self.phis, (pc, fp, mem, memlen)):
                phi.add_incoming(v, blk)
            b.branch(self.head)
            return
        fn = self.next_handler(b, pc)
        r = b.call(fn, [pc, fp, mem, memlen, e.ctx], tail="musttail")
        b.ret(r)

    def leave(self, e: Emit, status):
        e.b.ret(status)

    def _slot_index(self, b, pc):
        b0 = b.load(pc, align=1)
        ext = b.load(b.bitcast(b.gep(pc, [_c(I64, 1)]), I16.as_pointer()), align=1)
        is_ext = b.icmp_unsigned("==", b0, _c(I8, ESCAPE))
        return b.select(is_ext, b.add(b.zext(ext, I32), _c(I32, 256)), b.zext(b0, I32))

    def next_handler(self, b, pc):
        if self.mode == "direct":
            h = b.load(b.bitcast(pc, I64.as_pointer()), align=1)
            return b.inttoptr(h, HPTR)
        idx = self._slot_index(b, pc)
        return b.load(b.gep(self.table, [_c(I32, 0), idx]), align=8)

    # -- building -----------------------------------------------------------------------------
    def _new_fn(self, name):
        fn = ir.Function(self.module, HTY, name)
        fn.attributes.add("nounwind")
        return fn

    def build(self) -> ir.Module:
        if self.mode == "loop":
            self._build_loop()
        else:
            self._build_handlers()
        self._build_run()
        return self.module

    def _build_run(self):
        """`i32 deadeye_run(i64* ctx)`: `deadeye_enter` with pc, fp, mem and memlen taken
        from the context, so that Python's call through ctypes passes one argument (each
        converted argument costs about as much as the native work of a short run)."""
        fn = ir.Function(self.module, ir.FunctionType(I32, [P64]), "deadeye_run")
        fn.attributes.add("nounwind")
        ctx = fn.args[0]
        b = ir.IRBuilder(fn.append_basic_block())

        def field(name, t):
            v = b.load(b.gep(ctx, [_c(I64, CTX[name])]), align=8)
            return v if t is I64 else b.inttoptr(v, t)

        enter = self.module.get_global("deadeye_enter")
        args = [field("pc", P8), field("fp", P64), field("mem", P8), field("memlen", I64), ctx]
        b.ret(b.call(enter, args))

    def _build_handlers(self):
        handlers = {}
        for op in OP_LIST:
            fn = handlers[op.index] = self._new_fn(f"h_{op.index}")
        bad = self._new_fn("h_bad")
        b = ir.IRBuilder(bad.append_basic_block())
        pc, fp, _m, _l, ctx = bad.args
        b.store(b.ptrtoint(pc, I64), b.gep(ctx, [_c(I64, CTX["pc"])]), align=8)
        b.store(b.ptrtoint(fp, I64), b.gep(ctx, [_c(I64, CTX["fp"])]), align=8)
        b.ret(_c(I32, SLOW))
        slots = [bad] * TABLE_SIZE
        for op in OP_LIST:
            slots[table_slot(op)] = handlers[op.index]
        arr = ir.ArrayType(HPTR, TABLE_SIZE)
        self.table = ir.GlobalVariable(self.module, arr, "deadeye_dispatch")
        self.table.global_constant = True
        self.table.initializer = ir.Constant(arr, slots)
        for op in OP_LIST:
            if any(o.kind.name == "slots" for o in op.operands):
                twin = self.general[op.index] = self._new_fn(f"h_{op.index}_general")
                twin.attributes.add("noinline")  # else the optimizer puts it back
        for op in OP_LIST:
            fn = handlers[op.index]
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            body_for(op)(Emit(self, op, b, *fn.args))
            twin = self.general.get(op.index)
            if twin is not None:
                b = ir.IRBuilder(twin.append_basic_block("entry"))
                body_for(op)(Emit(self, op, b, *twin.args, general=True))
        enter = self._new_fn("deadeye_enter")
        b = ir.IRBuilder(enter.append_basic_block())
        pc, fp, mem, memlen, ctx = enter.args
        r = b.call(self.next_handler(b, pc), list(enter.args), tail="musttail")
        b.ret(r)

    def _build_loop(self):
        fn = self._new_fn("deadeye_enter")
        entry = fn.append_basic_block("entry")
        self.head = fn.append_basic_block("head")
        b = ir.IRBuilder(entry)
        b.branch(self.head)
        b.position_at_end(self.head)
        self.phis = [b.phi(t) for t in (P8, P64, P8, I64)]
        for phi, a in zip(self.phis, fn.args[:4]):
            phi.add_incoming(a, entry)
        pc, fp, mem, memlen = self.phis
        ctx = fn.args[4]
        idx = self._slot_index(b, pc)
        bad = fn.append_basic_block("bad")
        sw = b.switch(idx, bad)
        b.position_at_end(bad)
        b.store(b.ptrtoint(pc, I64), b.gep(ctx, [_c(I64, CTX["pc"])]), align=8)
        b.store(b.ptrtoint(fp, I64), b.gep(ctx, [_c(I64, CTX["fp"])]), align=8)
        b.ret(_c(I32, SLOW))
        for op in OP_LIST:
            blk = fn.append_basic_block(f"op_{op.index}")
            sw.add_case(_c(I32, table_slot(op)), blk)
            b.position_at_end(blk)
            body_for(op)(Emit(self, op, b, pc, fp, mem, memlen, ctx, general=True))


def generate(mode: str, triple: str = "") -> ir.Module:
    """The handler module of a dispatch mode, as llvmlite IR."""
    return Generator(mode, triple).build()
