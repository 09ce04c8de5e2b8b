"""`deadeye bench`: the Sightglass benchmark harness, with wasmtime's Cranelift JIT and
Pulley interpreter as anchors.

Protocol (the one Sightglass uses). A benchmark is a WASI command module `NAME.wasm` that
imports `bench.start` and `bench.end` (no parameters, no results) and calls them around the
measured region. Each run:

* creates a fresh engine, store and linker in a fresh worker process (so a slow engine can
  be cut off with `--timeout`, and no run inherits caches or heap from another);
* defines WASI (the API's own `Linker.define_wasi` + `Store.set_wasi(WasiConfig)`) with the
  module's folder preopened as `.`, `argv = [NAME]`, stdout and stderr going to files;
* defines `bench.start` / `bench.end`, each recording `time.perf_counter()`;
* calls `_start`. The time of the run is the sum of the start..end intervals; decoding,
  compiling, instantiation and process start-up are not timed;
* compares stdout and stderr byte for byte with `NAME.stdout.expected` /
  `NAME.stderr.expected` (a stream without an expected file is not checked). A mismatch,
  a trap, a non-zero exit status or an unbalanced start/end fails the benchmark: its
  time is never reported.

A measurement is N such runs (default 3); the report gives their median, min and max, the
ratios of medians (deadeye engine / Pulley, deadeye engine / Cranelift, and Pulley /
Cranelift for scale) and the geometric mean of each ratio over the benchmarks where both
sides succeeded.

Engines: "cranelift" and "pulley" run on wasmtime-py (Pulley is wasmtime with the target
"pulley64": its portable interpreter); any other name is a deadeye engine,
`deadeye.Config(engine=NAME)`, or `ENGINE-DISPATCH` for a dispatch mode other than the
default (`native-indirect`, `native-loop`: `Config(engine=ENGINE, dispatch=DISPATCH)`).
Both go through one protocol function, since deadeye's API mirrors wasmtime-py's.

Public: `main(args)` (the CLI), `run_protocol`, `measure`, `probe_engine`,
`resolve_modules`, `default_suite`, `Report` with `to_markdown` / `to_json` / `to_svg`,
`Measurement`, `RunResult`, `geomean`, `machine_facts`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from xml.sax.saxutils import escape as _xml_escape

# wasmtime anchors: engine name -> compilation target (None: the host, i.e. Cranelift).
ANCHORS: dict[str, str | None] = {"cranelift": None, "pulley": "pulley64"}
# --vs choice -> anchors measured.
VS_CHOICES: dict[str, tuple[str, ...]] = {
    "cranelift": ("cranelift",),
    "pulley": ("pulley",),
    "all": ("cranelift", "pulley"),
    "none": (),
}
DEFAULT_ENGINES = ("ir", "interp", "native")
DEFAULT_RUNS = 3
DEFAULT_TIMEOUT = 300.0

# Run/measurement outcomes. "ok" is the only one that carries times.
OK, MISMATCH, EXIT, ERROR, TIMEOUT, UNAVAILABLE = (
    "ok", "mismatch", "exit", "error", "timeout", "unavailable")
# Outcomes that mean something is wrong (as opposed to "not built yet" / "too slow").
FAILURES = (MISMATCH, EXIT, ERROR)


# -- one run ------------------------------------------------------------------------------


@dataclass
class RunResult:
    """The outcome of one run: `elapsed` seconds between bench.start and bench.end when
    `status` is "ok", else None and `detail` says why."""

    status: str
    elapsed: float | None = None
    detail: str = ""

    def to_json(self) -> dict:
        return {"status": self.status, "elapsed": self.elapsed, "detail": self.detail}

    @classmethod
    def from_json(cls, d: dict) -> "RunResult":
        return cls(str(d["status"]), d.get("elapsed"), str(d.get("detail", "")))


def _deadeye_api() -> Any:
    """deadeye's public API as a namespace shaped like the `wasmtime` module, with the
    WASI configuration class wherever the WASI layer exports it."""
    import deadeye

    wasi_cls = getattr(deadeye, "WasiConfig", None)
    if wasi_cls is None:
        try:
            wasi_cls = importlib.import_module("deadeye.wasi").WasiConfig
        except (ImportError, AttributeError) as e:
            raise ValueError(f"deadeye WASI is not available in this build ({e})") from None
    if not hasattr(deadeye.Linker, "define_wasi") or not hasattr(deadeye.Store, "set_wasi"):
        raise ValueError("deadeye WASI is not available in this build "
                         "(Linker.define_wasi / Store.set_wasi missing)")
    return types.SimpleNamespace(
        Module=deadeye.Module, Store=deadeye.Store, Linker=deadeye.Linker,
        FuncType=deadeye.FuncType, WasiConfig=wasi_cls, ExitTrap=deadeye.ExitTrap,
        compile_ahead=lambda module: module.serialize())  # compiles every function


def make_engine(name: str) -> tuple[Any, Any]:
    """(api, engine) for an engine name; ValueError with the reason when it cannot run
    here (wasmtime not installed, deadeye engine not built, no WASI)."""
    if name in ANCHORS:
        try:
            import wasmtime
        except ImportError:
            raise ValueError("wasmtime is not installed (pip install wasmtime)") from None
        cfg = wasmtime.Config()
        target = ANCHORS[name]
        try:
            if target is not None:
                cfg.target = target
            return wasmtime, wasmtime.Engine(cfg)
        except wasmtime.WasmtimeError as e:
            raise ValueError(f"wasmtime cannot build the {name} engine: {e}") from None
    import deadeye

    api = _deadeye_api()
    # "ENGINE-DISPATCH" (native-indirect, native-loop) picks a dispatch mode
    base, _, dispatch = name.partition("-")
    cfg = {"engine": base, "dispatch": dispatch} if dispatch else {"engine": name}
    try:
        engine = deadeye.Engine(deadeye.Config(**cfg))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: {e}" if dispatch else str(e)) from None
    return api, engine


def probe_engine(name: str) -> str | None:
    """None when `name` can run benchmarks here, else the reason it cannot."""
    try:
        make_engine(name)
    except ValueError as e:
        return str(e)
    except Exception as e:  # an engine that breaks while being built is not usable either
        return f"{type(e).__name__}: {e}"
    return None


def expected_paths(wasm: Path) -> dict[str, Path]:
    """Stream name -> file holding its exact expected content."""
    stem = wasm.with_suffix("")
    return {s: stem.with_name(f"{stem.name}.{s}.expected") for s in ("stdout", "stderr")}


def check_outputs(wasm: Path, outputs: dict[str, Path]) -> str | None:
    """None when every stream with an expected file matches it exactly, else a short
    description of the first difference."""
    for stream, exp_path in expected_paths(wasm).items():
        if not exp_path.is_file():
            continue
        expected = exp_path.read_bytes()
        got = outputs[stream].read_bytes() if outputs[stream].is_file() else b""
        if got != expected:
            return f"{stream} differs from {exp_path.name}: {_first_difference(expected, got)}"
    return None


def _first_difference(expected: bytes, got: bytes) -> str:
    exp_lines, got_lines = expected.splitlines(True), got.splitlines(True)
    for i, (e, g) in enumerate(zip(exp_lines, got_lines)):
        if e != g:
            return f"line {i + 1}: expected {_short(e)}, got {_short(g)}"
    n = min(len(exp_lines), len(got_lines))
    if len(exp_lines) > n:
        return f"output ends before line {n + 1} ({_short(exp_lines[n])} expected)"
    return f"extra output at line {n + 1}: {_short(got_lines[n])}"


def _short(b: bytes, limit: int = 60) -> str:
    s = repr(b[:limit])
    return s + ("..." if len(b) > limit else "")


def run_protocol(api: Any, engine: Any, wasm: Path, outdir: Path) -> RunResult:
    """One Sightglass run of `wasm` on (`api`, `engine`) — `api` is the `wasmtime` module
    or deadeye's equivalent (see `make_engine`); guest output goes to files in `outdir`."""
    wasm = Path(wasm)
    module = api.Module.from_file(engine, str(wasm))
    # Compilation is not timed: wasmtime compiles in Module(), deadeye on a function's first
    # call unless asked to compile them all now.
    compile_ahead = getattr(api, "compile_ahead", None)
    if compile_ahead is not None:
        compile_ahead(module)
    store = api.Store(engine)
    linker = api.Linker(engine)
    linker.define_wasi()

    starts: list[float] = []
    ends: list[float] = []
    clock = time.perf_counter

    # The hooks do the least possible work: their cost is inside the measured region.
    def bench_start() -> None:
        starts.append(clock())

    def bench_end() -> None:
        ends.append(clock())

    void = api.FuncType([], [])
    linker.define_func("bench", "start", void, bench_start)
    linker.define_func("bench", "end", void, bench_end)

    outputs = {s: Path(outdir) / f"{s}.txt" for s in ("stdout", "stderr")}
    wasi = api.WasiConfig()
    wasi.argv = [wasm.stem]
    wasi.preopen_dir(str(wasm.resolve().parent), ".")
    wasi.stdout_file = str(outputs["stdout"])
    wasi.stderr_file = str(outputs["stderr"])
    store.set_wasi(wasi)

    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    if "_start" not in exports:
        return RunResult(ERROR, detail="the module exports no _start")
    exit_code = 0
    try:
        exports["_start"](store)
    except api.ExitTrap as e:
        exit_code = getattr(e, "code", 1)
    if exit_code != 0:
        return RunResult(EXIT, detail=f"exit status {exit_code}")
    if not starts and not ends:
        return RunResult(ERROR, detail="the module never called bench.start/bench.end")
    # perf_counter is monotonic, so the calls alternated start, end, start... exactly when
    # the timestamps interleave that way.
    merged = [t for pair in zip(starts, ends) for t in pair]
    if len(starts) != len(ends) or merged != sorted(merged):
        return RunResult(ERROR, detail="bench.start and bench.end calls do not pair up")
    mismatch = check_outputs(wasm, outputs)
    if mismatch is not None:
        return RunResult(MISMATCH, detail=mismatch)
    elapsed = sum(e - s for s, e in zip(starts, ends))
    return RunResult(OK, elapsed=elapsed)


def run_one(engine_name: str, wasm: Path, outdir: Path) -> RunResult:
    """One run in this process, every failure turned into a RunResult (this is the
    boundary where a broken engine must become a table entry, not a traceback)."""
    try:
        api, engine = make_engine(engine_name)
    except ValueError as e:
        return RunResult(UNAVAILABLE, detail=str(e))
    try:
        return run_protocol(api, engine, wasm, outdir)
    except RecursionError:
        return RunResult(ERROR, detail="RecursionError: Python stack exhausted")
    except Exception as e:
        text = " ".join(str(e).split()) or type(e).__name__
        return RunResult(ERROR, detail=f"{type(e).__name__}: {_clip(text)}")


def _clip(s: str, limit: int = 300) -> str:
    return s if len(s) <= limit else s[: limit - 3] + "..."


def run_in_worker(engine_name: str, wasm: Path, timeout: float | None) -> RunResult:
    """One run in a fresh Python process (`python -m deadeye.bench`), killed after
    `timeout` seconds of wall time (start-up and compilation included)."""
    with tempfile.TemporaryDirectory(prefix="deadeye-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "deadeye.bench", engine_name, str(Path(wasm).resolve()),
               tmp, str(result_path)]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            return RunResult(TIMEOUT, detail=f"no result within {timeout:g} s")
        if result_path.is_file():
            try:
                return RunResult.from_json(json.loads(result_path.read_text()))
            except (ValueError, KeyError, TypeError):
                pass
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exit status {proc.returncode}")
        tail = f": {_clip(err[-1])}" if err else ""
        return RunResult(ERROR, detail=f"worker process died ({why}){tail}")


def _worker_main(argv: Sequence[str]) -> int:
    """`python -m deadeye.bench ENGINE WASM OUTDIR RESULT.json`: one run, its RunResult
    written as JSON to RESULT.json."""
    if len(argv) != 4:
        print("usage: python -m deadeye.bench ENGINE WASM OUTDIR RESULT.json", file=sys.stderr)
        return 2
    engine_name, wasm, outdir, result = argv
    r = run_one(engine_name, Path(wasm), Path(outdir))
    Path(result).write_text(json.dumps(r.to_json()))
    return 0


# -- measurements ---------------------------------------------------------------------


@dataclass
class Measurement:
    """N runs of one benchmark on one engine. `times` holds every run's seconds when
    `status` is "ok"; otherwise it is empty and `detail` says what went wrong."""

    benchmark: str
    engine: str
    status: str = OK
    times: list[float] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK and bool(self.times)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.ok else None

    @property
    def min(self) -> float | None:
        return min(self.times) if self.ok else None

    @property
    def max(self) -> float | None:
        return max(self.times) if self.ok else None

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "engine": self.engine, "status": self.status,
                "times": list(self.times), "median": self.median, "min": self.min,
                "max": self.max, "detail": self.detail}

    @classmethod
    def from_json(cls, d: dict) -> "Measurement":
        return cls(d["benchmark"], d["engine"], d["status"], list(d.get("times") or []),
                   d.get("detail", ""))


Runner = Callable[[str, Path, "float | None"], RunResult]


def measure(engine_name: str, wasm: Path, runs: int = DEFAULT_RUNS,
            timeout: float | None = DEFAULT_TIMEOUT, runner: Runner = run_in_worker,
            progress: Callable[[str], None] | None = None) -> Measurement:
    """`runs` runs of `wasm` on `engine_name`; stops at the first run that fails (the
    measurement then carries that failure and no times)."""
    wasm = Path(wasm)
    times: list[float] = []
    for i in range(runs):
        r = runner(engine_name, wasm, timeout)
        if r.status != OK or r.elapsed is None:
            if progress:
                progress(f"{wasm.stem} [{engine_name}] run {i + 1}/{runs}: {r.status} {r.detail}")
            return Measurement(wasm.stem, engine_name, r.status, [], r.detail)
        times.append(r.elapsed)
        if progress:
            progress(f"{wasm.stem} [{engine_name}] run {i + 1}/{runs}: {fmt_seconds(r.elapsed)}")
    return Measurement(wasm.stem, engine_name, OK, times)


# -- report ---------------------------------------------------------------------------


def geomean(values: Iterable[float]) -> float | None:
    """Geometric mean of positive values (None for none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    if any(v <= 0 for v in vals):
        raise ValueError("the geometric mean needs positive values")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def fmt_seconds(t: float | None) -> str:
    """Three significant digits in the unit that keeps the number readable."""
    if t is None:
        return "—"
    scale, unit = next(((s, u) for s, u in ((1.0, "s"), (1e-3, "ms")) if t >= s), (1e-6, "µs"))
    v = t / scale
    return f"{v:.0f} {unit}" if v >= 1000 else f"{v:.3g} {unit}"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:,.0f}×" if r >= 1000 else f"{r:.3g}×"


@dataclass
class Report:
    """Everything one `deadeye bench` invocation measured, plus how."""

    benchmarks: list[str]
    anchors: list[str]
    engines: list[str]
    measurements: list[Measurement]
    runs: int = DEFAULT_RUNS
    timeout: float | None = DEFAULT_TIMEOUT
    suite: str = ""
    machine: dict = field(default_factory=dict)
    anchor_timeout: float | None = None

    def get(self, benchmark: str, engine: str) -> Measurement | None:
        for m in self.measurements:
            if m.benchmark == benchmark and m.engine == engine:
                return m
        return None

    def columns(self) -> list[str]:
        return [*self.anchors, *self.engines]

    def ratio_pairs(self) -> list[tuple[str, str]]:
        """(numerator, denominator) engine pairs: every deadeye engine against every
        anchor (Pulley first), then Pulley against Cranelift for scale."""
        order = sorted(self.anchors, key=lambda a: a != "pulley")
        pairs = [(e, a) for e in self.engines for a in order]
        if "pulley" in self.anchors and "cranelift" in self.anchors:
            pairs.append(("pulley", "cranelift"))
        return pairs

    def ratio(self, benchmark: str, num: str, den: str) -> float | None:
        a, b = self.get(benchmark, num), self.get(benchmark, den)
        if a is None or b is None or not a.ok or not b.ok or b.median <= 0:
            return None
        return a.median / b.median

    def ratio_geomean(self, num: str, den: str) -> tuple[float | None, int]:
        """(geometric mean of the ratio over the benchmarks where both succeeded,
        how many those are)."""
        rs = [r for b in self.benchmarks if (r := self.ratio(b, num, den)) is not None and r > 0]
        return geomean(rs), len(rs)

    # -- output formats --

    def cell(self, benchmark: str, engine: str) -> str:
        m = self.get(benchmark, engine)
        if m is None:
            return "—"
        if not m.ok:
            return m.status
        if len(m.times) == 1:
            return fmt_seconds(m.median)
        return f"{fmt_seconds(m.median)} ({fmt_seconds(m.min)}–{fmt_seconds(m.max)})"

    def to_markdown(self) -> str:
        out = []
        facts = self.machine
        if facts:
            out.append(f"Machine: {facts.get('cpu', '?')}, {facts.get('cores', '?')} cores; "
                       f"Python {facts.get('python', '?')}, wasmtime {facts.get('wasmtime') or '-'}, "
                       f"llvmlite {facts.get('llvmlite') or '-'}; {facts.get('date', '')}")
            out.append("")
        limits = []
        if self.engines and self.timeout is not None:
            limits.append(f"a deadeye run is stopped after {self.timeout:g} s")
        if self.anchors and self.anchor_timeout is not None:
            limits.append(f"an anchor run after {self.anchor_timeout:g} s")
        limit_text = f" ({'; '.join(limits)})" if limits else ""
        out.append(f"Median time of {self.runs} run{'s' if self.runs != 1 else ''} between "
                   f"bench.start and bench.end (min–max){limit_text}:")
        out.append("")
        cols = self.columns()
        out += _md_table(["benchmark", *cols],
                         [[b, *(self.cell(b, c) for c in cols)] for b in self.benchmarks])
        pairs = self.ratio_pairs()
        if pairs:
            out.append("")
            out.append("Ratios of medians (how many times slower than the reference):")
            out.append("")
            rows = [[b, *(fmt_ratio(self.ratio(b, n, d)) for n, d in pairs)]
                    for b in self.benchmarks]
            gm = []
            for n, d in pairs:
                g, k = self.ratio_geomean(n, d)
                gm.append(f"{fmt_ratio(g)} (n={k})" if g is not None else "— (n=0)")
            rows.append(["**geomean**", *gm])
            out += _md_table(["benchmark", *(f"{n} / {d}" for n, d in pairs)], rows)
        problems = self.problems()
        if problems:
            out.append("")
            out.append("Not measured:")
            out.append("")
            out += [f"- {p}" for p in problems]
        return "\n".join(out) + "\n"

    def problems(self) -> list[str]:
        """One line per failed measurement; an engine unavailable everywhere for the
        same reason is one line."""
        lines = []
        for col in self.columns():
            ms = [m for m in self.measurements if m.engine == col and not m.ok]
            if (ms and len(ms) == len(self.benchmarks) and all(m.status == UNAVAILABLE for m in ms)
                    and len({m.detail for m in ms}) == 1):
                lines.append(f"{col}: unavailable: {ms[0].detail}")
                continue
            lines += [f"{m.benchmark} on {col}: {m.status}" + (f": {m.detail}" if m.detail else "")
                      for m in ms]
        return lines

    def to_json(self) -> dict:
        ratios: dict[str, Any] = {}
        for n, d in self.ratio_pairs():
            g, k = self.ratio_geomean(n, d)
            ratios[f"{n}/{d}"] = {
                "per_benchmark": {b: self.ratio(b, n, d) for b in self.benchmarks},
                "geomean": g, "count": k}
        return {
            "machine": self.machine,
            "settings": {"runs": self.runs, "timeout": self.timeout,
                         "anchor_timeout": self.anchor_timeout, "suite": self.suite,
                         "anchors": self.anchors, "engines": self.engines,
                         "benchmarks": self.benchmarks},
            "measurements": [m.to_json() for m in self.measurements],
            "ratios": ratios,
        }

    @classmethod
    def from_json(cls, d: dict) -> "Report":
        s = d["settings"]
        return cls(list(s["benchmarks"]), list(s["anchors"]), list(s["engines"]),
                   [Measurement.from_json(m) for m in d["measurements"]], s["runs"],
                   s.get("timeout"), s.get("suite", ""), dict(d.get("machine") or {}),
                   s.get("anchor_timeout"))

    def to_svg(self) -> str:
        return _svg_chart(self)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    # The benchmark column is text (left), the rest numbers (right-aligned).
    rule = "|" + "|".join(("-" * (w + 1) + ":") if i else (":" + "-" * (w + 1))
                          for i, w in enumerate(widths)) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


# -- SVG chart --------------------------------------------------------------------------

_PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2",
            "#97bbf5", "#9c6b4e", "#9498a0")


def _svg_chart(report: Report) -> str:
    """Grouped horizontal bars of every ratio, one group per benchmark plus the geometric
    means, on a log scale with bars growing from 1× (right: slower than the reference)."""
    # A pair with no value anywhere (an engine not built yet) is named, not drawn.
    all_pairs = report.ratio_pairs()
    pairs = [(n, d) for n, d in all_pairs
             if any(report.ratio(b, n, d) is not None for b in report.benchmarks)]
    hidden = [f"{n} / {d}" for n, d in all_pairs if (n, d) not in pairs]
    groups: list[tuple[str, list[float | None]]] = [
        (b, [report.ratio(b, n, d) for n, d in pairs]) for b in report.benchmarks]
    groups.append(("geomean", [report.ratio_geomean(n, d)[0] for n, d in pairs]))
    values = [v for _, vs in groups for v in vs if v is not None and v > 0]
    lo = min([0.0, *(math.floor(math.log10(v)) for v in values)])
    hi = max([1.0, *(math.ceil(math.log10(v)) for v in values)])
    if hi - lo < 1:
        hi = lo + 1

    bar_h, gap, label_w, plot_w, top, pad = 12, 10, 190, 640, 60, 40
    legend_h = 18 * (len(pairs) + bool(hidden))
    group_h = bar_h * max(1, len(pairs)) + gap
    plot_h = group_h * len(groups)
    width = label_w + plot_w + 2 * pad
    height = top + plot_h + 40 + legend_h

    def x_of(v: float) -> float:
        return label_w + pad + plot_w * (math.log10(v) - lo) / (hi - lo)

    e = _xml_escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{e("deadeye bench: time ratios (median / median)")}</text>',
        f'<text x="{width / 2:.1f}" y="38" text-anchor="middle" fill="#555">'
        f'{e("log scale; bars right of 1× are slower than the reference")}</text>',
    ]
    for k in range(int(lo), int(hi) + 1):
        x = x_of(10.0 ** k)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" '
                   f'stroke="{"#333" if k == 0 else "#ddd"}"/>')
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                   f'{e(fmt_ratio(10.0 ** k))}</text>')
    one = x_of(1.0)
    for gi, (name, vals) in enumerate(groups):
        y0 = top + gi * group_h
        weight = ' font-weight="bold"' if name == "geomean" else ""
        out.append(f'<text x="{label_w + pad - 6}" y="{y0 + group_h / 2:.1f}" '
                   f'text-anchor="end" dominant-baseline="middle"{weight}>{e(name)}</text>')
        for pi, ((n, d), v) in enumerate(zip(pairs, vals)):
            y = y0 + pi * bar_h
            if v is None or v <= 0:
                m = report.get(name, n) if name != "geomean" else None
                why = m.status if m is not None and not m.ok else "n/a"
                out.append(f'<text x="{one + 3:.1f}" y="{y + bar_h - 3}" fill="#999" '
                           f'font-size="9">{e(f"{n} / {d}: {why}")}</text>')
                continue
            x = x_of(v)
            left, w = min(one, x), max(abs(x - one), 1.0)
            label = f"{name}: {n} / {d} = {fmt_ratio(v)}"
            out.append(f'<rect x="{left:.1f}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                       f'fill="{_PALETTE[pi % len(_PALETTE)]}"><title>{e(label)}</title></rect>')
            out.append(f'<text x="{max(x, one) + 3:.1f}" y="{y + bar_h - 3}" '
                       f'font-size="9">{e(fmt_ratio(v))}</text>')
    ly = top + plot_h + 32
    for pi, (n, d) in enumerate(pairs):
        y = ly + pi * 18
        out.append(f'<rect x="{label_w + pad}" y="{y}" width="12" height="12" '
                   f'fill="{_PALETTE[pi % len(_PALETTE)]}"/>')
        out.append(f'<text x="{label_w + pad + 18}" y="{y + 10}">{e(f"{n} / {d}")}</text>')
    if hidden:
        y = ly + len(pairs) * 18 + 10
        out.append(f'<text x="{label_w + pad}" y="{y}" fill="#555">'
                   f'{e("no data: " + ", ".join(hidden))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- machine facts ----------------------------------------------------------------------


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_facts() -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "deadeye": _version("deadeye"),
        "llvmlite": _version("llvmlite"),
        "wasmtime": _version("wasmtime"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- module selection -------------------------------------------------------------------


def default_suite() -> Path | None:
    """The vendored Sightglass suite, `tests/sightglass` of the source tree this package
    runs from (None when deadeye is installed without its tests)."""
    here = Path(__file__).resolve().parent.parent / "tests" / "sightglass"
    return here if here.is_dir() else None


def resolve_modules(items: Sequence[str], suite: Path | None) -> list[Path]:
    """The benchmark modules named by `items`: .wasm files, folders (their *.wasm), or
    names looked up in `suite` (`fib2`, `shootout-fib2`, `shootout-fib2.wasm`). No items:
    the whole suite. ValueError names what cannot be found."""
    if not items:
        if suite is None:
            raise ValueError("no benchmark suite found: pass --suite DIR or modules")
        items = [str(suite)]
    found: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            mods = sorted(p.glob("*.wasm"))
            if not mods:
                raise ValueError(f"no .wasm modules in {item}")
            found += mods
            continue
        if p.is_file():
            found.append(p)
            continue
        candidates = []
        if suite is not None and os.sep not in item and "/" not in item:
            stem = item[:-5] if item.endswith(".wasm") else item
            candidates = [suite / f"{stem}.wasm", suite / f"shootout-{stem}.wasm"]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            where = f" (looked in {suite})" if candidates else ""
            raise ValueError(f"no such benchmark: {item}{where}")
        found.append(hit)
    unique: dict[Path, None] = {}
    for f in found:
        unique.setdefault(f.resolve(), None)
    return list(unique)


# -- command line -------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `deadeye bench` options (the CLI's sub-parser calls this)."""
    p.add_argument("modules", nargs="*", metavar="MODULE",
                   help="benchmark .wasm files, folders of them, or names in the suite "
                        "(fib2, shootout-fib2); default: the whole suite")
    p.add_argument("--suite", metavar="DIR",
                   help="the Sightglass folder (default: tests/sightglass of the source tree)")
    p.add_argument("--engines", metavar="NAMES", default=",".join(DEFAULT_ENGINES),
                   help="comma-separated deadeye engines (default: %(default)s; "
                        "'none' for anchors only)")
    p.add_argument("--vs", choices=tuple(VS_CHOICES), default="all",
                   help="wasmtime anchors to measure in the same run (default: all)")
    p.add_argument("--runs", type=_positive_int, default=DEFAULT_RUNS, metavar="N",
                   help="runs per benchmark and engine; the median is reported (default: 3)")
    p.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="wall-clock limit of one run of a deadeye engine, start-up included "
                        "(default: %(default)g)")
    p.add_argument("--anchor-timeout", type=_positive_float, default=None, metavar="SECONDS",
                   help="the same limit for the wasmtime anchors (default: none, so the "
                        "reference numbers are always complete)")
    p.add_argument("--json", metavar="FILE", help="write the raw numbers and machine facts")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown tables")
    p.add_argument("--chart", metavar="FILE.svg", help="write an SVG bar chart of the ratios")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-run progress on stderr")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {s}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not v > 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {s}")
    return v


def parse_engines(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if names == ["none"]:
        return []
    clash = [n for n in names if n in ANCHORS]
    if clash:
        raise ValueError(f"{', '.join(clash)} is a wasmtime anchor: select it with --vs")
    return list(dict.fromkeys(names))


def run_bench(modules: Sequence[Path], anchors: Sequence[str], engines: Sequence[str],
              runs: int = DEFAULT_RUNS, timeout: float | None = DEFAULT_TIMEOUT,
              runner: Runner = run_in_worker, progress: Callable[[str], None] | None = None,
              suite: str = "", probe: Callable[[str], str | None] = probe_engine,
              anchor_timeout: float | None = None) -> Report:
    """Measure every module on every anchor and engine (benchmark by benchmark, so all
    engines see the machine in the same state). An engine that cannot be built is
    probed once and marked unavailable everywhere. `timeout` limits each run of a deadeye
    engine, `anchor_timeout` each run of an anchor (None: no limit)."""
    columns = [*anchors, *engines]
    unavailable = {c: why for c in columns if (why := probe(c)) is not None}
    for c, why in unavailable.items():
        if progress:
            progress(f"[{c}] unavailable: {why}")
    measurements = []
    for wasm in modules:
        for c in columns:
            if c in unavailable:
                measurements.append(Measurement(wasm.stem, c, UNAVAILABLE, [], unavailable[c]))
            else:
                limit = anchor_timeout if c in anchors else timeout
                measurements.append(measure(c, wasm, runs, limit, runner, progress))
    return Report([m.stem for m in modules], list(anchors), list(engines), measurements,
                  runs, timeout, suite, machine_facts(), anchor_timeout)


def main(args: argparse.Namespace) -> int:
    """The `deadeye bench` command: 0 when nothing failed (an unavailable engine or a
    timeout is not a failure), 1 when a benchmark failed, 2 on bad arguments."""
    try:
        suite = Path(args.suite) if args.suite else default_suite()
        if suite is not None and not suite.is_dir():
            raise ValueError(f"suite folder not found: {suite}")
        modules = resolve_modules(args.modules, suite)
        engines = parse_engines(args.engines)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    anchors = VS_CHOICES[args.vs]
    if not anchors and not engines:
        print("error: nothing to measure (no engines and --vs none)", file=sys.stderr)
        return 2

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    report = run_bench(modules, anchors, engines, args.runs, args.timeout,
                       progress=None if args.quiet else progress,
                       suite=str(suite) if suite is not None else "",
                       anchor_timeout=args.anchor_timeout)
    md = report.to_markdown()
    print(md, end="")
    outputs = ((args.json, lambda: json.dumps(report.to_json(), indent=2) + "\n"),
               (args.markdown, lambda: md), (args.chart, report.to_svg))
    for path, render in outputs:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(render(), encoding="utf-8")
    return 1 if any(m.status in FAILURES for m in report.measurements) else 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
