"""The pass manager: which passes run at which opt level, in what order, with what budget.

Entry point: `optimize(func, level=2, env=None, stats=None, ...)` rewrites `func` IN PLACE
and returns it (the same object). Level 0 does nothing; level 1 runs the cheap cleanups
(constant folding, DCE, CFG simplification); level 2 runs every pass, repeating the
pipeline while something changes (at most `MAX_ROUNDS` times).

Pipelines are data (`PIPELINES`: level -> tuple of pass names); passes are looked up by
name in `PASSES`, filled by `register_pass`. A pass is a function `run(func, ctx) -> bool`
(True when it changed something); it reports its work through `ctx` (`ctx.removed`,
`ctx.rewritten` counters, `ctx.budget`). The rule-driven rewrite pass over
`rules/opts/*.isle` plugs in the same way: `register_pass("rules", run)`, then
`add_to_pipeline("rules", 2, after="fold")` (or an edit of `PIPELINES`).

Work budget: every function gets `Budget(units)` (by default proportional to its size,
`BUDGET_PER_INSTR` units per instruction plus `BUDGET_BASE`). Passes charge it for the
work they do (roughly one unit per instruction or edge visited) and stop at their next
safe point once it is spent; the manager then runs no further passes. The function is
valid at every safe point, so running out of budget only means "less optimized".

Fuel rule (blocks carry `fuel`, the Wasm instructions they account for, charged when the
block is entered): every pass keeps, for every execution path, the total fuel of the
blocks it enters unchanged.
  * Merging a block into its only predecessor adds the two fuels.
  * An empty forwarding block with fuel is threaded away only when its target has that
    block as its only predecessor (its fuel moves to the target, since every path into the
    target went through it); otherwise it stays.
  * Removed unreachable blocks are never entered; folded branches keep the block that runs.
  * A preheader created by LICM gets fuel 0 (it accounts for no Wasm instruction).
Since fuel is charged per block on entry, a merged block is charged as a whole before its
first instruction: a run that traps (or runs out of fuel) part-way may be charged at a
different point than before, exactly as with any block; runs that complete consume
exactly the same fuel at every level. With `strict_fuel=True` a block with fuel is merged
into its predecessor only when the predecessor's instructions cannot trap, write or call,
so that even a trapping run (or one running out of fuel) observes the same charges.

Verification: with `verify=True` (the test suites turn it on) the IR verifier runs before
the first pass and after every pass, and a failure names the pass that broke the function.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from deadeye.ir.errors import ValidationError
from deadeye.ir.function import Function
from deadeye.ir.verify import problems as verify_problems

BUDGET_PER_INSTR = 400
BUDGET_BASE = 20_000
MAX_ROUNDS = 4


class Budget:
    """A work allowance: `charge(n)` spends n units and says whether any are left."""

    def __init__(self, units: int):
        self.limit = units
        self.left = units

    def charge(self, n: int = 1) -> bool:
        self.left -= n
        return self.left > 0

    @property
    def exhausted(self) -> bool:
        return self.left <= 0

    @property
    def used(self) -> int:
        return self.limit - self.left


@dataclass
class PassContext:
    """What a pass gets besides the function: the module env, the budget, options, and
    the counters it updates (instructions removed / rewritten in place)."""

    env: object = None
    budget: Budget = field(default_factory=lambda: Budget(10**9))
    nan_canonicalization: bool = False
    strict_fuel: bool = False
    removed: int = 0
    rewritten: int = 0


@dataclass
class PassRun:
    """Statistics of one run of one pass: instructions and blocks before/after, `removed`
    (instructions deleted), `rewritten` (instructions changed in place or moved, branches
    folded or retargeted, block parameters eliminated), whether it changed anything, and
    its wall time."""

    name: str
    instrs_before: int
    blocks_before: int
    instrs_after: int = 0
    blocks_after: int = 0
    removed: int = 0
    rewritten: int = 0
    changed: bool = False
    seconds: float = 0.0


@dataclass
class OptStats:
    """Collects `PassRun`s (over one or many functions). `by_pass()` aggregates them;
    `summary()` renders a table."""

    runs: list[PassRun] = field(default_factory=list)
    functions: int = 0
    budget_exhausted: int = 0  # functions whose budget ran out

    def by_pass(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for r in self.runs:
            agg = out.setdefault(r.name, {"runs": 0, "changed": 0, "removed": 0, "rewritten": 0,
                                          "instrs_delta": 0, "blocks_delta": 0, "seconds": 0.0})
            agg["runs"] += 1
            agg["changed"] += int(r.changed)
            agg["removed"] += r.removed
            agg["rewritten"] += r.rewritten
            agg["instrs_delta"] += r.instrs_after - r.instrs_before
            agg["blocks_delta"] += r.blocks_after - r.blocks_before
            agg["seconds"] += r.seconds
        return out

    def summary(self) -> str:
        lines = [f"{'pass':<14}{'runs':>6}{'changed':>9}{'removed':>9}{'rewritten':>11}"
                 f"{'d-instrs':>10}{'d-blocks':>10}{'ms':>10}"]
        for name, a in self.by_pass().items():
            lines.append(f"{name:<14}{a['runs']:>6}{a['changed']:>9}{a['removed']:>9}"
                         f"{a['rewritten']:>11}{a['instrs_delta']:>10}{a['blocks_delta']:>10}"
                         f"{a['seconds'] * 1000:>10.2f}")
        lines.append(f"{self.functions} function(s), budget exhausted in {self.budget_exhausted}")
        return "\n".join(lines)


PassFn = Callable[[Function, PassContext], bool]
PASSES: dict[str, PassFn] = {}


def register_pass(name: str, run: PassFn) -> None:
    """Make a pass available to pipelines under `name` (replacing one of that name)."""
    PASSES[name] = run


# Pipelines as data. Level 2 is repeated while it changes something (MAX_ROUNDS at most).
# "rules" is the rule-driven rewrite pass (opt/rewrite.py, rules/opts/*.isle); -O1 stays
# the cheap cleanups.
PIPELINES: dict[int, tuple[str, ...]] = {
    0: (),
    1: ("fold", "dce", "simplify_cfg"),
    2: ("simplify_cfg", "blockparams", "fold", "gvn", "loads", "licm", "fold", "rules", "dce",
        "blockparams", "simplify_cfg"),
}
REPEAT = {0: 1, 1: 1, 2: MAX_ROUNDS}


def add_to_pipeline(name: str, level: int, *, after: str | None = None,
                    before: str | None = None) -> None:
    """Insert pass `name` into `PIPELINES[level]` (once; a no-op when already there):
    after every occurrence of `after`, or before every occurrence of `before`, or at the
    end. This is how a pass defined elsewhere (the rule-driven rewrite pass) joins a level."""
    names = PIPELINES[level]
    if name in names:
        return
    anchor = after or before
    if anchor is None:
        PIPELINES[level] = names + (name,)
        return
    if anchor not in names:
        raise ValueError(f"pass {anchor!r} is not in the level-{level} pipeline")
    out: list[str] = []
    for n in names:
        if n == anchor and before is not None:
            out.append(name)
        out.append(n)
        if n == anchor and after is not None:
            out.append(name)
    PIPELINES[level] = tuple(out)


def count_instrs(func: Function) -> int:
    return sum(len(b.instrs) for b in func.blocks)


def _ensure_registered() -> None:
    if "dce" not in PASSES or "rules" not in PASSES:
        # The pass modules register themselves on import.
        from deadeye.opt import blockparams, dce, fold, gvn, licm, loads, nan_canon, simplify_cfg  # noqa: F401
        from deadeye.opt import rewrite  # noqa: F401


def _verify(func: Function, env, after: str) -> None:
    found = verify_problems(func, env)
    if found:
        err = ValidationError(f"invalid IR in %{func.name} {after}:\n  " + "\n  ".join(found))
        err.problems = found
        raise err


def parse_pass_list(spec: str) -> tuple[str, ...]:
    """"dce,gvn" -> ("dce", "gvn"); raises ValueError naming an unknown pass."""
    _ensure_registered()
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    for n in names:
        if n not in PASSES:
            raise ValueError(f"unknown pass {n!r} (known: {', '.join(sorted(PASSES))})")
    return names


def optimize(func: Function, level: int = 2, env=None, stats: OptStats | None = None, *,
             passes=None, verify: bool = False, budget: int | None = None,
             nan_canonicalization: bool = False, strict_fuel: bool = False) -> Function:
    """Optimize `func` in place and return it. `func` must be valid IR (as the lifter
    makes it); `verify=True` checks that first and raises ValidationError otherwise.

    `level` 0/1/2 picks `PIPELINES[level]`; `passes` (a sequence of names or a
    comma-separated string) runs exactly those passes once instead. `env` is the module
    (an IRModule) the function refers to. `stats` (an OptStats) receives a PassRun per
    pass run. `verify` runs the IR verifier before and after every pass. `budget` is the
    work allowance in units (default: proportional to the function's size).
    `nan_canonicalization`: folded float results that are NaN get the canonical NaN, as
    execution in that mode would give. `strict_fuel`: merge a block into its predecessor
    only when the fuel charged earlier cannot be observed (see the fuel rule above)."""
    _ensure_registered()
    if not func.blocks:
        raise ValidationError(f"function %{func.name} has no blocks")
    if passes is not None:
        names = parse_pass_list(passes) if isinstance(passes, str) else tuple(passes)
        rounds = 1
    else:
        if level not in PIPELINES:
            raise ValueError(f"opt level must be one of {sorted(PIPELINES)}, got {level!r}")
        names, rounds = PIPELINES[level], REPEAT[level]
    if stats is not None:
        stats.functions += 1
    if not names:
        return func
    units = budget if budget is not None else BUDGET_BASE + BUDGET_PER_INSTR * count_instrs(func)
    ctx = PassContext(env=env, budget=Budget(units), nan_canonicalization=nan_canonicalization,
                      strict_fuel=strict_fuel)
    if verify:
        _verify(func, env, "before optimization")
    for _ in range(rounds):
        changed_any = False
        for name in names:
            if ctx.budget.exhausted:
                break
            run = PASSES.get(name)
            if run is None:
                raise ValueError(f"unknown pass {name!r}")
            rec = PassRun(name, count_instrs(func), len(func.blocks))
            ctx.removed = ctx.rewritten = 0
            start = time.perf_counter()
            changed = bool(run(func, ctx))
            rec.seconds = time.perf_counter() - start
            rec.changed, rec.removed, rec.rewritten = changed, ctx.removed, ctx.rewritten
            rec.instrs_after, rec.blocks_after = count_instrs(func), len(func.blocks)
            if stats is not None:
                stats.runs.append(rec)
            if verify:
                _verify(func, env, f"after pass {name!r}")
            changed_any |= changed
        if not changed_any or ctx.budget.exhausted:
            break
    if ctx.budget.exhausted and stats is not None:
        stats.budget_exhausted += 1
    return func


def optimize_module(module, level: int = 2, stats: OptStats | None = None, **options):
    """Optimize every function of an IRModule in place (with the module as env)."""
    for func in module.functions:
        optimize(func, level, env=module, stats=stats, **options)
    return module
