"""Building IR functions.

`FunctionBuilder` makes a `Function`: it creates the entry block (whose parameters are the
function's), more blocks, block parameters, instructions (typed from the opcode table) and
terminators, always appending to the current block (`switch_to`).

    fb = FunctionBuilder("add1", FuncType((I32,), (I32,)))
    one = fb.const(I32, 1)
    fb.ret(fb.ins("i32.add", fb.params[0], one))
    func = fb.finish()

It also constructs SSA form for a lifter that thinks in mutable variables (Wasm locals,
operand-stack slots), in the style of Braun et al., "Simple and Efficient Construction of
Static Single Assignment Form", with block parameters in place of phi nodes:

- `declare_var(var, type)` once per variable (any hashable key);
- `def_var(var, block, value)` when a variable is assigned;
- `use_var(var, block)` returns the value reaching a use, adding block parameters where
  control flow merges (and passing the right arguments on every incoming edge);
- `seal_block(block)` once every predecessor of `block` is known (all branches to it
  exist); a block must not gain predecessors after sealing.

A block parameter whose incoming arguments are all one value (or itself) is trivial: it
is removed, its arguments dropped from every incoming edge, and its uses are redirected
to that value (`finish()` rewrites the operands; parameters that became trivial through
the removal are removed in turn). A use in a block no path reaches gets the variable's
zero value (Wasm locals start at zero; such code never runs).

Branches to a block that still has pending SSA parameters pass arguments only for the
block's other parameters; the builder fills the rest when the block is sealed.
"""

from __future__ import annotations

from deadeye.ir import opcodes
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Block, BlockCall, Function, Instruction, Value
from deadeye.ir.types import FuncType, ValType


def _zero_instruction(ty: ValType) -> Instruction:
    if ty.is_ref:
        return Instruction(opcodes.OPS["ref.null"], imm=(ty,))
    return Instruction(opcodes.OPS[f"{ty}.const"], imm=(0,))


class FunctionBuilder:
    def __init__(self, name: str, sig: FuncType, env=None, index: int | None = None):
        self.func = Function(name, sig, index)
        self.env = env
        self._edges: dict[Block, list[tuple[Block, BlockCall]]] = {}
        self.block = self.create_block()
        for t in sig.params:
            self.append_param(self.block, t)
        # SSA construction state
        self._var_types: dict = {}
        self._defs: dict = {}  # var -> {block: Value}
        self._sealed: set[Block] = set()
        self._incomplete: dict[Block, dict] = {}  # block -> {var: param}
        self._ssa_params: set[Value] = set()
        self._alias: dict[Value, Value] = {}
        self._param_users: dict[Value, set[Value]] = {}
        self._sealed.add(self.entry)  # never a branch target

    # -- blocks ---------------------------------------------------------------------------
    @property
    def entry(self) -> Block:
        return self.func.blocks[0]

    @property
    def params(self) -> list[Value]:
        return self.func.blocks[0].params

    def create_block(self, fuel: int = 0, offset: int | None = None) -> Block:
        block = self.func.new_block(fuel, offset)
        self._edges[block] = []
        return block

    def append_param(self, block: Block, type: ValType) -> Value:
        if self._edges[block]:
            raise ValidationError(f"{block} already has predecessors; add parameters first")
        v = self.func.new_value(ValType(type), block)
        block.params.append(v)
        return v

    def switch_to(self, block: Block) -> None:
        self.block = block

    def predecessors(self, block: Block) -> list[Block]:
        """Distinct predecessor blocks known so far."""
        out: list[Block] = []
        for pred, _ in self._edges[block]:
            if pred not in out:
                out.append(pred)
        return out

    def is_terminated(self, block: Block | None = None) -> bool:
        return (block or self.block).terminator is not None

    # -- instructions -----------------------------------------------------------------------
    def insert(self, name: str, args=(), imm: tuple = (), result_types=None,
               at: int | None = None) -> Instruction:
        """Append a non-terminator to the current block and return it. `result_types` is
        needed only for calls, global.get and table.get when the builder has no env."""
        info = opcodes.op(name)
        if info.terminator:
            raise ValidationError(f"{name} is a terminator; use the terminator methods")
        ins = Instruction(info, args, imm, offset=at)
        results = self._type_check(ins, result_types)
        ins.results = tuple(self.func.new_value(t, ins, i) for i, t in enumerate(results))
        self._append(ins)
        return ins

    def ins(self, name: str, *args: Value, imm: tuple | None = None, result_types=None,
            at: int | None = None, **fields):
        """Append an op; immediates go by field name (`mem=0, offset=8`) or as `imm`.
        Returns the single result, a tuple of several, or None."""
        if imm is None:
            imm = self._imm_from_fields(name, fields)
        elif fields:
            raise ValidationError("give immediates either as imm= or by field name")
        ins = self.insert(name, args, imm, result_types, at)
        if len(ins.results) == 1:
            return ins.results[0]
        return ins.results or None

    def const(self, type: ValType, bits: int, at: int | None = None) -> Value:
        """A constant of `type` from its bit pattern (negative ints wrap)."""
        type = ValType(type)
        width = opcodes.BITS[str(type)]
        return self.ins(f"{type}.const", imm=(bits & ((1 << width) - 1),), at=at)

    # -- terminators ------------------------------------------------------------------------
    def jump(self, target: Block, args=(), at=None) -> Instruction:
        return self.terminate("jump", (), (), [(target, args)], at)

    def br_if(self, cond: Value, then: Block, then_args, else_: Block, else_args=(),
              at=None) -> Instruction:
        return self.terminate("br_if", (cond,), (), [(then, then_args), (else_, else_args)], at)

    def br_table(self, index: Value, targets, default, at=None) -> Instruction:
        """`targets` and `default` are (block, args) pairs."""
        return self.terminate("br_table", (index,), (), list(targets) + [default], at)

    def ret(self, *values: Value, at=None) -> Instruction:
        return self.terminate("return", values, (), [], at)

    def unreachable(self, at=None) -> Instruction:
        return self.terminate("unreachable", (), (), [], at)

    def trap(self, message: str, at=None) -> Instruction:
        return self.terminate("trap", (), (message,), [], at)

    def return_call(self, func_index: int, args, at=None) -> Instruction:
        return self.terminate("return_call", args, (func_index,), [], at)

    def return_call_indirect(self, type_index: int, table: int, args, index: Value,
                             at=None) -> Instruction:
        return self.terminate("return_call_indirect", tuple(args) + (index,),
                              (type_index, table), [], at)

    def terminate(self, name: str, args, imm, targets, at=None) -> Instruction:
        """Set the current block's terminator; `targets` is a list of (block, args)."""
        info = opcodes.op(name)
        if not info.terminator:
            raise ValidationError(f"{name} is not a terminator")
        count = opcodes.TARGET_COUNT[name]
        if (count is not None and len(targets) != count) or (count is None and not targets):
            raise ValidationError(f"{name} takes {count} target(s), got {len(targets)}")
        ins = Instruction(info, args, imm, offset=at)
        self._type_check(ins, ())
        if name == "return" and tuple(a.type for a in args) != self.func.sig.results:
            raise ValidationError(f"return of {[str(a.type) for a in args]} in a function "
                                  f"returning {[str(t) for t in self.func.sig.results]}")
        ins.targets = [self._edge(block, list(bargs)) for block, bargs in targets]
        self._append(ins)
        for call in ins.targets:
            self._edges[call.block].append((self.block, call))
        return ins

    # -- SSA construction -------------------------------------------------------------------
    def declare_var(self, var, type: ValType) -> None:
        self._var_types[var] = ValType(type)
        self._defs[var] = {}

    def def_var(self, var, block: Block, value: Value) -> None:
        if value.type != self._var_types[var]:
            raise ValidationError(f"variable {var!r} is {self._var_types[var]}, "
                                  f"assigned a {value.type}")
        self._defs[var][block] = value

    def use_var(self, var, block: Block) -> Value:
        found = self._lookup(var, block)
        if found is not None:
            return found
        ty = self._var_types[var]
        # Walk backwards (iteratively: functions can be long) to the blocks that define
        # the variable, creating parameters at sealed merge points and unsealed blocks.
        merges: list[Value] = []
        chain: list[Block] = []
        in_chain: set[Block] = set()
        stack = [block]
        while stack:
            b = stack.pop()
            if b in in_chain or self._lookup(var, b) is not None:
                continue
            if b not in self._sealed:
                p = self._new_ssa_param(b, ty)
                self._incomplete.setdefault(b, {})[var] = p
                self._defs[var][b] = p
                continue
            preds = self.predecessors(b)
            if not preds:
                self._defs[var][b] = self._zero(b, ty)
            elif len(preds) == 1:
                chain.append(b)
                in_chain.add(b)
                stack.append(preds[0])
            else:
                p = self._new_ssa_param(b, ty)
                self._defs[var][b] = p
                merges.append(p)
                stack.extend(preds)
        for b in chain:  # a single-predecessor block sees what its predecessor sees
            path, seen = [], set()
            x = b
            while self._lookup(var, x) is None:
                if x in seen:  # a cycle no path enters: unreachable code
                    self._defs[var][x] = self._zero(x, ty)
                    break
                seen.add(x)
                path.append(x)
                x = self.predecessors(x)[0]
            value = self._lookup(var, x)
            for y in path:
                self._defs[var].setdefault(y, value)
        for p in merges:
            self._fill_operands(var, p)
        for p in reversed(merges):
            self._try_remove_trivial(p)
        return self._lookup(var, block)

    def seal_block(self, block: Block) -> None:
        if block in self._sealed:
            return
        self._sealed.add(block)
        pending = self._incomplete.pop(block, {})
        for var, p in pending.items():
            self._fill_operands(var, p)
        for p in pending.values():
            self._try_remove_trivial(p)

    def is_sealed(self, block: Block) -> bool:
        return block in self._sealed

    def finish(self) -> Function:
        """Seal what is left, redirect uses of removed parameters, return the function."""
        for block in self.func.blocks:  # all predecessors are known now
            self.seal_block(block)
        resolve = self._resolve
        for block in self.func.blocks:
            for ins in block.instrs:
                if self._alias:
                    ins.args = [resolve(a) for a in ins.args]
                for call in ins.targets:
                    if any(a is None for a in call.args):
                        raise ValidationError(f"edge {block} -> {call.block} lacks arguments")
                    if self._alias:
                        call.args = [resolve(a) for a in call.args]
        return self.func

    # -- internals --------------------------------------------------------------------------
    def _imm_from_fields(self, name: str, fields: dict) -> tuple:
        info = opcodes.op(name)
        try:
            imm = tuple(fields.pop(f.name) for f in info.imm)
        except KeyError as e:
            raise ValidationError(f"{name} needs immediate {e.args[0]}") from None
        if fields:
            raise ValidationError(f"{name} has no immediate(s) {sorted(fields)}")
        return imm

    def _type_check(self, ins: Instruction, result_types) -> tuple:
        info = ins.op
        problems = opcodes.check_imm(info, ins.imm, self.env)
        if problems:
            raise ValidationError("; ".join(problems))
        for a in ins.args:
            if not isinstance(a, Value):
                raise ValidationError(f"{info.name}: operand {a!r} is not a Value")
        sig = opcodes.signature(info, ins.imm, tuple(a.type for a in ins.args), self.env)
        if sig is None:
            if result_types is None:
                raise ValidationError(f"{info.name} needs result_types (builder has no env)")
            return tuple(ValType(t) for t in result_types)
        params, results = sig
        got = tuple(a.type for a in ins.args)
        if got != tuple(params):
            raise ValidationError(f"{info.name} takes {[str(t) for t in params]}, "
                                  f"got {[str(t) for t in got]}")
        if result_types is not None and tuple(result_types) != tuple(results):
            raise ValidationError(f"{info.name} results are {[str(t) for t in results]}")
        return tuple(results)

    def _append(self, ins: Instruction) -> None:
        block = self.block
        if block.terminator is not None:
            raise ValidationError(f"{block} is already terminated")
        ins.block = block
        block.instrs.append(ins)

    def _edge(self, block: Block, args: list) -> BlockCall:
        if block is self.entry:
            raise ValidationError("the entry block cannot be a branch target")
        if block not in self._edges:
            raise ValidationError(f"{block} is not a block of this function")
        if block in self._sealed:
            raise ValidationError(f"{block} is sealed: it cannot gain predecessors")
        full, it = [], iter(args)
        for p in block.params:
            if p in self._ssa_params:
                full.append(None)  # filled when the block is sealed
            else:
                a = next(it, None)
                if a is None:
                    raise ValidationError(f"too few arguments for {block}")
                if not isinstance(a, Value):
                    raise ValidationError(f"branch argument {a!r} is not a Value")
                if a.type != p.type:
                    raise ValidationError(f"argument {a} is {a.type}, {block} parameter "
                                          f"{p} is {p.type}")
                full.append(a)
        if next(it, None) is not None:
            raise ValidationError(f"too many arguments for {block}")
        return BlockCall(block, full)

    def _new_ssa_param(self, block: Block, ty: ValType) -> Value:
        v = self.func.new_value(ty, block)
        block.params.append(v)
        self._ssa_params.add(v)
        for _, call in self._edges[block]:
            call.args.append(None)
        return v

    def _zero(self, block: Block, ty: ValType) -> Value:
        ins = _zero_instruction(ty)
        ins.results = (self.func.new_value(ty, ins, 0),)
        ins.block = block
        block.instrs.insert(0, ins)
        return ins.results[0]

    def _resolve(self, v: Value) -> Value:
        alias = self._alias
        if v not in alias:
            return v
        root = v
        while root in alias:
            root = alias[root]
        while v in alias and alias[v] is not root:  # path compression
            alias[v], v = root, alias[v]
        return root

    def _lookup(self, var, block: Block) -> Value | None:
        v = self._defs[var].get(block)
        return None if v is None else self._resolve(v)

    def _fill_operands(self, var, p: Value) -> None:
        block = p.defn
        for pred, call in list(self._edges[block]):
            value = self.use_var(var, pred)
            if p not in self._alias:  # use_var may have found p trivial meanwhile
                call.args[block.params.index(p)] = value
                if value in self._ssa_params:
                    self._param_users.setdefault(value, set()).add(p)

    def _try_remove_trivial(self, first: Value) -> None:
        work = [first]
        while work:
            p = work.pop()
            if p in self._alias or p in self._incomplete.get(p.defn, {}).values():
                continue  # removed already, or still waiting for its block to be sealed
            block = p.defn
            idx = block.params.index(p)
            same, trivial = None, True
            for _, call in self._edges[block]:
                a = call.args[idx]
                if a is None:
                    trivial = False
                    break
                a = self._resolve(a)
                if a is p or a is same:
                    continue
                if same is not None:
                    trivial = False
                    break
                same = a
            if not trivial:
                continue
            if same is None:  # only reached from itself: unreachable
                same = self._zero(block, p.type)
            del block.params[idx]
            for _, call in self._edges[block]:
                del call.args[idx]
            self._ssa_params.discard(p)
            self._alias[p] = same
            users = self._param_users.pop(p, set())
            users.discard(p)
            if same in self._ssa_params:
                self._param_users.setdefault(same, set()).update(users)
            work.extend(users)
