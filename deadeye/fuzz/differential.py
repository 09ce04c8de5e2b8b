"""Differential runs: a generated module on every registered deadeye engine × opt level,
and on wasmtime, must give the same results (bit-exact), the same traps (by category),
the same final memory and the same globals.

`check_module(gm, calls)` returns None or a `Mismatch`; `campaign(...)` generates
modules for a while and saves every failure as `<dir>/<name>.wasm` plus `<name>.json`
(the calls, and each side's outcome); `shrink(...)` reduces a failing campaign seed.

NaNs: a module generated with `nan_canonical=False` replaces every NaN an arithmetic
float op produces by one of two fixed NaNs (quiet or signalling), so results compare
bit-exactly while only the class the spec fixes is checked (arithmetic ops must return
quiet NaNs); with `nan_canonical=True` both sides run with NaN canonicalization on and the
raw bits must match. Fuel and stack exhaustion are engine-specific: a run that hits
either is compared only up to that call."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import traceback
from dataclasses import dataclass

import deadeye
from deadeye.api import builtin_engines
from deadeye.ir.errors import Trap, WasmError
from deadeye.fuzz.gen import (
    STATE_EXPORT, ByteChooser, GenConfig, GeneratedModule, RandomChooser, generate, generate_args,
)

OPT_LEVELS = (0, 1, 2)
WASMTIME_FUEL = 5_000_000
DEADEYE_FUEL = 50_000_000

# Trap categories: the first keyword found in the message names it (deadeye uses the
# spec's texts, wasmtime its own wording).
_TRAP_CATEGORIES = [
    ("divide by zero", "div-by-zero"),
    ("integer overflow", "int-overflow"),
    ("invalid conversion", "bad-conversion"),
    ("out of bounds memory", "memory-oob"),
    ("memory access out of bounds", "memory-oob"),
    ("undefined element", "table-oob"),
    ("out of bounds table", "table-oob"),
    ("uninitialized element", "null-entry"),
    ("type mismatch", "signature-mismatch"),
    ("unreachable", "unreachable"),
    ("fuel", "fuel"),
    ("stack", "stack-exhausted"),
]
# Outcomes that depend on engine-specific budgets: the comparison stops there.
INCONCLUSIVE = {"fuel", "stack-exhausted"}


def trap_category(message: str) -> str:
    low = message.lower()
    for key, cat in _TRAP_CATEGORIES:
        if key in low:
            return cat
    return "other: " + message.strip().splitlines()[0][:80]


@dataclass
class Outcome:
    calls: list  # per call: ["ok", [bits...]] or ["trap", category]
    memory: str | None = None  # sha256 of the final memory
    pages: int | None = None
    globals: list | None = None

    def as_json(self) -> dict:
        return {"calls": self.calls, "memory": self.memory, "pages": self.pages,
                "globals": [hex(g) for g in self.globals] if self.globals is not None else None}


@dataclass
class Mismatch:
    config: str
    what: str
    ours: Outcome
    theirs: Outcome
    calls: list

    def __str__(self) -> str:
        return f"[{self.config}] {self.what}"


class GeneratorError(AssertionError):
    """A generated module that one side rejects: a bug in the generator (or a validator)."""


# -------------------------------------------------------------------------- wasmtime side

_wasmtime_engines: dict = {}


def _wasmtime_engine(nan_canonical: bool):
    import wasmtime

    e = _wasmtime_engines.get(nan_canonical)
    if e is None:
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        cfg.cranelift_nan_canonicalization = nan_canonical
        e = _wasmtime_engines[nan_canonical] = wasmtime.Engine(cfg)
    return e


def _mask_results(raw, results) -> list[int]:
    if not results:
        return []
    raw = raw if isinstance(raw, list) else [raw]
    return [r & ((1 << (32 if t == deadeye.ValType.I32 else 64)) - 1) for r, t in zip(raw, results)]


def run_wasmtime(gm: GeneratedModule, calls: list) -> Outcome:
    import wasmtime

    engine = _wasmtime_engine(gm.nan_canonical)
    try:
        module = wasmtime.Module(engine, gm.wasm)
    except wasmtime.WasmtimeError as e:
        raise GeneratorError(f"wasmtime rejects a generated module: {e}") from None
    store = wasmtime.Store(engine)
    store.set_fuel(WASMTIME_FUEL)
    inst = wasmtime.Instance(store, module, [])
    ex = inst.exports(store)
    types = {n: (p, r) for n, p, r in gm.exports}
    out = []
    for name, args in calls:
        params, results = types[name]
        signed = [a - (1 << 32) if p == deadeye.ValType.I32 and a >> 31 else
                  a - (1 << 64) if p == deadeye.ValType.I64 and a >> 63 else a
                  for p, a in zip(params, args)]
        try:
            out.append(["ok", _mask_results(ex[name](store, *signed), results)])
        except wasmtime.Trap as e:
            out.append(["trap", trap_category(str(e))])
        except wasmtime.WasmtimeError as e:  # fuel exhaustion is reported as an error
            out.append(["trap", trap_category(str(e))])
        if out[-1][0] == "trap" and out[-1][1] in INCONCLUSIVE:
            return Outcome(out)
    store.set_fuel(WASMTIME_FUEL)
    state = ex[STATE_EXPORT](store)
    state = [] if state is None else state if isinstance(state, list) else [state]
    mem = ex["mem"]
    data = bytes(mem.read(store, 0, mem.data_len(store)))
    return Outcome(out, hashlib.sha256(data).hexdigest(), mem.size(store),
                   [g & ((1 << 64) - 1) for g in state])


# -------------------------------------------------------------------------- deadeye side


def engine_configs() -> list[tuple[str, int]]:
    """Every registered engine × opt level, enumerated now (engines join as they are
    registered)."""
    return [(e, o) for e in builtin_engines() for o in OPT_LEVELS]


_deadeye_engines: dict = {}


def _deadeye_engine(name: str, opt: int, nan_canonical: bool) -> deadeye.Engine:
    key = (name, opt, nan_canonical)
    e = _deadeye_engines.get(key)
    if e is None:
        cfg = deadeye.Config(engine=name, opt_level=opt, nan_canonicalization=nan_canonical,
                             consume_fuel=True)
        e = _deadeye_engines[key] = deadeye.Engine(cfg)
    return e


def run_deadeye(gm: GeneratedModule, calls: list, engine: str, opt: int) -> Outcome:
    """Anything but a Trap escaping here is a bug and propagates."""
    eng = _deadeye_engine(engine, opt, gm.nan_canonical)
    try:
        module = deadeye.Module(eng, gm.wasm)
    except WasmError as e:
        raise GeneratorError(f"deadeye rejects a generated module: {e}") from None
    store = deadeye.Store(eng)
    store.set_fuel(DEADEYE_FUEL)
    inst = deadeye.Instance(store, module, [])
    ex = inst.exports(store)
    out = []
    for name, args in calls:
        try:
            out.append(["ok", list(ex[name].call_bits(store, list(args)))])
        except Trap as e:
            out.append(["trap", trap_category(e.message)])
        if out[-1][0] == "trap" and out[-1][1] in INCONCLUSIVE:
            return Outcome(out)
    store.set_fuel(DEADEYE_FUEL)
    state = ex[STATE_EXPORT].call_bits(store, [])
    mem = ex["mem"]
    data = bytes(mem.read(store))
    return Outcome(out, hashlib.sha256(data).hexdigest(), mem.size(store), list(state))


# -------------------------------------------------------------------------- comparing


def compare(ours: Outcome, theirs: Outcome) -> str | None:
    """A description of the first difference, or None. The comparison stops at an
    inconclusive outcome (fuel or stack exhausted on either side)."""
    for i, (o, t) in enumerate(zip(ours.calls, theirs.calls)):
        if (o[0] == "trap" and o[1] in INCONCLUSIVE) or (t[0] == "trap" and t[1] in INCONCLUSIVE):
            return None
        if o != t:
            return f"call {i}: deadeye {o} vs wasmtime {t}"
    if len(ours.calls) != len(theirs.calls):
        return f"{len(ours.calls)} calls vs {len(theirs.calls)}"
    if ours.pages != theirs.pages:
        return f"memory pages {ours.pages} vs {theirs.pages}"
    if ours.memory != theirs.memory:
        return "final memory differs"
    if ours.globals != theirs.globals:
        return f"globals {[hex(g) for g in ours.globals]} vs {[hex(g) for g in theirs.globals]}"
    return None


def plan_calls(gm: GeneratedModule, rng_or_chooser) -> list:
    """Each export called once or twice, in a random order, with generated args."""
    c = rng_or_chooser
    calls = []
    for export in gm.exports:
        for _ in range(c.int(1, 2)):
            calls.append((export[0], generate_args(c, gm, export)))
    order = list(range(len(calls)))
    for i in range(len(order) - 1, 0, -1):
        j = c.int(0, i)
        order[i], order[j] = order[j], order[i]
    return [calls[k] for k in order]


def check_module(gm: GeneratedModule, calls: list, configs=None) -> Mismatch | None:
    theirs = run_wasmtime(gm, calls)
    for engine, opt in configs or engine_configs():
        ours = run_deadeye(gm, calls, engine, opt)
        what = compare(ours, theirs)
        if what is not None:
            return Mismatch(f"engine={engine} opt_level={opt} nan_canonicalization={gm.nan_canonical}",
                            what, ours, theirs, calls)
    return None


# -------------------------------------------------------------------------- campaigns


def module_for_seed(seed: int) -> tuple[GeneratedModule, list]:
    """The module and call plan of a campaign seed (every 4th module runs with NaN
    canonicalization on both sides)."""
    c = RandomChooser(seed)
    cfg = GenConfig(nan_canonical=seed % 4 == 3)
    gm = generate(c, cfg)
    return gm, plan_calls(gm, c)


def save_reproducer(out_dir: str, tag: str, gm: GeneratedModule, record: dict) -> str:
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, tag)
    with open(base + ".wasm", "wb") as f:
        f.write(gm.wasm)
    record = dict(record, nan_canonicalization=gm.nan_canonical,
                  exports=[[n, [str(p) for p in ps], [str(r) for r in rs]] for n, ps, rs in gm.exports])
    with open(base + ".json", "w") as f:
        json.dump(record, f, indent=1, default=str)
    return base


def _jsonable_calls(calls: list) -> list:
    return [[n, [hex(a) for a in args]] for n, args in calls]


def rotating_configs(seed: int, engines=None) -> list[tuple[str, int]]:
    """Every registered engine (or those of `engines`) at one opt level, chosen by the
    seed: over many modules every engine × opt level pair runs, at a third of the cost
    of the full product."""
    return [(e, OPT_LEVELS[seed % len(OPT_LEVELS)]) for e in engines or builtin_engines()]


def campaign(seconds: float, seed: int | None = None, out_dir: str = "fuzz-out",
             log=print, full_product: bool = False, progress_every: int = 1000,
             engines: list[str] | None = None) -> dict:
    """Generate and check modules for `seconds`; returns counts. Every failure (a
    mismatch, a generator error, a non-Wasm exception) is saved under `out_dir`. Each
    module runs on every engine at a rotating opt level (`full_product`: at all)."""
    seed = random.randrange(1 << 32) if seed is None else seed
    deadline = time.monotonic() + seconds
    stats = {"modules": 0, "calls": 0, "mismatches": 0, "generator_errors": 0, "crashes": 0,
             "first_seed": seed,
             "configs": [f"{e}/O{o}" for e in engines or builtin_engines() for o in OPT_LEVELS]}
    s = seed
    while time.monotonic() < deadline:
        gm, calls = module_for_seed(s)
        tag = f"diff-{s}"
        try:
            configs = ([(e, o) for e in engines for o in OPT_LEVELS] if engines else None) \
                if full_product else rotating_configs(s, engines)
            m = check_module(gm, calls, configs)
        except GeneratorError as e:
            stats["generator_errors"] += 1
            save_reproducer(out_dir, tag, gm, {"seed": s, "error": str(e)})
            log(f"seed {s}: generator error: {e}")
        except Exception as e:  # a deadeye crash: exactly what the campaign looks for
            stats["crashes"] += 1
            save_reproducer(out_dir, tag, gm, {"seed": s, "calls": _jsonable_calls(calls),
                                               "crash": f"{type(e).__name__}: {e}",
                                               "traceback": traceback.format_exc(limit=-12)})
            log(f"seed {s}: crash {type(e).__name__}: {e}")
        else:
            if m is not None:
                stats["mismatches"] += 1
                save_reproducer(out_dir, tag, gm, {
                    "seed": s, "config": m.config, "difference": m.what,
                    "calls": _jsonable_calls(calls), "deadeye": m.ours.as_json(),
                    "wasmtime": m.theirs.as_json()})
                log(f"seed {s}: {m}")
        stats["modules"] += 1
        stats["calls"] += len(calls)
        s += 1
        if progress_every and stats["modules"] % progress_every == 0:
            log(f"... {stats['modules']} modules, {stats['mismatches']} mismatches, "
                f"{stats['crashes']} crashes")
    stats["last_seed"] = s - 1
    return stats


def load_reproducer(json_path: str) -> tuple[GeneratedModule, list]:
    """The module and calls saved by `save_reproducer` (the .wasm next to the .json)."""
    with open(json_path) as f:
        rec = json.load(f)
    with open(json_path[: -len(".json")] + ".wasm", "rb") as f:
        wasm = f.read()
    vt = {str(t): t for t in deadeye.ValType._wraps}
    exports = [(n, tuple(vt[p] for p in ps), tuple(vt[r] for r in rs)) for n, ps, rs in rec["exports"]]
    calls = [(n, [int(a, 16) for a in args]) for n, args in rec["calls"]]
    gm = GeneratedModule(wasm, exports, set(), bool(rec.get("nan_canonicalization")))
    return gm, calls


# -------------------------------------------------------------------------- shrinking


class RecordingChooser(RandomChooser):
    """A RandomChooser that records its choices as bytes a `ByteChooser` replays."""

    def __init__(self, seed):
        super().__init__(seed)
        self.record = bytearray()

    def int(self, lo: int, hi: int) -> int:
        v = super().int(lo, hi)
        span = hi - lo + 1
        if span > 1:
            self.record += (v - lo).to_bytes((span.bit_length() + 7) // 8, "little")
        return v


def choices_for_seed(seed: int) -> bytes:
    """The choice bytes that make `module_from_choices` rebuild `module_for_seed(seed)`."""
    c = RecordingChooser(seed)
    gm = generate(c, GenConfig(nan_canonical=seed % 4 == 3))
    plan_calls(gm, c)
    return bytes(c.record)


def module_from_choices(data: bytes, nan_canonical: bool) -> tuple[GeneratedModule, list]:
    c = ByteChooser(data)
    gm = generate(c, GenConfig(nan_canonical=nan_canonical))
    return gm, plan_calls(gm, c)


def failure_signature(gm: GeneratedModule, calls: list, configs) -> str | None:
    """What goes wrong with this module, reduced to a kind (so that shrinking keeps the
    same bug): a crash's exception type or the kind of mismatch; None if all agree."""
    try:
        m = check_module(gm, calls, configs)
    except GeneratorError:
        return None
    except Exception as e:  # a crash of deadeye
        return f"crash {type(e).__name__}"
    if m is None:
        return None
    return f"{m.config}: {m.what.split(':')[0] if m.what.startswith('call') else m.what.split(' ')[0]}"


def shrink(data: bytes, nan_canonical: bool, configs, seconds: float = 60.0) -> bytes:
    """Greedy delta debugging over the choice bytes: delete and zero chunks while the
    same kind of failure remains."""
    target = failure_signature(*module_from_choices(data, nan_canonical), configs)
    if target is None:
        return data
    deadline = time.monotonic() + seconds

    def same(candidate: bytes) -> bool:
        return failure_signature(*module_from_choices(candidate, nan_canonical), configs) == target

    chunk = max(1, len(data) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, changed = 0, False
        while i < len(data) and time.monotonic() < deadline:
            for cand in (data[:i] + data[i + chunk:], data[:i] + bytes(min(chunk, len(data) - i)) + data[i + chunk:]):
                if cand != data and same(cand):
                    data, changed = cand, True
                    break
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return data
