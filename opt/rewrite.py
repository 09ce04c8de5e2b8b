"""The rule-driven rewrite pass: applies the mid-end rules (`rules/opts/*.isle`, the term
`simplify`) to a function's pure instructions until nothing more fires.

Algorithm: a worklist of pure single-result instructions, seeded in layout order. For
each, `simplify(v)` runs the compiled rules on its result `v`; when a rule fires it
returns an equivalent value (an existing one, or one built by the rule's constructors,
which place new instructions right before the rewritten one, so every operand still
dominates its use). Every use of `v` then takes the new value, the users go back on the
worklist (their patterns may match now), new instructions join it, and the rewritten
instruction is deleted when nothing uses it any more. The fixpoint is reached when the
worklist is empty.

Why a worklist rather than an e-graph: our rules are all *reductions* toward one
canonical form (constants folded or moved right, sub of a constant turned into add,
division turned into shifts...), so there is no choice between equally good forms for
an e-graph's extraction to make; a worklist finds the same result in time linear in the
number of rewrites, with no saturation to bound and memory proportional to the function.
Rules that would need exploring alternatives (e.g. associativity both ways) are exactly
the ones we do not write.

Bounds: each top-level `simplify` call has a work budget (`CALL_BUDGET` term
invocations), and the function as a whole gets at most `REWRITES_PER_INSTR` rewrites
per instruction (plus `REWRITES_BASE`) and charges the pass manager's budget one unit
per call. So no input, and no rule set (even one that cycles, or chaos mode), can make
compilation run away: the function is valid after every rewrite.

Instrumentation:
- `rule_counters()` - how often each rule (`file:line`) fired in this process;
- branch conditions: after the fixpoint, each `br_if` condition goes through the terms
  `truthy` and `negated` (if the rules define them): `br_if (eqz c), a, b` becomes
  `br_if c, b, a`;
- trace mode (`DEADEYE_RULES_TRACE=1`, or `set_trace(stream)`) prints each rewrite
  with the rule's file:line;
- chaos mode (`DEADEYE_RULES_CHAOS=seed`, or `set_chaos(seed)`): each rewrite fires a
  random rule among all that match (seeded per function), so every rule's soundness is
  exercised, not only the highest-priority one.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections import deque
from pathlib import Path

from deadeye.ir.function import Function, Instruction, Value
from deadeye.ir.opcodes import Effect
from deadeye.ir.types import ValType
from deadeye.opt.manager import Budget, PassContext, register_pass
from deadeye.opt.rule_env import CONST_TYPES, OP_OF, RuleEnv, Session

CALL_BUDGET = 200
HOIST_CONSTANTS = True  # see _canonical_constants
REWRITES_PER_INSTR = 8
REWRITES_BASE = 64
TERM = "simplify"

_loaded = None  # (RuleSet, RuleEnv), loaded on first use
_chaos_override: int | None = None
_trace_stream = None


def rules_dir() -> Path:
    """The shipped mid-end rules: the `opts` folder of the `deadeye.rules` data package."""
    import deadeye.rules

    return Path(deadeye.rules.__file__).parent / "opts"


def load(paths=None, *, use_cache: bool = True):
    """Compile (or take from the cache) the mid-end rules; (RuleSet, RuleEnv)."""
    from deadeye.lower.dsl import load_rules

    env = RuleEnv()
    rs = load_rules(paths or [rules_dir()], env.bindings(), enums={"Ty": ValType},
                    use_cache=use_cache)
    rs.budget = CALL_BUDGET
    return rs, env


def ruleset():
    """The process-wide loaded rules (RuleSet, RuleEnv)."""
    global _loaded
    if _loaded is None:
        _loaded = load()
    return _loaded


def rule_counters() -> dict[str, int]:
    """How many times each mid-end rule (`file:line`) fired so far in this process."""
    return ruleset()[0].counters


def set_chaos(seed: int | None) -> None:
    """Chaos mode on (a seed) or off (None); overrides $DEADEYE_RULES_CHAOS."""
    global _chaos_override
    _chaos_override = seed


def chaos_seed() -> int | None:
    if _chaos_override is not None:
        return _chaos_override
    raw = os.environ.get("DEADEYE_RULES_CHAOS", "").strip()
    if not raw:
        return None
    try:
        return int(raw, 0)
    except ValueError:
        return zlib.crc32(raw.encode())


def set_trace(stream) -> None:
    """Print every rewrite to `stream` (None: only when $DEADEYE_RULES_TRACE is set)."""
    global _trace_stream
    _trace_stream = stream


def _trace_target():
    if _trace_stream is not None:
        return _trace_stream
    if os.environ.get("DEADEYE_RULES_TRACE", "") not in ("", "0"):
        return sys.stderr
    return None


def _candidate(ins: Instruction) -> bool:
    """Instructions the rules may rewrite: one result, a scalar op or a select, with no
    effect but a possible trap (a rule rooted at a trapping op, such as a division by a
    constant, fires only where the op cannot trap: the rewrite keeps traps exact)."""
    return (len(ins.results) == 1 and not ins.op.terminator
            and not (ins.op.effects & ~Effect.MAY_TRAP)
            and (ins.op.name in OP_OF or ins.op.name == "select"))


def rewrite_function(func: Function, *, budget: Budget | None = None,
                     nan_canonicalization: bool = False, rules=None) -> int:
    """Apply the rules to `func` in place until the fixpoint (or a budget runs out).
    Returns the number of rewrites. `rules` is a (RuleSet, RuleEnv) from `load`
    (default: the shipped rules)."""
    rs, env = rules if rules is not None else ruleset()
    seed = chaos_seed()
    rs.set_chaos(None if seed is None else zlib.crc32(f"{seed}:{func.name}".encode()))
    out = _trace_target()
    if out is not None:
        def trace(rule, args, result):
            if rule.term == TERM:
                d = args[0].defn
                print(f"{rule.where}: %{func.name}: {args[0]!r} = {d.op.name} -> {result!r}",
                      file=out)
        rs.trace = trace
    else:
        rs.trace = None

    session = Session(func, nan_canonicalization)
    hoisted = _canonical_constants(func, session) if HOIST_CONSTANTS else False
    env.session = session
    uses: dict[Value, list[Instruction]] = {}
    work: deque[Instruction] = deque()
    queued: set[Instruction] = set()
    n_instrs = 0
    for block in func.blocks:
        for ins in block.instrs:
            n_instrs += 1
            for a in ins.args:
                uses.setdefault(a, []).append(ins)
            for call in ins.targets:
                for a in call.args:
                    uses.setdefault(a, []).append(ins)
            if _candidate(ins):
                work.append(ins)
                queued.add(ins)
    limit = REWRITES_BASE + REWRITES_PER_INSTR * n_instrs
    before: dict[Instruction, list[Instruction]] = {}
    dead: set[Instruction] = set()
    orphans: list[Value] = []  # operands of replaced instructions: maybe dead now
    rewrites = 0
    try:
        while work and rewrites < limit:
            ins = work.popleft()
            queued.discard(ins)
            if ins in dead:
                continue
            if budget is not None and not budget.charge(1):
                break
            v = ins.results[0]
            session.anchor, session.created = ins, []
            new = rs.call(TERM, v)
            created = session.created
            if new is None or new is v or not isinstance(new, Value):
                # A rule that fired must return a value; anything built on the way by a
                # rule that then did not apply is dropped.
                continue
            rewrites += 1
            if created:
                before.setdefault(ins, []).extend(created)
            for user in uses.pop(v, ()):
                user.args = [new if a is v else a for a in user.args]
                for call in user.targets:
                    call.args = [new if a is v else a for a in call.args]
                uses.setdefault(new, []).append(user)
                if user not in queued and user not in dead and _candidate(user):
                    work.append(user)
                    queued.add(user)
            keep = False
            for c in created:
                for a in c.args:
                    uses.setdefault(a, []).append(c)
                    keep |= a is v
                work.append(c)
                queued.add(c)
            if not keep:
                dead.add(ins)
                orphans.extend(ins.args)
                if budget is not None:
                    budget.charge(len(created))
        rewrites += _branch_conditions(func, rs, session, before, budget, orphans)
    finally:
        env.session = None
        session.anchor = None
    if rewrites or hoisted or session.new_consts:
        _relayout(func, before, dead)
        if session.new_consts:
            entry = func.entry
            for c in session.new_consts:
                c.block = entry
            entry.instrs[:0] = session.new_consts
        _sweep(func, orphans, dead)
    return rewrites + int(hoisted)


def _canonical_constants(func: Function, session: Session) -> bool:
    """Give each constant (type, bits) one definition, at the top of the entry block, and
    let constructors reuse them (`session.consts`). Constants have no operands, so the
    entry block dominates every use; they cost nothing at run time (executors pre-fill
    them), and one definition per value lets the rules, GVN and the lowering see equal
    constants as the same value. True when something moved or merged."""
    entry = func.entry
    session.consts = {}
    consts: list[Instruction] = []
    mapping: dict[Value, Value] = {}
    changed = False
    for block in func.blocks:
        keep = []
        for ins in block.instrs:
            name = ins.op.name
            if name in CONST_TYPES:
                key = (name, ins.imm[0])
                first = session.consts.get(key)
                if first is None:
                    session.consts[key] = ins.results[0]
                    consts.append(ins)
                    changed |= block is not entry
                else:
                    mapping[ins.results[0]] = first
                    changed = True
                continue
            keep.append(ins)
        block.instrs = keep
    for c in consts:
        c.block = entry
    entry.instrs[:0] = consts
    if mapping:
        func.replace_uses(mapping)
    return changed


def _branch_conditions(func: Function, rs, session: Session, before: dict, budget,
                       orphans: list) -> int:
    """Simplify br_if conditions with the terms `truthy` (an equivalent condition) and
    `negated` (the opposite condition: the targets are swapped), when the rules define
    them. Returns the number of rewrites."""
    terms = rs.terms
    if "truthy" not in terms and "negated" not in terms:
        return 0
    n = 0
    for block in func.blocks:
        term = block.terminator
        if term is None or term.op.name != "br_if":
            continue
        for _ in range(8):  # each step removes an op; a few suffice
            if budget is not None and not budget.charge(1):
                return n
            session.anchor, session.created = term, []
            cond = term.args[0]
            new = rs.call("truthy", cond) if "truthy" in terms else None
            swap = False
            if not isinstance(new, Value) and "negated" in terms:
                new = rs.call("negated", cond)
                swap = isinstance(new, Value)
            if not isinstance(new, Value) or new is cond:
                break
            if session.created:
                before.setdefault(term, []).extend(session.created)
            term.args[0] = new
            orphans.append(cond)
            if swap:
                term.targets.reverse()
            n += 1
    return n


def _relayout(func: Function, before: dict, dead: set) -> None:
    """Put created instructions before their anchors and drop the dead ones."""
    for block in func.blocks:
        out: list[Instruction] = []
        for first in block.instrs:
            stack = [(first, False)]
            while stack:
                ins, expanded = stack.pop()
                if not expanded and ins in before:
                    stack.append((ins, True))
                    stack.extend((p, False) for p in reversed(before[ins]))
                    continue
                if ins not in dead:
                    ins.block = block
                    out.append(ins)
        block.instrs = out


def _sweep(func: Function, orphans: list[Value], gone: set) -> None:
    """Remove the pure instructions that the rewrites left unused: starting from the
    operands of what they replaced (`orphans`), transitively; `gone` are instructions
    already taken out. (Dead code that was there before is DCE's business.)"""
    count: dict[Value, int] = {}
    for ins in func.instructions():
        for a in ins.args:
            count[a] = count.get(a, 0) + 1
        for call in ins.targets:
            for a in call.args:
                count[a] = count.get(a, 0) + 1
    removed: set[Instruction] = set()
    stack = list(orphans)
    while stack:
        d = stack.pop().defn
        if (isinstance(d, Instruction) and d not in removed and d not in gone and d.op.is_pure
                and not d.op.terminator and d.results
                and all(count.get(r, 0) == 0 for r in d.results)):
            removed.add(d)
            for a in d.args:
                count[a] -= 1
                stack.append(a)
    if removed:
        for block in func.blocks:
            block.instrs = [ins for ins in block.instrs if ins not in removed]


def run(func: Function, ctx: PassContext) -> bool:
    """The pass-manager entry point (pass name "rules")."""
    n = rewrite_function(func, budget=ctx.budget, nan_canonicalization=ctx.nan_canonicalization)
    ctx.rewritten += n
    return n > 0


register_pass("rules", run)
