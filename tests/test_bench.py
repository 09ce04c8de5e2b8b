"""`deadeye bench`: the Sightglass protocol (through wasmtime's anchors and, when built,
deadeye's own engines), output checking, the report formats and the command line.
No assertion here depends on how fast anything runs."""

from __future__ import annotations

import json
import math
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deadeye import bench
from deadeye.cli import build_parser
from deadeye.cli import main as cli_main

wasmtime = pytest.importorskip("wasmtime", reason="wasmtime (the anchor and WAT compiler) is not installed")

SUITE = Path(__file__).resolve().parent / "sightglass"

# A tiny Sightglass-style command: between bench.start and bench.end it writes MESSAGE to
# file descriptor FD; then it runs EPILOGUE (extra bench calls, proc_exit ...).
_WAT = """
(module
  (import "bench" "start" (func $start))
  (import "bench" "end" (func $end))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{message}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {length}))
    {prologue}
    (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))
    {epilogue}))
"""

# Reads `data.txt` from the preopened `.` (fd 3) and echoes it to stdout, timed.
_WAT_READS_FILE = """
(module
  (import "bench" "start" (func $start))
  (import "bench" "end" (func $end))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "data.txt")
  (func (export "_start")
    call $start
    ;; path_open(dirfd 3, follow symlinks, "data.txt", no oflags, rights fd_read, 0, 0, &fd @200)
    (if (call $path_open (i32.const 3) (i32.const 1) (i32.const 100) (i32.const 8) (i32.const 0)
                         (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200))
      (then (call $exit (i32.const 7))))
    ;; iovec @0 = (buffer 1024, length 512); bytes read @16
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 512))
    (if (call $fd_read (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 16))
      (then (call $exit (i32.const 8))))
    (i32.store (i32.const 4) (i32.load (i32.const 16)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    call $end))
"""

_MESSAGE = "hello bench\n"


def _write_module(folder: Path, name: str, *, fd: int = 1, message: str = _MESSAGE,
                  prologue: str = "call $start", epilogue: str = "call $end",
                  stdout: str | None = _MESSAGE, stderr: str | None = "") -> Path:
    """NAME.wasm plus its expected-output files (None: no file) in `folder`."""
    wat = _WAT.format(message=message.replace("\n", "\\n"), length=len(message.encode()),
                      fd=fd, prologue=prologue, epilogue=epilogue)
    wasm = folder / f"{name}.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(wat))
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        if text is not None:
            (folder / f"{name}.{stream}.expected").write_text(text)
    return wasm


def _run_cranelift(wasm: Path, outdir: Path) -> bench.RunResult:
    api, engine = bench.make_engine("cranelift")
    return bench.run_protocol(api, engine, wasm, outdir)


# -- the protocol through the wasmtime anchors ---------------------------------------------


def test_protocol_times_the_region_and_checks_output(tmp_path):
    wasm = _write_module(tmp_path, "hello")
    out = tmp_path / "out"
    out.mkdir()
    r = _run_cranelift(wasm, out)
    assert r.status == bench.OK, r.detail
    assert r.elapsed is not None and r.elapsed >= 0
    # The guest's stdout went to the capture file, not to our stdout.
    assert (out / "stdout.txt").read_text() == _MESSAGE


@pytest.mark.parametrize("anchor", sorted(bench.ANCHORS))
def test_each_anchor_runs_the_protocol_in_a_worker_process(tmp_path, anchor):
    wasm = _write_module(tmp_path, "hello")
    r = bench.run_in_worker(anchor, wasm, timeout=120)
    assert r.status == bench.OK, r.detail
    assert r.elapsed is not None and r.elapsed >= 0


def test_pulley_anchor_compiles_to_pulley_bytecode_not_host_code():
    # The serialized artifact names its target: Pulley's differs from the host's ELF machine.
    wat = '(module (func (export "f") (result i32) i32.const 7))'
    images = {}
    for anchor in ("cranelift", "pulley"):
        _, engine = bench.make_engine(anchor)
        images[anchor] = bytes(wasmtime.Module(engine, wat).serialize())
    e_machine = {k: int.from_bytes(v[18:20], "little") for k, v in images.items()}
    assert e_machine["cranelift"] != e_machine["pulley"]
    assert b"pulley" in images["pulley"] and b"pulley" not in images["cranelift"]


def test_the_module_folder_is_preopened_as_dot(tmp_path):
    (tmp_path / "data.txt").write_text("from the preopened folder\n")
    (tmp_path / "reader.wasm").write_bytes(wasmtime.wat2wasm(_WAT_READS_FILE))
    (tmp_path / "reader.stdout.expected").write_text("from the preopened folder\n")
    r = _run_cranelift(tmp_path / "reader.wasm", tmp_path)
    assert r.status == bench.OK, r.detail


def test_stdout_mismatch_is_a_failure_without_a_time(tmp_path):
    wasm = _write_module(tmp_path, "liar", stdout="hello world\n")
    r = _run_cranelift(wasm, tmp_path)
    assert r.status == bench.MISMATCH and r.elapsed is None
    assert "stdout" in r.detail and "line 1" in r.detail


def test_stderr_is_checked_too(tmp_path):
    wasm = _write_module(tmp_path, "noisy", fd=2, stdout="", stderr=_MESSAGE)
    assert _run_cranelift(wasm, tmp_path).status == bench.OK
    (tmp_path / "noisy.stderr.expected").write_text("")
    r = _run_cranelift(wasm, tmp_path)
    assert r.status == bench.MISMATCH and "stderr" in r.detail and "extra output" in r.detail


def test_missing_output_is_reported(tmp_path):
    wasm = _write_module(tmp_path, "short", stdout=_MESSAGE + "second line\n")
    r = _run_cranelift(wasm, tmp_path)
    assert r.status == bench.MISMATCH and "ends before line 2" in r.detail


def test_streams_without_expected_files_are_not_checked(tmp_path):
    wasm = _write_module(tmp_path, "free", stdout=None, stderr=None)
    assert _run_cranelift(wasm, tmp_path).status == bench.OK


@pytest.mark.parametrize("prologue, epilogue, status, words", [
    ("call $start", "call $end (call $exit (i32.const 3))", bench.EXIT, "exit status 3"),
    ("call $start", "call $end (call $exit (i32.const 0))", bench.OK, ""),
    ("", "", bench.ERROR, "never called"),
    ("call $start", "", bench.ERROR, "do not pair up"),
    ("call $start call $start", "call $end call $end", bench.ERROR, "do not pair up"),
    ("call $start", "call $end call $start call $end", bench.OK, ""),
    ("call $start", "unreachable", bench.ERROR, ""),
])
def test_run_outcomes(tmp_path, prologue, epilogue, status, words):
    wasm = _write_module(tmp_path, "m", prologue=prologue, epilogue=epilogue)
    r = bench.run_one("cranelift", wasm, tmp_path)
    assert r.status == status, r.detail
    assert words in r.detail
    assert (r.elapsed is not None) == (status == bench.OK)


def test_worker_reports_unknown_engines_as_unavailable(tmp_path):
    wasm = _write_module(tmp_path, "hello")
    r = bench.run_in_worker("no-such-engine", wasm, timeout=120)
    assert r.status == bench.UNAVAILABLE and "no-such-engine" in r.detail


def test_engine_names_select_a_dispatch_mode():
    assert bench.make_engine("native")[1].config.dispatch == "direct"
    for mode in ("indirect", "loop"):
        assert bench.make_engine(f"native-{mode}")[1].config.dispatch == mode
    assert "native-bogus" in bench.probe_engine("native-bogus")


def test_timeout_cuts_off_a_run(tmp_path):
    wasm = _write_module(tmp_path, "forever", epilogue="(loop $l (br $l)) call $end")
    r = bench.run_in_worker("cranelift", wasm, timeout=2)
    assert r.status == bench.TIMEOUT and "2 s" in r.detail


def test_a_vendored_sightglass_benchmark_passes_on_cranelift(tmp_path):
    # ackermann reads its *.input files from the preopened folder and prints a result.
    r = _run_cranelift(SUITE / "shootout-ackermann.wasm", tmp_path)
    assert r.status == bench.OK, r.detail


@pytest.mark.parametrize("name", ["interp", "native"])
def test_a_deadeye_engine_runs_the_same_protocol(tmp_path, name):
    assert bench.probe_engine(name) is None
    wasm = _write_module(tmp_path, "hello")
    r = bench.run_one(name, wasm, tmp_path)
    assert r.status == bench.OK, r.detail
    liar = _write_module(tmp_path, "liar", stdout="something else\n")
    assert bench.run_one(name, liar, tmp_path).status == bench.MISMATCH


# -- measurements from a scripted runner -------------------------------------------------


def _scripted(results: list[bench.RunResult]):
    calls = []

    def runner(engine, wasm, timeout):
        calls.append((engine, wasm.stem, timeout))
        return results[len(calls) - 1]

    return runner, calls


def test_measure_collects_every_run():
    runner, calls = _scripted([bench.RunResult(bench.OK, t) for t in (3.0, 1.0, 2.0, 10.0)])
    m = bench.measure("x", Path("b.wasm"), runs=4, timeout=9.0, runner=runner)
    assert calls == [("x", "b", 9.0)] * 4
    assert m.ok and m.times == [3.0, 1.0, 2.0, 10.0]
    assert (m.median, m.min, m.max) == (2.5, 1.0, 10.0)


def test_measure_stops_at_the_first_failure_and_keeps_no_times():
    runner, calls = _scripted([bench.RunResult(bench.OK, 1.0),
                               bench.RunResult(bench.TIMEOUT, None, "too slow")])
    m = bench.measure("x", Path("b.wasm"), runs=5, runner=runner)
    assert len(calls) == 2
    assert (m.status, m.times, m.detail, m.median) == (bench.TIMEOUT, [], "too slow", None)


def test_unavailable_engines_are_probed_once_and_never_run():
    runner, calls = _scripted([bench.RunResult(bench.OK, 0.5)] * 4)
    probes = []

    def probe(name):
        probes.append(name)
        return "not built" if name == "native" else None

    mods = [Path("a.wasm"), Path("b.wasm")]
    rep = bench.run_bench(mods, ["cranelift"], ["native", "interp"], runs=1, runner=runner,
                          probe=probe, timeout=7.0, anchor_timeout=None)
    assert probes == ["cranelift", "native", "interp"]
    # Benchmark by benchmark; only deadeye's runs get the timeout.
    assert calls == [("cranelift", "a", None), ("interp", "a", 7.0),
                     ("cranelift", "b", None), ("interp", "b", 7.0)]
    assert rep.get("a", "native").status == bench.UNAVAILABLE
    assert rep.problems() == ["native: unavailable: not built"]


# -- the report: tables, ratios, JSON, SVG ----------------------------------------------

# Fabricated medians (seconds) and failures; ratios are computed here independently.
_TIMES = {
    ("fib", "cranelift"): [1.0, 1.2, 0.9],
    ("fib", "pulley"): [10.0, 11.0, 9.0],
    ("fib", "interp"): [400.0, 390.0, 410.0],
    ("sieve", "cranelift"): [0.002, 0.002, 0.003],
    ("sieve", "pulley"): [0.05, 0.04, 0.06],
    ("sieve", "interp"): [0.5, 0.6, 0.4],
    ("gimli", "cranelift"): [0.25, 0.25, 0.25],
    ("gimli", "pulley"): [4.0, 4.0, 4.0],
}
_FAILED = {("gimli", "interp"): (bench.MISMATCH, "stdout differs"),
           ("fib", "native"): (bench.UNAVAILABLE, "not built"),
           ("sieve", "native"): (bench.UNAVAILABLE, "not built"),
           ("gimli", "native"): (bench.UNAVAILABLE, "not built")}


def _report() -> bench.Report:
    ms = [bench.Measurement(b, e, bench.OK, list(t)) for (b, e), t in _TIMES.items()]
    ms += [bench.Measurement(b, e, s, [], d) for (b, e), (s, d) in _FAILED.items()]
    machine = {"cpu": "Test CPU", "cores": 2, "python": "3.11", "wasmtime": "50",
               "llvmlite": "0.5", "date": "2026-01-01 00:00 UTC"}
    return bench.Report(["fib", "sieve", "gimli"], ["cranelift", "pulley"], ["interp", "native"],
                        ms, 3, 60.0, "suite", machine)


def _median(b, e):
    return statistics.median(_TIMES[(b, e)])


def test_ratios_and_geometric_means():
    rep = _report()
    assert rep.ratio_pairs() == [("interp", "pulley"), ("interp", "cranelift"),
                                 ("native", "pulley"), ("native", "cranelift"),
                                 ("pulley", "cranelift")]
    assert rep.ratio("fib", "interp", "pulley") == pytest.approx(40.0)
    assert rep.ratio("gimli", "interp", "pulley") is None  # the mismatch is never timed
    g, n = rep.ratio_geomean("interp", "cranelift")
    assert n == 2 and g == pytest.approx(math.sqrt((400 / 1.0) * (0.5 / 0.002)))
    g, n = rep.ratio_geomean("pulley", "cranelift")
    expect = (10 / 1.0 * 0.05 / 0.002 * 4 / 0.25) ** (1 / 3)
    assert n == 3 and g == pytest.approx(expect)
    assert rep.ratio_geomean("native", "pulley") == (None, 0)


def test_geomean_and_number_formats():
    assert bench.geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert bench.geomean([]) is None
    with pytest.raises(ValueError):
        bench.geomean([1.0, 0.0])
    assert [bench.fmt_seconds(t) for t in (12.345, 1.0, 0.1183, 0.00095, 7.97e-06, 4321.0)] == [
        "12.3 s", "1 s", "118 ms", "950 µs", "7.97 µs", "4321 s"]
    assert [bench.fmt_ratio(r) for r in (0.5, 12.34, 2170.4, None)] == ["0.5×", "12.3×", "2,170×", "—"]


def test_markdown_tables():
    md = _report().to_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("Machine: Test CPU, 2 cores")
    assert "(min–max) (a deadeye run is stopped after 60 s):" in md
    header = next(l for l in lines if l.startswith("| benchmark"))  # the times table
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "benchmark", "cranelift", "pulley", "interp", "native"]
    fib = next(l for l in lines if l.startswith("| fib ") and " s (" in l)
    cells = [c.strip() for c in fib.strip("|").split("|")]
    assert cells[1] == f"{bench.fmt_seconds(_median('fib', 'cranelift'))} (900 ms–1.2 s)"
    assert cells[3].startswith("400 s") and cells[4] == "unavailable"
    gimli = next(l for l in lines if l.startswith("| gimli ") and "mismatch" in l)
    assert "4 s" in gimli
    geo = next(l for l in lines if l.startswith("| **geomean**"))
    g, _ = _report().ratio_geomean("pulley", "cranelift")
    assert f"{bench.fmt_ratio(g)} (n=3)" in geo and "— (n=0)" in geo
    assert "- gimli on interp: mismatch: stdout differs" in lines
    assert "- native: unavailable: not built" in lines
    # Every table row has the same number of cells as its header.
    for row in (l for l in lines if l.startswith("|")):
        assert row.count("|") in (6, 7)


def test_json_round_trip_keeps_the_raw_numbers():
    rep = _report()
    data = json.loads(json.dumps(rep.to_json()))
    assert data["machine"]["cpu"] == "Test CPU"
    assert data["settings"]["runs"] == 3 and data["settings"]["timeout"] == 60.0
    fib = next(m for m in data["measurements"] if m["benchmark"] == "fib" and m["engine"] == "pulley")
    assert fib["times"] == _TIMES[("fib", "pulley")] and fib["median"] == 10.0
    assert (fib["min"], fib["max"]) == (9.0, 11.0)
    r = data["ratios"]["interp/pulley"]
    assert r["count"] == 2 and r["per_benchmark"]["gimli"] is None
    assert r["per_benchmark"]["sieve"] == pytest.approx(0.5 / 0.05)
    again = bench.Report.from_json(data)
    assert again.to_markdown() == rep.to_markdown()


def test_svg_chart_draws_one_bar_per_ratio():
    rep = _report()
    svg = rep.to_svg()
    root = ET.fromstring(svg)  # well-formed XML
    ns = {"s": "http://www.w3.org/2000/svg"}
    titles = [t.text for t in root.iterfind(".//s:rect/s:title", ns)]
    drawn = [(b, n, d) for b in rep.benchmarks for n, d in rep.ratio_pairs()
             if rep.ratio(b, n, d) is not None]
    geos = [p for p in rep.ratio_pairs() if rep.ratio_geomean(*p)[0] is not None]
    assert len(titles) == len(drawn) + len(geos)
    assert f"fib: interp / pulley = {bench.fmt_ratio(40.0)}" in titles
    texts = " ".join(t.text or "" for t in root.iterfind(".//s:text", ns))
    assert "interp / pulley: mismatch" in texts  # gimli's failed bar is labelled
    assert "no data: native / pulley, native / cranelift" in texts
    # Bars grow from the 1x line: a ratio above 1 starts there and extends right.
    xs = {t.text: float(r.get("x")) for r in root.iterfind(".//s:rect", ns)
          if (t := r.find("s:title", ns)) is not None}
    assert len(set(xs.values())) == 1


# -- module selection and the command line ----------------------------------------------


def test_default_suite_is_the_vendored_folder_in_the_repository():
    suite = bench.default_suite()
    assert suite is not None and suite == SUITE
    assert "shared" not in suite.parts


def test_resolve_modules(tmp_path):
    for n in ("shootout-a", "b"):
        (tmp_path / f"{n}.wasm").write_bytes(b"")
    r = lambda *items: [p.name for p in bench.resolve_modules(items, tmp_path)]
    assert r() == ["b.wasm", "shootout-a.wasm"]
    assert r("a", "shootout-a.wasm", "b") == ["shootout-a.wasm", "b.wasm"]
    assert r(str(tmp_path / "b.wasm")) == ["b.wasm"]
    with pytest.raises(ValueError, match="no such benchmark: zzz"):
        bench.resolve_modules(["zzz"], tmp_path)
    with pytest.raises(ValueError, match="no benchmark suite"):
        bench.resolve_modules([], None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no .wasm modules"):
        bench.resolve_modules([str(empty)], tmp_path)


def test_cli_defaults_and_options():
    a = build_parser().parse_args(["bench"])
    assert (a.modules, a.vs, a.runs, a.timeout, a.suite) == ([], "all", 3, 300.0, None)
    assert a.anchor_timeout is None
    assert bench.parse_engines(a.engines) == list(bench.DEFAULT_ENGINES)
    a = build_parser().parse_args(["bench", "fib2", "x.wasm", "--engines", "interp, native",
                                   "--vs", "pulley", "--runs", "5", "--timeout", "2.5",
                                   "--anchor-timeout", "100",
                                   "--json", "r.json", "--markdown", "r.md", "--chart", "r.svg"])
    assert a.modules == ["fib2", "x.wasm"] and a.vs == "pulley" and a.runs == 5
    assert a.timeout == 2.5 and a.anchor_timeout == 100.0 and (a.json, a.markdown, a.chart) == ("r.json", "r.md", "r.svg")
    assert bench.parse_engines(a.engines) == ["interp", "native"]
    assert bench.parse_engines("none") == []


@pytest.mark.parametrize("argv", [
    ["bench", "--vs", "v8"], ["bench", "--runs", "0"], ["bench", "--runs", "two"],
    ["bench", "--timeout", "-1"], ["bench", "--timeout", "inf"],
])
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["bench", "no-such-benchmark"], "no such benchmark"),
    (["bench", "--engines", "pulley"], "select it with --vs"),
    (["bench", "--engines", "none", "--vs", "none"], "nothing to measure"),
    (["bench", "--suite", "/nonexistent/folder"], "suite folder not found"),
])
def test_cli_reports_bad_requests_without_a_traceback(argv, words, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_cli_end_to_end_writes_every_format(tmp_path, capsys):
    _write_module(tmp_path, "good")
    _write_module(tmp_path, "bad", stdout="not what it prints\n")
    out = tmp_path / "out"
    argv = ["bench", "--suite", str(tmp_path), "good", "--vs", "cranelift", "--engines", "none",
            "--runs", "2", "-q", "--json", str(out / "r.json"), "--markdown", str(out / "r.md"),
            "--chart", str(out / "r.svg")]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert (out / "r.md").read_text() == printed
    data = json.loads((out / "r.json").read_text())
    (m,) = data["measurements"]
    assert (m["benchmark"], m["engine"], m["status"], len(m["times"])) == ("good", "cranelift", "ok", 2)
    assert data["machine"]["wasmtime"] and data["machine"]["cores"]
    ET.fromstring((out / "r.svg").read_text())
    # A failing benchmark makes the exit status 1 and is named in the output.
    argv = ["bench", str(tmp_path / "bad.wasm"), "--vs", "cranelift", "--engines", "none", "-q"]
    assert cli_main(argv) == 1
    assert "bad on cranelift: mismatch" in capsys.readouterr().out
