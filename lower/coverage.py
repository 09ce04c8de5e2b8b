"""Which (IR opcode, type) pairs the lowering rules cover.

For every IR op (`ir.opcodes.OP_LIST`) and every type it can take (the polymorphic ops:
`select`, globals, tables, references, calls, `return`), a sample instruction is built
and offered to the rules' `lower` term (`RuleSet.matching`: no code is emitted). A pair
with no matching rule would make lowering fail on real code; `deadeye rules check`
reports such pairs, and the tests require that there are none.
"""

from __future__ import annotations

from deadeye.ir import opcodes
from deadeye.ir.function import BlockCall, Function, Instruction, IRModule
from deadeye.ir.types import FuncType, ValType

from . import isel

NUM = (ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128)
REFS = (ValType.FUNCREF, ValType.EXTERNREF)
ALL = NUM + REFS


def _env() -> IRModule:
    """A module with one global and one table of every type, and a function per type."""
    types = [FuncType((t,), (t,)) for t in ALL]
    return IRModule(types=types, func_types=list(range(len(ALL))) * 2,
                    globals=[(t, True) for t in ALL], tables=[ValType.FUNCREF, ValType.EXTERNREF],
                    memories=2, datas=1, elems=[ValType.FUNCREF])


def _imm(field: opcodes.Imm, t: ValType):
    k = field.kind
    if k == "shuffle":
        return tuple(range(16))
    if k == "str":
        return "unreachable"
    if k == "reftype":
        return t if t in REFS else ValType.FUNCREF
    if k == "table":
        return REFS.index(t) if t in REFS else 0
    if k in ("global", "func", "type"):
        return ALL.index(t)
    return 0


def samples():
    """(op name, type, Instruction) for every pair to cover."""
    func = Function("coverage", FuncType((), ()))
    block = func.new_block()
    target = func.new_block()
    env = _env()
    for info in opcodes.OP_LIST:
        if info.params is not None and info.results is not None:
            kinds = [(info.results or info.params or (ValType.I32,))[0]]
        elif info.name in ("select", "global.get", "global.set", "return"):
            kinds = ALL
        elif info.name in ("call", "call_indirect", "return_call", "return_call_indirect"):
            kinds = ALL
        else:  # tables and references
            kinds = REFS
        for t in kinds:
            imm = tuple(_imm(f, t) for f in info.imm)
            if "call_indirect" in info.name:
                imm = (imm[0], 0)  # through the funcref table
            if info.rule is not None:
                params, results = opcodes.signature(info, imm, (t,) * 3 if info.name == "select"
                                                    else (t,), env)
            else:
                params, results = info.params, info.results
            args = [func.new_value(p, block) for p in params]
            targets = []
            n = opcodes.TARGET_COUNT.get(info.name, 0) if info.terminator else 0
            for _ in range(n if n is not None else 2):
                targets.append(BlockCall(target, []))
            ins = Instruction(info, args, imm, targets)
            ins.results = tuple(func.new_value(r, ins, k) for k, r in enumerate(results))
            ins.block = block
            yield info.name, t, ins, env


def uncovered(rules=None) -> list[tuple[str, str]]:
    """(IR op, type) pairs no lowering rule (of `rules`, default the shipped ones) matches."""
    rules = rules or isel.lowering_rules()
    out = []
    for name, t, ins, env in samples():
        low = isel.Lowering(Function("coverage", FuncType((), ())), env, 0)
        prev, isel.H.low = isel.H.low, low
        try:
            if not rules.matching("lower", ins):
                out.append((name, str(t)))
        finally:
            isel.H.low = prev
    return out


def report() -> tuple[bool, str]:
    """(ok, text) for `deadeye rules check`."""
    missing = uncovered()
    total = sum(1 for _ in samples())
    if not missing:
        return True, f"lowering coverage: all {total} (IR op, type) pairs have a rule"
    lines = [f"no lowering rule for {op} ({t})" for op, t in missing]
    return False, "\n".join(lines + [f"lowering coverage: {len(missing)} of {total} "
                                     "(IR op, type) pairs have no rule"])
