"""Hostile input: mutants of valid modules sent through decode -> validate -> compile ->
instantiate (stub imports) -> run every exported function with fuel. The only allowed
outcomes are success and `WasmError` subclasses; any other exception, a hang or a crash
of the process is a bug.

Engines listed in `SUBPROCESS_ENGINES` (native code can crash the process) run their
mutants in a worker subprocess (`python -m deadeye.fuzz.hostile worker DIR ENGINE`),
which reports one JSON line per mutant: a process that dies names the mutant it was on.
"""

from __future__ import annotations

import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

import deadeye
from deadeye.api import builtin_engines
from deadeye.fuzz.gen import sleb, uleb
from deadeye.ir.errors import DecodeError, ExitTrap, LinkError, Trap, ValidationError, WasmError
from deadeye.ir.types import ValType

SUBPROCESS_ENGINES = frozenset({"native"})
CALL_FUEL = 20_000
MAX_PAGES = 64  # memories of mutants are capped (a mutant may ask for 4 GiB)
HANG_SECONDS = 30
MAX_SEED_BYTES = 100_000  # larger seeds (shootout-switch: >30 s to compile) are too slow
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Hang(Exception):
    """Raised by the alarm when one input runs longer than HANG_SECONDS."""


# -------------------------------------------------------------------------- seeds


def _top_level_modules(text: str) -> list[str]:
    """The `(module ...)` forms at the top level of a .wast script (strings and comments
    skipped while matching parentheses)."""
    out, i, n, depth, start = [], 0, len(text), 0, -1
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif text.startswith(";;", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("(;", i):
            i = text.find(";)", i)
            i = n if i < 0 else i + 1
        elif ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and text.startswith("(module", start) and not text.startswith(
                    ("(module binary", "(module quote", "(module definition", "(module instance"),
                    start):
                out.append(text[start : i + 1])
        i += 1
    return out


def spec_seed_modules(limit: int = 80, root: str | None = None) -> list[bytes]:
    """Binaries of a deterministic sample of spec-suite modules (converted with
    wasmtime.wat2wasm): the first module of scripts spread evenly over the suite."""
    import wasmtime

    root = root or os.path.join(_ROOT, "tests", "spec")
    files = sorted(glob.glob(os.path.join(root, "core", "*.wast")))
    files += sorted(glob.glob(os.path.join(root, "proposals", "*", "*.wast")))
    files = files[:: max(1, len(files) // limit)]
    out: list[bytes] = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            forms = _top_level_modules(f.read())
        for form in forms[:1]:
            try:
                out.append(wasmtime.wat2wasm(form))
            except Exception:  # e.g. a proposal wasmtime's parser lacks: not a seed then
                continue
        if len(out) >= limit:
            break
    return out[:limit]


def file_seed_modules(root: str | None = None) -> list[bytes]:
    root = root or _ROOT
    paths = sorted(glob.glob(os.path.join(root, "tests", "sightglass", "*.wasm")))
    paths += sorted(glob.glob(os.path.join(root, "examples", "*.wasm")))
    out = []
    for p in paths:
        if os.path.getsize(p) <= MAX_SEED_BYTES:
            with open(p, "rb") as f:
                out.append(f.read())
    return out


def seed_modules(spec_limit: int = 80) -> list[bytes]:
    return file_seed_modules() + spec_seed_modules(spec_limit)


# -------------------------------------------------------------------------- mutation


def _sections(data: bytes) -> list[tuple[int, int, int]] | None:
    """(start, payload_start, end) of each section, or None if the layout is broken."""
    out, pos = [], 8
    while pos < len(data):
        start = pos
        pos += 1
        size, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 35:
                return None
            b = data[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if pos + size > len(data):
            return None
        out.append((start, pos, pos + size))
        pos += size
    return out


def _read_leb(data: bytes, pos: int) -> tuple[int, int] | None:
    v, shift, p = 0, 0, pos
    while p < len(data) and shift < 70:
        b = data[p]
        p += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, p
    return None


def _retamper_leb(rng: random.Random, v: int) -> bytes:
    how = rng.randrange(6)
    if how == 0:  # overlong but still within 5 bytes
        enc = bytearray(uleb(v))
        while len(enc) < 5:
            enc[-1] |= 0x80
            enc.append(0)
        return bytes(enc)
    if how == 1:  # too long
        return bytes([0x80] * rng.randint(5, 11)) + b"\x00"
    if how == 2:
        return uleb(rng.choice([0xFFFFFFFF, 0x100000000, 1 << 31, 0x7FFFFFFF, 65536, 1 << 40]))
    if how == 3:
        return uleb(max(0, v + rng.randint(-3, 3)))
    if how == 4:
        return sleb(-rng.randint(1, 1 << 33))
    return uleb(v)[:-1] + bytes([uleb(v)[-1] | 0x80])  # unterminated


def mutate(data: bytes, rng: random.Random, others: list[bytes] | None = None) -> bytes:
    """One to three random mutations of `data`."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        buf = bytearray(_mutate_once(bytes(buf), rng, others))
    return bytes(buf)


def _mutate_once(data: bytes, rng: random.Random, others) -> bytes:
    n = len(data)
    if n == 0:
        return bytes([rng.randrange(256) for _ in range(rng.randint(1, 16))])
    secs = _sections(data) or []
    kind = rng.choice(["flip", "flip", "byte", "insert", "delete", "dup_section", "drop_section",
                       "truncate", "truncate_section", "swap_sections", "leb", "leb", "leb_size",
                       "splice"])
    if kind == "flip":
        i = rng.randrange(n)
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if kind == "byte":
        i = rng.randrange(n)
        b = rng.choice([0, 0xFF, 0x7F, 0x80, 0x40, 0x0B, 0x01, rng.randrange(256)])
        return data[:i] + bytes([b]) + data[i + 1:]
    if kind == "insert":
        i = rng.randrange(n + 1)
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[i:]
    if kind == "delete":
        i = rng.randrange(n)
        return data[:i] + data[i + rng.randint(1, 16):]
    if kind == "truncate":
        return data[: rng.randrange(n)]
    if kind == "splice" and others:
        o = rng.choice(others)
        i, j = rng.randrange(n), rng.randrange(len(o))
        return data[:i] + o[j : j + rng.randint(1, 64)] + data[i + rng.randint(0, 64):]
    if not secs:
        i = rng.randrange(n)
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
    s, p, e = rng.choice(secs)
    if kind == "dup_section":
        return data[:e] + data[s:e] + data[e:]
    if kind == "drop_section":
        return data[:s] + data[e:]
    if kind == "truncate_section":  # cut the payload, keep the declared size (or fix it)
        cut = rng.randint(p, e)
        body = data[p:cut]
        if rng.random() < 0.5:
            return data[:s] + data[s:s + 1] + uleb(len(body)) + body + data[e:]
        return data[:cut] + data[e:]
    if kind == "swap_sections" and len(secs) > 1:
        a, b = sorted(rng.sample(range(len(secs)), 2))
        (s1, _, e1), (s2, _, e2) = secs[a], secs[b]
        return data[:s1] + data[s2:e2] + data[e1:s2] + data[s1:e1] + data[e2:]
    if kind == "leb_size":  # the section's size field
        leb = _read_leb(data, s + 1)
        v = leb[0] if leb else 0
        return data[: s + 1] + _retamper_leb(rng, v) + data[p:]
    # a LEB somewhere inside a payload
    if e > p:
        i = rng.randrange(p, e)
        leb = _read_leb(data, i)
        if leb is not None:
            v, end = leb
            return data[:i] + _retamper_leb(rng, v) + data[end:]
    return data


# -------------------------------------------------------------------------- running one input


def _zero(t: ValType):
    if t in (ValType.FUNCREF, ValType.EXTERNREF):
        return None
    if t in (ValType.F32, ValType.F64):
        return 0.0
    return 0


def _stub(store: deadeye.Store, ty):
    """An import of the type asked for: functions return zeros."""
    if isinstance(ty, deadeye.FuncType):
        results = ty.results

        def host(*args):
            vals = [_zero(r) for r in results]
            return None if not vals else vals[0] if len(vals) == 1 else vals

        return deadeye.Func(store, ty, host)
    if isinstance(ty, deadeye.MemoryType):
        return deadeye.Memory(store, ty)
    if isinstance(ty, deadeye.TableType):
        return deadeye.Table(store, ty, None)
    return deadeye.Global(store, ty, _zero(ty.content))


_OUTCOME = [(DecodeError, "decode"), (ValidationError, "validate"), (LinkError, "link"),
            (ExitTrap, "exit"), (Trap, "trap"), (WasmError, "wasm-error")]


def _category(e: WasmError) -> str:
    for cls, name in _OUTCOME:
        if isinstance(e, cls):
            return name
    return "wasm-error"


def _config(engine: str, variant: int) -> deadeye.Config:
    return deadeye.Config(engine=engine, opt_level=variant % 3, lazy=variant % 5 == 4,
                          nan_canonicalization=variant % 7 == 6, consume_fuel=True,
                          max_memory_pages=MAX_PAGES, max_table_elements=100_000)


def run_input(data: bytes, engine: str, variant: int = 0) -> str:
    """Push `data` through every stage; returns the outcome's name ("ok", "decode",
    "validate", "link", "trap", ...). Any non-Wasm exception propagates."""
    eng = deadeye.Engine(_config(engine, variant))
    try:
        module = deadeye.Module(eng, data)
    except WasmError as e:
        return _category(e)
    store = deadeye.Store(eng)
    try:
        imports = [_stub(store, imp.type) for imp in module.imports]
        inst = deadeye.Instance(store, module, imports)
    except WasmError as e:
        return _category(e)
    outcome = "ok"
    ex = inst.exports(store)
    for name in list(ex):
        f = ex[name]
        if not isinstance(f, deadeye.Func):
            continue
        args = [None if t in (ValType.FUNCREF, ValType.EXTERNREF) else 0 for t in f.type().params]
        store.set_fuel(CALL_FUEL)
        try:
            f.call_bits(store, args)
        except WasmError as e:
            outcome = _category(e)
    return outcome


def _alarm(signum, frame):
    # Fire again soon: raised inside a weakref callback or __del__, Python swallows it.
    signal.alarm(1)
    raise Hang(f"input ran longer than {HANG_SECONDS}s")


def run_guarded(data: bytes, engine: str, variant: int = 0) -> tuple[str, str | None]:
    """(outcome, None) or ("bug", traceback) — never raises."""
    old = None
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        try:
            old = signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(HANG_SECONDS)
        except ValueError:  # not the main thread: no watchdog
            use_alarm = False
    try:
        return run_input(data, engine, variant), None
    except Hang as e:
        return "bug", f"hang: {e}\n" + traceback.format_exc(limit=-12)
    except RecursionError:
        return "bug", "RecursionError\n" + traceback.format_exc(limit=-8)
    except BaseException as e:  # noqa: BLE001 - any non-Wasm exception is the bug we look for
        if isinstance(e, KeyboardInterrupt):
            raise
        return "bug", traceback.format_exc(limit=-12)
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


# -------------------------------------------------------------------------- subprocess worker


def run_in_subprocess(inputs: list[tuple[bytes, int]], engine: str) -> list[tuple[str, str | None]]:
    """Run (data, variant) inputs in worker processes; a worker that dies (signal, abort)
    is reported as a crash of the input it was on, and the rest continue in a new one."""
    results: list[tuple[str, str | None]] = []
    with tempfile.TemporaryDirectory(prefix="deadeye-hostile-") as d:
        for i, (data, variant) in enumerate(inputs):
            with open(os.path.join(d, f"{i:06d}-{variant}.wasm"), "wb") as f:
                f.write(data)
        names = sorted(os.listdir(d))
        while len(results) < len(names):
            todo = os.path.join(d, "todo.txt")
            with open(todo, "w") as f:
                f.write("\n".join(names[len(results):]))
            # Each input has its own watchdog in the worker; this one catches a wedged process.
            timeout = 60 + HANG_SECONDS * (len(names) - len(results))
            try:
                proc = subprocess.run([sys.executable, "-m", "deadeye.fuzz.hostile", "worker", d, engine],
                                      capture_output=True, text=True, timeout=timeout)
                lines, rc, err = proc.stdout.splitlines(), proc.returncode, proc.stderr
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                lines, rc, err = out.splitlines(), "timeout", ""
            for line in lines:
                rec = json.loads(line)
                results.append((rec["outcome"], rec.get("detail")))
            if len(results) < len(names):
                results.append(("bug", f"worker process died ({rc}) on this input: {err[-2000:]}"))
    return results


def _worker(directory: str, engine: str) -> int:
    with open(os.path.join(directory, "todo.txt")) as f:
        names = [n for n in f.read().splitlines() if n]
    for n in names:
        with open(os.path.join(directory, n), "rb") as f:
            data = f.read()
        variant = int(n.split("-")[1].split(".")[0])
        outcome, detail = run_guarded(data, engine, variant)
        print(json.dumps({"outcome": outcome, "detail": detail}), flush=True)
    return 0


# -------------------------------------------------------------------------- campaigns


@dataclass
class HostileStats:
    mutants: int = 0
    bugs: int = 0
    outcomes: dict | None = None

    def as_dict(self) -> dict:
        return {"mutants": self.mutants, "bugs": self.bugs, "outcomes": self.outcomes}


def campaign(seconds: float | None = None, count: int | None = None, seed: int | None = None,
             out_dir: str = "fuzz-out", seeds: list[bytes] | None = None, log=print,
             batch: int = 50, engines: list[str] | None = None) -> dict:
    """Mutate seeds until `seconds` pass or `count` mutants ran; bugs are saved as
    `<out_dir>/hostile-<n>.wasm` + `.json` (engine, variant, traceback)."""
    seed = random.randrange(1 << 32) if seed is None else seed
    rng = random.Random(seed)
    seeds = seeds if seeds is not None else seed_modules()
    engines = list(engines or builtin_engines())
    deadline = None if seconds is None else time.monotonic() + seconds
    stats = HostileStats(outcomes={})
    n = 0
    while (count is None or n < count) and (deadline is None or time.monotonic() < deadline):
        size = batch if count is None else min(batch, count - n)
        mutants = [(mutate(rng.choice(seeds), rng, seeds), n + k) for k in range(size)]
        by_engine: dict[str, list[int]] = {}
        for k, (_, variant) in enumerate(mutants):
            by_engine.setdefault(engines[variant % len(engines)], []).append(k)
        results: list = [None] * len(mutants)
        for engine, ks in by_engine.items():
            if engine in SUBPROCESS_ENGINES:
                for k, r in zip(ks, run_in_subprocess([mutants[k] for k in ks], engine)):
                    results[k] = r
            else:
                for k in ks:
                    results[k] = run_guarded(mutants[k][0], engine, mutants[k][1])
        for (data, variant), (outcome, detail) in zip(mutants, results):
            engine = engines[variant % len(engines)]
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
            stats.mutants += 1
            if outcome == "bug":
                stats.bugs += 1
                os.makedirs(out_dir, exist_ok=True)
                base = os.path.join(out_dir, f"hostile-{seed}-{variant}")
                with open(base + ".wasm", "wb") as f:
                    f.write(data)
                with open(base + ".json", "w") as f:
                    json.dump({"engine": engine, "variant": variant,
                               "config": repr(_config(engine, variant)), "detail": detail}, f, indent=1)
                log(f"mutant {variant} ({engine}): {(detail or '').strip().splitlines()[-1][:200]}")
        n += size
    return dict(stats.as_dict(), seed=seed, engines=engines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "worker":
        raise SystemExit(_worker(sys.argv[2], sys.argv[3]))
    print("usage: python -m deadeye.fuzz.hostile worker DIR ENGINE", file=sys.stderr)
    raise SystemExit(2)
