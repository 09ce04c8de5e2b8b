"""The IR verifier: `verify(func, env=None)` raises `ValidationError` listing every problem
found (also available as the error's `problems` list); `problems(func, env)` returns them.

It checks:
- structure: at least one block, unique block and value ids, each value defined once and
  knowing its definition, every block non-empty, ending in exactly one terminator and
  with none in the middle; the entry block's parameters are the function's parameters and
  the entry is never a branch target;
- types: immediates, operand types and result types per the opcode table (with a module
  `env` also calls, globals and tables, and index immediates against the index spaces);
- edges: every branch target is a block of the function, branch arguments match the
  target's parameters in number and type, `return` matches the function's results, and a
  tail call's callee returns what the function returns;
- SSA dominance: every use is dominated by its definition (earlier in the same block, or in
  a block that dominates the user's; `networkx.immediate_dominators`). Uses inside
  unreachable blocks are not checked for dominance.
"""

from __future__ import annotations

from deadeye.ir import opcodes
from deadeye.ir.cfg import CFG
from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Block, Function, Instruction, Value


def _types(vs) -> str:
    return "[" + ", ".join(str(v.type) if isinstance(v, Value) else str(v) for v in vs) + "]"


def problems(func: Function, env=None) -> list[str]:
    from deadeye.ir.text import print_instruction

    out: list[str] = []
    if not func.blocks:
        return [f"function %{func.name} has no blocks"]

    def where(block: Block, ins: Instruction | None = None) -> str:
        if ins is None:
            return f"{block!r}"
        try:
            text = print_instruction(ins)
        except Exception:  # a malformed instruction may not print; describe it plainly
            text = repr(ins)
        return f"{block!r}: `{text}`"

    # -- structure and definitions ------------------------------------------------------
    block_set: set[Block] = set()
    block_ids: set[int] = set()
    defs: dict[Value, tuple[Block, int]] = {}  # value -> (block, position); params at -1
    value_ids: dict[int, Value] = {}

    def define(v, block, pos, what):
        if not isinstance(v, Value):
            out.append(f"{what}: {v!r} is not a Value")
            return
        if v in defs:
            out.append(f"{what}: {v!r} is defined more than once")
            return
        other = value_ids.get(v.id)
        if other is not None and other is not v:
            out.append(f"{what}: two values share the id v{v.id}")
        value_ids[v.id] = v
        defs[v] = (block, pos)

    for block in func.blocks:
        if block in block_set:
            out.append(f"{block!r} appears twice in the block list")
            continue
        if block.id in block_ids:
            out.append(f"two blocks share the id {block.id}")
        block_set.add(block)
        block_ids.add(block.id)
        for p in block.params:
            define(p, block, -1, f"{block!r} parameter")
            if isinstance(p, Value) and p.defn is not block:
                out.append(f"{block!r}: parameter {p!r} does not record its block")
        for i, ins in enumerate(block.instrs):
            for k, r in enumerate(ins.results):
                define(r, block, i, where(block, ins))
                if isinstance(r, Value) and (r.defn is not ins or r.index != k):
                    out.append(f"{where(block, ins)}: result {r!r} does not record its definition")

    entry = func.blocks[0]
    if tuple(p.type for p in entry.params) != tuple(func.sig.params):
        out.append(f"entry {entry!r} parameters {_types(entry.params)} do not match the "
                   f"function's parameters {_types(func.sig.params)}")

    # -- per block and instruction ------------------------------------------------------
    for block in func.blocks:
        if not block.instrs:
            out.append(f"{block!r} is empty (it needs a terminator)")
            continue
        last = len(block.instrs) - 1
        for i, ins in enumerate(block.instrs):
            if ins.op is not opcodes.OPS.get(getattr(ins.op, "name", None)):
                out.append(f"{block!r}: instruction {i} has no opcode record")
                continue
            if ins.op.terminator and i != last:
                out.append(f"{where(block, ins)}: terminator in the middle of the block")
            if i == last and not ins.op.terminator:
                out.append(f"{where(block, ins)}: block does not end in a terminator")
            if ins.block is not block:
                out.append(f"{where(block, ins)}: instruction does not record its block")
            out.extend(f"{where(block, ins)}: {p}" for p in _check_instruction(func, ins, env,
                                                                               block_set))
    if out:
        return out  # dominance needs a sound structure

    # -- dominance --------------------------------------------------------------------------
    cfg = CFG(func)
    idom = cfg.idom
    for block in func.blocks:
        if block not in idom:
            continue  # unreachable: nothing there runs
        for i, ins in enumerate(block.instrs):
            used = list(ins.args) + [a for t in ins.targets for a in t.args]
            for v in used:
                d = defs.get(v)
                if d is None:
                    out.append(f"{where(block, ins)}: {v!r} is not defined in this function")
                    continue
                dblock, pos = d
                ok = pos < i if dblock is block else cfg.dominates(dblock, block)
                if not ok:
                    out.append(f"{where(block, ins)}: use of {v!r} is not dominated by its "
                               f"definition in {dblock!r}")
    for block in func.blocks:
        if block in idom:
            continue
        for ins in block.instrs:
            for v in list(ins.args) + [a for t in ins.targets for a in t.args]:
                if v not in defs:
                    out.append(f"{where(block, ins)}: {v!r} is not defined in this function")
    return list(dict.fromkeys(out))  # a value used twice in one place is one problem


def _check_instruction(func: Function, ins: Instruction, env, block_set) -> list[str]:
    info = ins.op
    out = opcodes.check_imm(info, ins.imm, env)
    if out:
        return out
    for a in ins.args:
        if not isinstance(a, Value):
            return [f"operand {a!r} is not a Value"]
    got = tuple(a.type for a in ins.args)
    try:
        sig = opcodes.signature(info, ins.imm, got, env)
    except ValidationError as e:
        return [e.message]
    if sig is not None:
        params, results = sig
        if got != tuple(params):
            out.append(f"operands are {_types(got)}, {info.name} takes {_types(params)}")
        if tuple(r.type for r in ins.results) != tuple(results):
            out.append(f"results are {_types(ins.results)}, {info.name} gives {_types(results)}")
    elif info.results is not None and len(ins.results) != len(info.results):
        out.append(f"{info.name} has {len(info.results)} result(s), got {len(ins.results)}")
    if info.terminator:
        out.extend(_check_terminator(func, ins, env, block_set))
    elif ins.targets:
        out.append("only terminators have branch targets")
    return out


def _check_terminator(func: Function, ins: Instruction, env, block_set) -> list[str]:
    out = []
    name = ins.op.name
    count = opcodes.TARGET_COUNT[name]
    if (count is not None and len(ins.targets) != count) or (count is None and not ins.targets):
        out.append(f"{name} needs {count if count is not None else 'at least 1'} target(s), "
                   f"has {len(ins.targets)}")
    for call in ins.targets:
        target = call.block
        if target not in block_set:
            out.append(f"target {target!r} is not a block of this function")
            continue
        if target is func.blocks[0]:
            out.append("the entry block cannot be a branch target")
        if len(call.args) != len(target.params) or any(
                not isinstance(a, Value) or a.type != p.type
                for a, p in zip(call.args, target.params)):
            out.append(f"arguments {_types(call.args)} do not match {target!r} parameters "
                       f"{_types(target.params)}")
    if name == "return":
        got = tuple(a.type for a in ins.args)
        if got != tuple(func.sig.results):
            out.append(f"returns {_types(got)}, the function returns {_types(func.sig.results)}")
    elif name in ("return_call", "return_call_indirect") and env is not None:
        ft = (env.func_type(ins.imm[0]) if name == "return_call" else env.types[ins.imm[0]])
        if tuple(ft.results) != tuple(func.sig.results):
            out.append(f"tail call returns {_types(ft.results)}, the function returns "
                       f"{_types(func.sig.results)}")
    return out


def verify(func: Function, env=None) -> None:
    """Raise ValidationError listing every problem of `func` (see the module docstring)."""
    found = problems(func, env)
    if found:
        err = ValidationError(f"invalid IR in %{func.name}:\n  " + "\n  ".join(found))
        err.problems = found
        raise err


def verify_module(module) -> None:
    """Verify every function of an IRModule against the module's facts."""
    found = []
    for func in module.functions:
        found.extend(f"%{func.name}: {p}" for p in problems(func, module))
        if func.index is not None and 0 <= func.index < len(module.func_types):
            if module.func_type(func.index) != func.sig:
                found.append(f"%{func.name}: signature {func.sig} differs from function "
                             f"{func.index}'s type {module.func_type(func.index)}")
    if found:
        err = ValidationError("invalid IR module:\n  " + "\n  ".join(found))
        err.problems = found
        raise err
