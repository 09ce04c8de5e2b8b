"""Lifting Wasm function bodies to the SSA IR.

    env = module_env(module)            # once per module: the IR's view of its index spaces
    func = lift_function(module, 3, env)  # defined function 3 (not counting imports)

or `ModuleLifter(module)`, which keeps the env and lifts each function on first request
(`lift_module(module)` lifts them all at once, for tools). Nothing is lifted until asked. A body that has not been validated yet (lazy parsing) is
validated first: the lifter relies on the validator's guarantees and does no type checks
of its own beyond what the IR builder does.

How the translation goes:
- The operand stack becomes a Python list of SSA values. Values below a structured
  block's parameters are defined before the block and so dominate everything in it and
  after it: they stay as they are. Only label arities become block parameters.
- Locals are builder variables (`def_var`/`use_var`/`seal_block`); a local never assigned
  on a path reads as the zero of its type (the builder supplies it).
- `block`/`if` get a continuation block (parameters = the block's results) only when
  something branches to it; a `block` nobody branches to simply continues in place.
  `loop` gets a header block (parameters = the loop's params), sealed at the loop's `end`.
  The then/else arms of `if` are fresh blocks without parameters: the `if` parameters
  dominate both arms. Branches to the function's label are `return`s (through a shared
  return block for `br_if`/`br_table`).
- Code after an unconditional transfer (`br`, `br_table`, `return`, `unreachable`, tail
  calls) is skipped up to the `else`/`end` that closes the current construct.

Fuel rule: every Wasm instruction that executes costs 1, charged in the IR block that is
current when the lifter reaches it (so `block`, `loop`, `if`, `br_if`, `br` ... are charged
in the block that executes them, and the loop body's instructions in the loop header and
its successors). Control reaching an instruction sequentially executes it; a branch does
not execute what it jumps over: a branch to a `block`/`if` label resumes after its `end`
(the `end` is executed only by falling into it), a branch to a `loop` label resumes at the
first instruction of the body (`loop` itself runs once, on entry), the false edge of an
`if` resumes after its `else` (or after its `end` when it has none), and falling into
`else` executes it and then jumps past the `end`. The function's final `end` executes
when the body falls through to it. Skipped (unreachable) code costs nothing. Hence the
fuel summed over the IR blocks a run passes through equals the number of Wasm
instructions it executed; on a path that traps, the trapping block counts in full (fuel
is charged per block, so the instructions after the trapping one are counted too).

Instructions that may trap or call (IR effects MAY_TRAP or CALL) record the byte offset of
their Wasm instruction (`Instruction.offset`); each block records the offset of the first
Wasm instruction charged to it (`Block.offset`).
"""

from __future__ import annotations

from deadeye.ir import opcodes as irops
from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Block, Function, IRModule
from deadeye.ir.types import FuncType, ValType

from .decoder import decode_body_raw
from .module import Module
from .module import validate_function as _validate_function
from .opcodes import OPS as WASM_OPS

__all__ = ["module_env", "lift_function", "lift_module", "ModuleLifter", "HANDLED_OPS"]

_OFFSET_EFFECTS = irops.Effect.MAY_TRAP | irops.Effect.CALL


def module_env(module: Module) -> IRModule:
    """The IR module environment of a decoded module: its types, every function's type
    index, global types, table element types, the memory count, the data segment count
    and the element segment types (imports first in every index space). Functions are not
    lifted: `functions` starts empty."""
    func_types: list[int] = []
    globals_: list[tuple[ValType, bool]] = []
    tables: list[ValType] = []
    memories = 0
    for imp in module.imports:
        if imp.kind == "func":
            func_types.append(imp.desc)
        elif imp.kind == "table":
            tables.append(imp.desc.elem)
        elif imp.kind == "memory":
            memories += 1
        else:
            globals_.append((imp.desc.valtype, imp.desc.mutable))
    func_types.extend(module.func_types)
    globals_.extend((g.type.valtype, g.type.mutable) for g in module.globals)
    tables.extend(t.elem for t in module.tables)
    memories += len(module.memories)
    return IRModule(types=list(module.types), func_types=func_types, globals=globals_,
                    tables=tables, memories=memories, datas=len(module.datas),
                    elems=[e.elem_type for e in module.elems])


class _Frame:
    """A structured control construct being lifted."""

    __slots__ = ("kind", "params", "results", "height", "label", "label_params",
                 "else_block", "saved")

    def __init__(self, kind: str, params: tuple, results: tuple, height: int):
        self.kind = kind  # "func", "block", "loop", "if" (then arm), "else" (else arm)
        self.params = params
        self.results = results
        self.height = height  # operand stack height below the construct's parameters
        self.label: Block | None = None  # branch target: loop header or continuation
        self.label_params: list = []  # the label block's own (non-SSA) parameters
        self.else_block: Block | None = None
        self.saved: list = []  # `if` parameters, for the else arm


def _memarg(imm):  # Wasm (align, offset, mem) -> IR (mem, offset)
    return (imm[2], imm[1])


def _memarg_lane(imm):  # Wasm (align, offset, mem, lane) -> IR (mem, offset, lane)
    return (imm[2], imm[1], imm[3])


_IMM_ADAPTERS = {"memarg": _memarg, "memarg+lane": _memarg_lane, "select_types": lambda imm: ()}
# Wasm ops whose IR op has another name.
_IR_NAME = {"select_t": "select"}
# Ops with a dedicated handler in `_Lifter`; every other Wasm op maps to the IR op of
# the same name through the generic value-op path.
_CONTROL = ("unreachable nop block loop if else end br br_if br_table return drop "
            "local.get local.set local.tee return_call return_call_indirect").split()


def _build_value_ops() -> dict:
    """Wasm op name -> (IR OpInfo, operand count or None when it depends on the
    immediates, immediate adapter, whether to record the offset)."""
    table = {}
    for name, winfo in WASM_OPS.items():
        if name in _CONTROL:
            continue
        info = irops.OPS[_IR_NAME.get(name, name)]
        if info.rule is None:
            nargs = len(info.params)
        elif info.name == "select":
            nargs = 3
        else:
            nargs = None
        table[name] = (info, nargs, _IMM_ADAPTERS.get(winfo.imm),
                       bool(info.effects & _OFFSET_EFFECTS))
    return table


_VALUE_OPS = _build_value_ops()
HANDLED_OPS = frozenset(_VALUE_OPS) | frozenset(_CONTROL)


def _has_else(raw) -> set[int]:
    """Indices (into the instruction list) of the `if`s that have an `else`."""
    out, open_ = set(), []
    for i, (info, _, _) in enumerate(raw):
        name = info.name
        if name in ("block", "loop", "if"):
            open_.append(i)
        elif name == "else":
            out.add(open_[-1])
        elif name == "end" and open_:
            open_.pop()
    return out


class _Lifter:
    def __init__(self, module: Module, env: IRModule, defined_index: int):
        self.module = module
        self.env = env
        func_index = module.num_imported_funcs + defined_index
        self.sig: FuncType = module.func_type(func_index)
        self.fb = FunctionBuilder(module.func_name(func_index), self.sig, env, func_index)
        self.locals, self.raw = decode_body_raw(module, defined_index)
        self.stack: list = []
        self.frames: list[_Frame] = []
        self.reachable = True
        self.ret_block: Block | None = None

    # -- helpers ------------------------------------------------------------------------
    def block_type(self, bt) -> tuple[tuple, tuple]:
        if bt is None:
            return (), ()
        if type(bt) is int:
            ft = self.module.types[bt]
            return ft.params, ft.results
        return (), (bt,)

    def top(self, n: int) -> list:
        return self.stack[len(self.stack) - n:] if n else []

    def new_label_block(self, types) -> tuple[Block, list]:
        fb = self.fb
        block = fb.create_block()
        return block, [fb.append_param(block, t) for t in types]

    def target(self, depth: int) -> tuple[Block, int]:
        """The block a branch to label `depth` goes to, and the label's arity."""
        frame = self.frames[-1 - depth]
        if frame.kind == "loop":
            return frame.label, len(frame.params)
        if frame.kind == "func":
            if self.ret_block is None:
                fb = self.fb
                here = fb.block
                self.ret_block, params = self.new_label_block(self.sig.results)
                fb.switch_to(self.ret_block)
                fb.ret(*params)
                fb.switch_to(here)
            return self.ret_block, len(self.sig.results)
        if frame.label is None:
            frame.label, frame.label_params = self.new_label_block(frame.results)
        return frame.label, len(frame.results)

    def dead(self) -> None:
        """Control cannot fall through the current instruction."""
        self.reachable = False
        del self.stack[self.frames[-1].height:]

    # -- the main loop ------------------------------------------------------------------
    def run(self) -> Function:
        fb = self.fb
        for i, t in enumerate(self.sig.params):
            fb.declare_var(i, t)
            fb.def_var(i, fb.entry, fb.params[i])
        base = len(self.sig.params)
        for i, t in enumerate(self.locals):
            fb.declare_var(base + i, t)
        self.frames.append(_Frame("func", (), self.sig.results, 0))
        has_else = _has_else(self.raw)
        value_ops = _VALUE_OPS
        handlers = {name: getattr(self, "op_" + name.replace(".", "_")) for name in _CONTROL}
        dead_depth = 0
        for pos, (info, imm, off) in enumerate(self.raw):
            name = info.name
            if not self.reachable:
                # Skip dead code, following its nesting to find where this construct ends.
                if name in ("block", "loop", "if"):
                    dead_depth += 1
                elif name == "end":
                    if dead_depth:
                        dead_depth -= 1
                    else:
                        self.op_end(imm, off)
                elif name == "else" and not dead_depth:
                    self.op_else(imm, off)
                continue
            block = fb.block
            block.fuel += 1
            if block.offset is None:
                block.offset = off
            vop = value_ops.get(name)
            if vop is not None:
                self.value_op(vop, imm, off)
            elif name == "if":
                self.op_if(imm, pos in has_else)
            else:
                handlers[name](imm, off)
        return fb.finish()

    def value_op(self, vop, imm, off) -> None:
        info, nargs, adapt, want_offset = vop
        if adapt is not None:
            imm = adapt(imm)
        if nargs is None:
            nargs = len(irops.signature(info, imm, (), self.env)[0])
        stack = self.stack
        if nargs:
            args = stack[-nargs:]
            del stack[-nargs:]
        else:
            args = ()
        ins = self.fb.insert(info.name, args, imm, at=off if want_offset else None)
        stack.extend(ins.results)

    # -- control --------------------------------------------------------------------------
    def op_unreachable(self, imm, off) -> None:
        self.fb.unreachable(at=off)
        self.dead()

    def op_nop(self, imm, off) -> None:
        pass

    def op_drop(self, imm, off) -> None:
        self.stack.pop()

    def op_block(self, imm, off) -> None:
        params, results = self.block_type(imm[0])
        self.frames.append(_Frame("block", params, results, len(self.stack) - len(params)))

    def op_loop(self, imm, off) -> None:
        params, results = self.block_type(imm[0])
        frame = _Frame("loop", params, results, len(self.stack) - len(params))
        frame.label, frame.label_params = self.new_label_block(params)
        self.fb.jump(frame.label, self.top(len(params)))
        self.fb.switch_to(frame.label)
        self.stack[frame.height:] = frame.label_params
        self.frames.append(frame)

    def op_if(self, imm, has_else: bool) -> None:
        fb = self.fb
        cond = self.stack.pop()
        params, results = self.block_type(imm[0])
        frame = _Frame("if", params, results, len(self.stack) - len(params))
        frame.saved = self.top(len(params))
        then_block = fb.create_block()
        if has_else:
            frame.else_block = fb.create_block()
            fb.br_if(cond, then_block, (), frame.else_block, ())
            fb.seal_block(frame.else_block)
        else:
            # No else: the false edge carries the parameters (= results) to the end.
            frame.label, frame.label_params = self.new_label_block(results)
            fb.br_if(cond, then_block, (), frame.label, frame.saved)
        fb.seal_block(then_block)
        fb.switch_to(then_block)
        self.frames.append(frame)

    def op_else(self, imm, off) -> None:
        fb = self.fb
        frame = self.frames[-1]
        if self.reachable:  # the then arm falls into `else`: on to the continuation
            label, n = self.target(0)
            fb.jump(label, self.top(n))
        fb.switch_to(frame.else_block)
        self.stack[frame.height:] = frame.saved
        frame.kind = "else"
        self.reachable = True

    def op_end(self, imm, off) -> None:
        fb = self.fb
        frame = self.frames.pop()
        stack = self.stack
        if frame.kind == "func":
            if self.reachable:
                fb.ret(*self.top(len(self.sig.results)))
            return
        if frame.kind == "loop":
            fb.seal_block(frame.label)  # every branch back to the header is known now
            if not self.reachable:
                del stack[frame.height:]
            return
        if frame.label is None:  # nothing branched to the end: continue in place
            if not self.reachable:
                del stack[frame.height:]
            return
        if self.reachable:
            fb.jump(frame.label, self.top(len(frame.results)))
        fb.seal_block(frame.label)
        fb.switch_to(frame.label)
        stack[frame.height:] = frame.label_params
        self.reachable = True

    def op_br(self, imm, off) -> None:
        depth = imm[0]
        if self.frames[-1 - depth].kind == "func":
            self.fb.ret(*self.top(len(self.sig.results)))
        else:
            label, n = self.target(depth)
            self.fb.jump(label, self.top(n))
        self.dead()

    def op_return(self, imm, off) -> None:
        self.fb.ret(*self.top(len(self.sig.results)))
        self.dead()

    def op_br_if(self, imm, off) -> None:
        fb = self.fb
        cond = self.stack.pop()
        label, n = self.target(imm[0])
        next_block = fb.create_block()
        fb.br_if(cond, label, self.top(n), next_block, ())
        fb.seal_block(next_block)
        fb.switch_to(next_block)

    def op_br_table(self, imm, off) -> None:
        index = self.stack.pop()
        depths, default = imm
        calls = []
        for depth in depths + (default,):
            label, n = self.target(depth)
            calls.append((label, self.top(n)))
        self.fb.br_table(index, calls[:-1], calls[-1])
        self.dead()

    def op_return_call(self, imm, off) -> None:
        ft = self.module.func_type(imm[0])
        n = len(ft.params)
        self.fb.return_call(imm[0], self.top(n), at=off)
        self.dead()

    def op_return_call_indirect(self, imm, off) -> None:
        ft = self.module.types[imm[0]]
        index = self.stack.pop()
        self.fb.return_call_indirect(imm[0], imm[1], self.top(len(ft.params)), index,
                                     at=off)
        self.dead()

    # -- locals ---------------------------------------------------------------------------
    def op_local_get(self, imm, off) -> None:
        self.stack.append(self.fb.use_var(imm[0], self.fb.block))

    def op_local_set(self, imm, off) -> None:
        self.fb.def_var(imm[0], self.fb.block, self.stack.pop())

    def op_local_tee(self, imm, off) -> None:
        self.fb.def_var(imm[0], self.fb.block, self.stack[-1])


# -- public entry points ------------------------------------------------------------------


def lift_function(module: Module, defined_index: int, env: IRModule | None = None) -> Function:
    """Lift defined function `defined_index` (its index among the module's own functions,
    imports not counted) to an IR `Function` whose `index` is its function index. `env`
    is `module_env(module)` (computed here when not given; pass it to lift many functions).
    The body is validated first unless it already was. Raises DecodeError/ValidationError
    for a bad body."""
    if not 0 <= defined_index < len(module.func_types):
        raise ValidationError(f"no defined function {defined_index} "
                              f"(the module defines {len(module.func_types)})")
    if defined_index not in module.validated:
        _validate_function(module, defined_index)
    if env is None:
        env = module_env(module)
    return _Lifter(module, env, defined_index).run()


class ModuleLifter:
    """Lazily lifted functions of one module: `env` is built once; `function(i)` lifts
    defined function `i` on first request and keeps it; `function_by_index(f)` takes a
    function index (imports first). Lifted functions are also appended to
    `env.functions`, in the order they were lifted."""

    def __init__(self, module: Module, env: IRModule | None = None):
        self.module = module
        self.env = module_env(module) if env is None else env
        self._lifted: dict[int, Function] = {}

    def function(self, defined_index: int) -> Function:
        func = self._lifted.get(defined_index)
        if func is None:
            func = lift_function(self.module, defined_index, self.env)
            self._lifted[defined_index] = func
            self.env.functions.append(func)
        return func

    def function_by_index(self, func_index: int) -> Function:
        defined = func_index - self.module.num_imported_funcs
        if defined < 0:
            raise ValidationError(f"function {func_index} is imported: it has no body")
        return self.function(defined)

    def lifted(self) -> dict[int, Function]:
        """The functions lifted so far, by defined index."""
        return dict(self._lifted)


def lift_module(module: Module) -> IRModule:
    """Lift every defined function now (for tools such as disassembly): the module env
    with `functions` holding them all, in definition order."""
    lifter = ModuleLifter(module)
    for i in range(len(module.func_types)):
        lifter.function(i)
    return lifter.env
