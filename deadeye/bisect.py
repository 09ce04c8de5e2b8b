"""`deadeye bisect`: find where two engines (or opt levels) start to disagree.

    deadeye bisect FILE.wasm --invoke NAME [ARGS...] [--a ENGINE[:OPT]] [--b ENGINE[:OPT]]

(ARGS follow NAME directly; they are parsed by the export's parameter types.)

Method. Every engine and opt level charges fuel for the *input* wasm instructions: the
lifter gives each IR block the number of wasm instructions it accounts for, and the block
is charged on entry. So a fuel budget F is a position in the wasm execution that means the
same on both sides: with budget F each side runs exactly the blocks it can pay for and
stops with "all fuel consumed" at the entry of the first block it cannot. The bisector
runs the call on both sides with budget F (fresh instance each time) and compares what is
observable: the outcome (results, or the trap message), the fuel left, a hash of every
memory and the globals' values — plus, when both sides run at the same opt level (so their
blocks are the same), the wasm location where fuel ran out. It first runs both to the end
(up to `max_fuel`); if they agree there is nothing to find. Otherwise it binary-searches
the smallest budget `hi` at which the states differ; at `lo = hi - 1` they agree, so the
divergence comes from the block(s) that `hi` lets one side enter: the block at which the
`lo` run stopped. Its location (function, byte offset) comes from the backtrace of the
out-of-fuel trap; the report adds the wasm instructions the block accounts for (its fuel
count, from its first offset), the first differing memory byte and the differing globals.

Granularity: one IR block (a straight run of wasm instructions, cut at control flow and
calls), not one instruction; of the two sides, the one with the finer blocks (lower opt
level) names it. Registers are not compared (they are not observable state), so a wrong
value that stays in registers is found where it first becomes observable: stored,
returned, or steering control flow (seen as a different fuel count or, at equal opt
levels, a different stop location). Operands: for a side on the IR evaluator ("ir") the
report replays that block's IR from the evaluator's registers at the stop (taken from the
out-of-fuel trap's traceback), the memories and the globals, printing every instruction's
operand values and result, so the first wrong result inside the block can be read off.

Opt levels merge blocks, which charges a merged block's fuel before its first
instruction; the bisector therefore compiles both sides with the optimizer's
`strict_fuel` mode (blocks are merged only when nothing observable happens in between),
so that equal budgets give equal states wherever the code is right. Engines outside the
pipeline (reached only through the engine registry) run as configured.

    result = bisect(wasm, "f", [args...], Side("ir", 0), Side("interp", 2))
    print(result.format())"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any, Sequence

from deadeye.ir.errors import Trap, WasmError

__all__ = ["Side", "parse_side", "Observation", "BisectResult", "bisect", "main",
           "add_arguments"]

OUT_OF_FUEL = "all fuel consumed"


@dataclass(frozen=True)
class Side:
    engine: str
    opt_level: int = 0
    nan_canonicalization: bool = False

    @property
    def label(self) -> str:
        return f"{self.engine}:O{self.opt_level}"


def parse_side(text: str, nan_canonicalization: bool = False) -> Side:
    """"ir" / "ir:2" / "interp:O1" -> Side (ValueError when malformed)."""
    engine, _, opt = text.partition(":")
    level = 0
    if opt:
        digits = opt[1:] if opt[:1] in ("O", "o") else opt
        if digits not in ("0", "1", "2"):
            raise ValueError(f"bad opt level in {text!r} (expected ENGINE[:0|1|2])")
        level = int(digits)
    if not engine:
        raise ValueError(f"no engine in {text!r}")
    return Side(engine, level, nan_canonicalization)


@dataclass
class Observation:
    """What one run with a fuel budget left behind."""

    outcome: tuple  # ("ok", results) | ("trap", message)
    frames: list  # the trap's backtrace (innermost first), [] when it returned
    memories: tuple  # bytes of every memory
    globals: tuple
    fuel_left: int
    regs: list | None = None  # the IR evaluator's registers where it stopped (engine "ir")

    @property
    def out_of_fuel(self) -> bool:
        return self.outcome == ("trap", OUT_OF_FUEL)

    @property
    def location(self) -> tuple | None:
        """(func name, func index, offset) where it stopped (trapped), else None."""
        return tuple(self.frames[0]) if self.frames else None

    def key(self, with_location: bool) -> tuple:
        mem = tuple(hashlib.blake2b(m, digest_size=16).digest() for m in self.memories)
        k = (self.outcome, self.fuel_left, mem, self.globals)
        return k + (self.location,) if with_location and self.out_of_fuel else k


@dataclass
class BisectResult:
    a: Side
    b: Side
    export: str
    diverged: bool
    runs: int
    fuel: int | None = None  # the smallest budget at which the states differ
    lo: tuple | None = None  # (Observation a, Observation b) at fuel - 1
    hi: tuple | None = None  # (Observation a, Observation b) at fuel
    location: tuple | None = None  # (func name, func index, offset) of the divergent block
    instructions: list | None = None  # [(offset, op, imm)] the block accounts for
    differences: list | None = None  # human-readable differences at `fuel`
    operands: dict | None = None  # side label -> lines "offset op operands -> result"

    def format(self) -> str:
        head = f"bisect {self.export}: {self.a.label} vs {self.b.label} ({self.runs} runs)"
        if not self.diverged:
            return head + "\nno divergence: same outcome, fuel, memories and globals"
        lines = [head, f"first divergence with fuel budget {self.fuel}"]
        if self.location is not None:
            name, index, offset = self.location
            lines.append(f"at {name} (func {index}) block @ 0x{offset:x}")
        else:
            lines.append("before the first fuel charge")
        for off, op, imm in self.instructions or []:
            args = " ".join(map(str, imm))
            lines.append(f"  0x{off:x}: {op}{' ' + args if args else ''}")
        for label, ops in (self.operands or {}).items():
            lines.append(f"IR of that block on {label}, with operand values:")
            lines.extend(f"  {line}" for line in ops)
        for d in self.differences or []:
            lines.append(f"  {d}")
        return "\n".join(lines)


class _Runner:
    """One side: its executor (compiled with strict fuel) and the decoded module."""

    def __init__(self, side: Side, module: Any):
        import deadeye
        from deadeye import api

        factory = api._EXECUTORS.get(side.engine)
        if factory is None:
            raise WasmError(f"engine {side.engine!r} is not available "
                            f"(available: {', '.join(deadeye.available_engines())})")
        base = deadeye.Config(engine=side.engine, opt_level=side.opt_level,
                              nan_canonicalization=side.nan_canonicalization, consume_fuel=True)
        # A plain namespace: the pipeline's executors also read `strict_fuel`.
        self.config = SimpleNamespace(**{f.name: getattr(base, f.name) for f in fields(base)},
                                      strict_fuel=True)
        self.executor = factory(self.config)
        self.module = module
        self.side = side

    def observe(self, export: str, args: Sequence, fuel: int) -> Observation:
        from deadeye.interp.instantiate import instantiate
        from deadeye.interp.runtime import Store

        store = Store(self.executor, consume_fuel=True,
                      max_call_depth=self.config.max_call_depth)
        store.set_fuel(fuel)
        inst = None
        try:
            inst = instantiate(store, self.module, [])
            func = dict(inst.export_list).get(export)
            if func is None or not hasattr(func, "type") or not hasattr(func.type, "params"):
                raise WasmError(f"no exported function {export!r}")
            outcome, frames = ("ok", tuple(store.call(func, list(args)))), []
        except Trap as t:
            outcome, frames = ("trap", t.message), list(t.frames)
            regs = _evaluator_registers(t.__traceback__)
        else:
            regs = None
        mems = tuple(bytes(m.data) for m in inst.memories) if inst is not None else ()
        gl = tuple(_global_value(g.value) for g in inst.globals) if inst is not None else ()
        return Observation(outcome, frames, mems, gl, store.fuel, regs)


def _evaluator_registers(tb) -> list | None:
    """The register list of the IR evaluator's innermost activation when a trap left it
    (read from the traceback: registers are not part of the observable state)."""
    from deadeye.interp import ireval

    regs = None
    while tb is not None:
        f = tb.tb_frame
        if f.f_code is ireval.IREvaluator.call.__code__:
            regs = f.f_locals.get("regs")
        tb = tb.tb_next
    return list(regs) if regs is not None else None


def _block_operands(module: Any, runner: _Runner, obs: Observation) -> list[str] | None:
    """Replay the IR block where `obs` stopped (engine "ir" only) from the evaluator's
    registers, the memories and the globals at that point: one line per instruction with
    its wasm offset, operand values and result (pure ops, selects, globals, loads and
    stores are replayed; the terminator's operands are shown)."""
    from deadeye.interp.ireval import _access_bytes
    from deadeye.ir import numerics
    from deadeye.pipeline import pipeline_for

    if obs.regs is None or obs.location is None or runner.side.engine != "ir":
        return None
    _, index, offset = obs.location
    defined = index - module.num_imported_funcs
    cfg = runner.config
    func = pipeline_for(module).optimized(defined, cfg.opt_level, cfg.nan_canonicalization, True)
    block = next((b for b in func.blocks if b.offset == offset and b.fuel), None)
    if block is None:
        return None
    regs = dict(enumerate(obs.regs))
    mems = [bytearray(m) for m in obs.memories]
    globs = list(obs.globals)
    out = []
    for ins in block.instrs:
        name = ins.op.name
        vals = [regs.get(a.id) for a in ins.args]
        res = None
        known = all(v is not None or a.type.is_ref for v, a in zip(vals, ins.args))
        try:
            if name.endswith(".const"):
                res = ins.imm[0]
            elif not known:
                pass
            elif name in numerics.OPS:
                res = numerics.OPS[name](*vals, *ins.imm)
            elif name == "select":
                res = vals[0] if vals[2] else vals[1]
            elif name == "global.get":
                res = globs[ins.imm[0]]
            elif name == "global.set":
                globs[ins.imm[0]] = vals[0]
            elif ".load" in name and not name.endswith("_lane"):
                mem, n = mems[ins.imm[0]], _access_bytes(name)
                ea = vals[0] + ins.imm[1]
                if ea + n <= len(mem):
                    res = int.from_bytes(mem[ea:ea + n], "little")
                    conv = numerics.MEMORY_OPS.get(name)
                    res = conv(res) if conv is not None else res
            elif ".store" in name and not name.endswith("_lane"):
                mem, n = mems[ins.imm[0]], _access_bytes(name)
                ea = vals[0] + ins.imm[1]
                conv = numerics.MEMORY_OPS.get(name)
                if ea + n <= len(mem):
                    v = conv(vals[1]) if conv is not None else vals[1]
                    mem[ea:ea + n] = v.to_bytes(n, "little")
        except Trap as t:
            res = f"trap {t.message!r}"
        if ins.results and res is not None and not isinstance(res, str):
            regs[ins.results[0].id] = res
        if name.endswith(".const"):
            continue  # constants show up as operands
        at = f"0x{ins.offset:x}" if ins.offset is not None else "-"
        ops = ", ".join(f"{a!r}={_fmt(v)}" if v is not None else f"{a!r}=?"
                        for a, v in zip(ins.args, vals))
        line = f"{at}: {name}{' ' + str(ins.imm) if ins.imm else ''} {ops}".rstrip()
        if ins.results:
            shown = res if isinstance(res, str) else ("?" if res is None else _fmt(res))
            line += f" -> {ins.results[0]!r}={shown}"
        out.append(line)
    return out


def _global_value(v: Any) -> Any:
    if v is None or isinstance(v, int):
        return v
    return (type(v).__name__, getattr(v, "index", None))


def _differences(a: Observation, b: Observation, la: str, lb: str) -> list[str]:
    out = []
    if a.outcome != b.outcome:
        out.append(f"outcome: {la} {_outcome(a)}, {lb} {_outcome(b)}")
    if a.fuel_left != b.fuel_left:
        out.append(f"fuel left: {la} {a.fuel_left}, {lb} {b.fuel_left}")
    for i, (ma, mb) in enumerate(zip(a.memories, b.memories)):
        if ma != mb:
            if len(ma) != len(mb):
                out.append(f"memory {i} size: {la} {len(ma)}, {lb} {len(mb)}")
            first = next((k for k in range(min(len(ma), len(mb))) if ma[k] != mb[k]), None)
            if first is not None:
                ea, eb = ma[first:first + 8], mb[first:first + 8]
                out.append(f"memory {i} first differs at 0x{first:x}: {la} {ea.hex()}, {lb} {eb.hex()}")
    for i, (ga, gb) in enumerate(zip(a.globals, b.globals)):
        if ga != gb:
            out.append(f"global {i}: {la} {_fmt(ga)}, {lb} {_fmt(gb)}")
    if a.out_of_fuel and b.out_of_fuel and a.location != b.location:
        out.append(f"stopped at: {la} {_loc(a.location)}, {lb} {_loc(b.location)}")
    return out


def _fmt(v: Any) -> str:
    return hex(v) if isinstance(v, int) else repr(v)


def _outcome(o: Observation) -> str:
    if o.outcome[0] == "trap":
        return f"trap {o.outcome[1]!r}"
    return "returned [" + ", ".join(_fmt(v) for v in o.outcome[1]) + "]"


def _loc(loc: tuple | None) -> str:
    return "-" if loc is None else f"{loc[0]} @ 0x{loc[2]:x}"


def _block_instructions(module: Any, runner: _Runner, loc: tuple) -> list:
    """The wasm instructions the block starting at `loc` accounts for on `runner`'s side:
    its fuel count of instructions from its first offset (in the decoded body)."""
    from deadeye.frontend.decoder import decode_body
    from deadeye.pipeline import pipeline_for

    _, index, offset = loc
    defined = index - module.num_imported_funcs
    if not 0 <= defined < len(module.func_types):
        return []
    count = 1
    cfg = runner.config
    if runner.side.engine in ("ir", "interp"):  # their IR is the pipeline's
        func = pipeline_for(module).optimized(defined, cfg.opt_level, cfg.nan_canonicalization,
                                              True)
        for block in func.blocks:
            if block.offset == offset and block.fuel:
                count = block.fuel
                break
    _, instrs = decode_body(module, defined)
    start = next((i for i, ins in enumerate(instrs) if ins.offset == offset), None)
    if start is None:
        return []
    return [(ins.offset, ins.op, ins.imm) for ins in instrs[start:start + count]]


def bisect(wasm: bytes, export: str, args: Sequence, a: Side, b: Side,
           max_fuel: int = 100_000_000) -> BisectResult:
    """Compare `export(*args)` (bit-pattern arguments) on sides `a` and `b`; see the
    module docstring for the method."""
    from deadeye.frontend.module import parse_module

    module = parse_module(wasm, validate="eager")
    ra, rb = _Runner(a, module), _Runner(b, module)
    with_loc = a.opt_level == b.opt_level
    runs = 0

    def both(fuel: int) -> tuple[Observation, Observation]:
        nonlocal runs
        runs += 2
        return ra.observe(export, args, fuel), rb.observe(export, args, fuel)

    def differ(pair) -> bool:
        return pair[0].key(with_loc) != pair[1].key(with_loc)

    full = both(max_fuel)
    if not differ(full):
        return BisectResult(a, b, export, False, runs)
    used = max(max_fuel - full[0].fuel_left, max_fuel - full[1].fuel_left)
    hi = min(used, max_fuel)  # invariant: the states agree at lo and differ at hi
    hi_pair = both(hi)
    if not differ(hi_pair):  # both still completing in `used`: fall back to the full budget
        hi, hi_pair = max_fuel, full
    lo_pair = None
    first = both(0)
    if differ(first):
        hi, hi_pair = 0, first
    else:
        lo, lo_pair = 0, first
        while hi - lo > 1:
            mid = (lo + hi) // 2
            pair = both(mid)
            if differ(pair):
                hi, hi_pair = mid, pair
            else:
                lo, lo_pair = mid, pair
    res = BisectResult(a, b, export, True, runs, fuel=hi, lo=lo_pair, hi=hi_pair)
    # The divergent block: where a side stopped at `lo` and got further at `hi`. The
    # side with the finer blocks (lower opt level; then the IR evaluator, whose IR
    # can be replayed) names it.
    if lo_pair is not None:
        sides = sorted(((ra, lo_pair[0], hi_pair[0]), (rb, lo_pair[1], hi_pair[1])),
                       key=lambda t: (t[0].side.opt_level, t[0].side.engine != "ir"))
        for r, obs_lo, obs_hi in sides:
            if obs_lo.location is not None and obs_lo.key(True) != obs_hi.key(True):
                res.location = obs_lo.location
                res.instructions = _block_instructions(module, r, obs_lo.location)
                break
        else:
            res.location = lo_pair[0].location
        res.operands = {}
        for r, obs in ((ra, lo_pair[0]), (rb, lo_pair[1])):
            if obs.location == res.location:
                lines = _block_operands(module, r, obs)
                if lines is not None:
                    res.operands[r.side.label] = lines
    res.differences = _differences(hi_pair[0], hi_pair[1], a.label, b.label)
    return res


# -- command line -------------------------------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("file", metavar="FILE.wasm")
    p.add_argument("--invoke", required=True, nargs="+", metavar=("NAME", "ARGS"),
                   help="the export to call, then its arguments (negative numbers are fine)")
    p.add_argument("--a", dest="side_a", default="ir:0", metavar="ENGINE[:OPT]",
                   help="first side (default ir:0)")
    p.add_argument("--b", dest="side_b", default=None, metavar="ENGINE[:OPT]",
                   help="second side (default interp:2 when available, else ir:2)")
    p.add_argument("--nan-canonicalization", action="store_true",
                   help="run both sides with NaN canonicalization")
    p.add_argument("--max-fuel", type=int, default=100_000_000, metavar="N",
                   help="fuel of the full runs (default 100000000)")


def main(args) -> int:
    """Exit status: 0 no divergence, 1 divergence found (or an error)."""
    import deadeye
    from deadeye.cli import _read_input
    from deadeye.frontend.module import parse_module
    from deadeye.run import parse_arg

    canon = bool(args.nan_canonicalization)
    default_b = "interp:2" if "interp" in deadeye.available_engines() else "ir:2"
    try:
        a = parse_side(args.side_a, canon)
        b = parse_side(args.side_b or default_b, canon)
    except ValueError as e:
        raise WasmError(str(e)) from None
    name, *texts = args.invoke
    wasm = _read_input(args.file)
    module = parse_module(wasm, validate="eager")
    exp = next((e for e in module.exports if e.name == name), None)
    if exp is None or exp.kind != "func":
        raise WasmError(f"{args.file} exports no function {name!r}")
    ty = module.func_type(exp.index)
    if len(texts) != len(ty.params):
        raise WasmError(f"{name} takes {len(ty.params)} argument(s), got {len(texts)}")
    try:
        values = [parse_arg(t, s) for t, s in zip(ty.params, texts)]
    except ValueError as e:
        raise WasmError(str(e)) from None
    if args.max_fuel < 1:
        raise WasmError("--max-fuel must be positive")
    result = bisect(wasm, name, values, a, b, max_fuel=args.max_fuel)
    print(result.format())
    return 1 if result.diverged else 0
