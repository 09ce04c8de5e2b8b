"""The compile cache (`Config(cache_dir=...)`) and compiled artifacts (`deadeye compile -o`,
`Module.serialize`/`deserialize`, `deadeye run` of an artifact): a second run of the same
module skips the pipeline; corrupt, truncated and stale entries are detected and rebuilt,
never trusted; the serialized form carries the ISA format version."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import wasmtime

import deadeye
from deadeye import cache
from deadeye.cli import main as cli_main
from deadeye.interp.isa import FORMAT_VERSION
from deadeye.interp.isa.program import CompiledCode
from deadeye.ir.errors import DecodeError
from pipeline_testlib import count_pipeline

WAT = """
(module
  (memory (export "mem") 1)
  (func $sq (param i64) (result i64) (i64.mul (local.get 0) (local.get 0)))
  (func (export "sumsq") (param i32) (result i64) (local i64)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get 0)))
      (local.set 1 (i64.add (local.get 1) (call $sq (i64.extend_i32_u (local.get 0)))))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br $l)))
    (local.get 1))
  (func (export "big") (result i64) (i64.const 0x123456789abcdef0))
  (func (export "boom") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0))))
"""
NFUNCS = 4


def _sumsq(n: int) -> int:
    return sum(i * i for i in range(1, n + 1))


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return wasmtime.wat2wasm(WAT)


def _run(wasm: bytes, cache_dir: Path, **config) -> int:
    engine = deadeye.Engine(deadeye.Config(cache_dir=str(cache_dir), **config))
    store = deadeye.Store(engine)
    if config.get("consume_fuel"):
        store.set_fuel(10**6)
    exports = deadeye.Instance(store, deadeye.Module(engine, wasm), []).exports(store)
    assert exports["big"](store) == 0x123456789ABCDEF0
    with pytest.raises(deadeye.Trap, match="divide by zero"):
        exports["boom"](store, 0)
    return exports["sumsq"](store, 20)


def _entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "code").glob(f"*{cache.SUFFIX}"))


@pytest.mark.parametrize("engine_name", ["interp", "native"])
def test_second_run_skips_the_pipeline(engine_name, wasm, tmp_path, monkeypatch):
    lifted, lowered = count_pipeline(monkeypatch)
    assert _run(wasm, tmp_path, engine=engine_name) == _sumsq(20)
    assert sorted(lowered) == list(range(NFUNCS))  # a miss compiles the whole module
    assert len(_entries(tmp_path)) == 1
    lifted.clear(), lowered.clear()
    assert _run(wasm, tmp_path, engine=engine_name) == _sumsq(20)
    assert lifted == lowered == []


def test_entries_are_per_mode(wasm, tmp_path, monkeypatch):
    _, lowered = count_pipeline(monkeypatch)
    for level in (0, 2):
        _run(wasm, tmp_path, opt_level=level)
    _run(wasm, tmp_path, opt_level=2, nan_canonicalization=True)
    _run(wasm, tmp_path, opt_level=2, consume_fuel=True)  # strict fuel: other code
    assert len(lowered) == 4 * NFUNCS and len(_entries(tmp_path)) == 4
    lowered.clear()
    _run(wasm, tmp_path, opt_level=2, nan_canonicalization=True)
    assert lowered == []


def _damage(path: Path, how: str) -> None:
    blob = bytearray(path.read_bytes())
    if how == "corrupt":
        blob[-5] ^= 0x40  # inside the bytecode
    elif how == "truncated":
        del blob[len(blob) // 2:]
    elif how == "isa-version":
        struct.pack_into("<H", blob, 10, FORMAT_VERSION + 1)
    elif how == "container-version":
        struct.pack_into("<H", blob, 8, 99)
    elif how == "magic":
        blob[:8] = b"NOTDEYE!"
    elif how == "empty":
        blob = bytearray()
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("how", ["corrupt", "truncated", "isa-version", "container-version",
                                 "magic", "empty"])
def test_damaged_entry_is_rebuilt(how, wasm, tmp_path, monkeypatch):
    _run(wasm, tmp_path)
    (entry,) = _entries(tmp_path)
    _damage(entry, how)
    with pytest.raises(DecodeError):
        cache.load(entry.read_bytes(), wasm)
    _, lowered = count_pipeline(monkeypatch)
    assert _run(wasm, tmp_path) == _sumsq(20)
    assert sorted(lowered) == list(range(NFUNCS))  # not trusted: compiled again
    cache.load(entry.read_bytes(), wasm)  # ... and rewritten whole
    lowered.clear()
    assert _run(wasm, tmp_path) == _sumsq(20) and lowered == []


@pytest.mark.parametrize("change", ["compiler", "version"])
def test_stale_entry_is_rebuilt(change, wasm, tmp_path, monkeypatch):
    _run(wasm, tmp_path)
    (entry,) = _entries(tmp_path)
    before = entry.read_bytes()
    if change == "compiler":  # a compiler source changed without a version bump
        monkeypatch.setattr(cache, "compiler_fingerprint", lambda: "0" * 64)
    else:
        monkeypatch.setattr(deadeye, "__version__", "999.0")
    with pytest.raises(DecodeError, match="stale"):
        cache.load(before, wasm)
    _, lowered = count_pipeline(monkeypatch)
    assert _run(wasm, tmp_path) == _sumsq(20)
    assert sorted(lowered) == list(range(NFUNCS))
    assert entry.read_bytes() != before


def test_entry_of_another_module_is_not_used(wasm, tmp_path, monkeypatch):
    """An entry renamed to another module's name fails the key check."""
    other = wasmtime.wat2wasm(WAT.replace("0x123456789abcdef0", "0x1111"))
    _run(wasm, tmp_path)
    (entry,) = _entries(tmp_path)
    target = cache.CodeCache(tmp_path / "code").path(other, cache.Mode(2, False, False))
    entry.rename(target)
    engine = deadeye.Engine(deadeye.Config(cache_dir=str(tmp_path)))
    store = deadeye.Store(engine)
    exports = deadeye.Instance(store, deadeye.Module(engine, other), []).exports(store)
    assert exports["big"](store) == 0x1111


def test_lazily_invalid_function_stays_lazy(tmp_path, monkeypatch):
    """A miss compiles everything; an invalid body (lazy validation) stores nothing and
    fails only when called."""
    good = wasmtime.wat2wasm('(module (func (export "ok") (result i32) (i32.const 7))'
                             ' (func (export "bad") (result i32) (i32.const 1)))')
    # Make "bad"'s body invalid: i32.const 1 -> i64.const 1 (type mismatch).
    at = good.rindex(b"\x41\x01\x0b")
    bad = good[:at] + b"\x42" + good[at + 1:]
    engine = deadeye.Engine(deadeye.Config(cache_dir=str(tmp_path), lazy=True))
    store = deadeye.Store(engine)
    exports = deadeye.Instance(store, deadeye.Module(engine, bad), []).exports(store)
    assert exports["ok"](store) == 7
    with pytest.raises(deadeye.ValidationError):
        exports["bad"](store)
    assert _entries(tmp_path) == []


def test_unwritable_cache_only_costs_a_compile(wasm, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert _run(wasm, blocker) == _sumsq(20)


def test_compiled_code_unpack_checks_structure():
    code = CompiledCode(2)
    code.add_function(1, b"\x00" * 10, 3, [(2, 40), (5, 44)])
    again = CompiledCode.unpack(code.pack())
    assert (list(again.entry), list(again.end), list(again.frame_size)) == \
        (list(code.entry), list(code.end), list(code.frame_size))
    assert again.wasm_offset(6) == 44 and again.code == code.code
    blob = bytearray(code.pack())
    struct.pack_into("<I", blob, 16 + 4, 99)  # function 1's end past the code
    with pytest.raises(DecodeError, match="outside"):
        CompiledCode.unpack(bytes(blob))
    for cut in (0, 3, 20, len(blob) - 1):
        with pytest.raises(DecodeError):
            CompiledCode.unpack(code.pack()[:cut])


# -- artifacts: Module.serialize / deserialize, deadeye compile -o / run ----------------


def test_serialize_roundtrip_skips_the_pipeline(wasm, monkeypatch):
    engine = deadeye.Engine(deadeye.Config(opt_level=1))
    blob = deadeye.Module(engine, wasm).serialize()
    assert blob[:8] == cache.MAGIC and struct.unpack_from("<H", blob, 10)[0] == FORMAT_VERSION
    lifted, lowered = count_pipeline(monkeypatch)
    module = deadeye.Module.deserialize(engine, blob)
    store = deadeye.Store(engine)
    exports = deadeye.Instance(store, module, []).exports(store)
    assert exports["sumsq"](store, 30) == _sumsq(30)
    assert lifted == lowered == []
    with pytest.raises(deadeye.WasmError, match="compiled with -O1"):
        deadeye.Module.deserialize(deadeye.Engine(deadeye.Config(opt_level=2)), blob)
    with pytest.raises(DecodeError, match="corrupt"):
        deadeye.Module.deserialize(engine, blob[:-1] + bytes([blob[-1] ^ 1]))


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compile_output_runs_without_compiling(wasm, tmp_path, capsys, monkeypatch):
    src = tmp_path / "m.wasm"
    src.write_bytes(wasm)
    art = tmp_path / "m.dcode"
    code, out, _ = _cli(capsys, "compile", src, "-O2", "-o", art)
    assert code == 0 and f"wrote {art}" in out and "ISA format" in out
    blob = art.read_bytes()
    assert struct.unpack_from("<H", blob, 10)[0] == FORMAT_VERSION
    lifted, lowered = count_pipeline(monkeypatch)
    code, out, err = _cli(capsys, "run", "--invoke", "sumsq", art, "12")
    assert (code, out.split()) == (0, [str(_sumsq(12))]), err
    assert lifted == lowered == []
    # settings that disagree with the compiled code are refused, with one line
    code, _, err = _cli(capsys, "run", "-O0", "--invoke", "sumsq", art, "3")
    assert code == 1 and "compiled with -O2" in err and "Traceback" not in err
    code, _, err = _cli(capsys, "run", "--fuel", "1000", "--invoke", "sumsq", art, "3")
    assert code == 1 and "--fuel" in err
    # code compiled for fuel runs with fuel
    _cli(capsys, "compile", src, "-O2", "--fuel", "-o", art)
    code, out, _ = _cli(capsys, "run", "--fuel", "100000", "--invoke", "sumsq", art, "5")
    assert (code, out.split()) == (0, [str(_sumsq(5))])


@pytest.mark.parametrize("how", ["corrupt", "truncated", "isa-version", "magic"])
def test_damaged_artifact_is_an_error(how, wasm, tmp_path, capsys):
    src = tmp_path / "m.wasm"
    src.write_bytes(wasm)
    art = tmp_path / "m.dcode"
    _cli(capsys, "compile", src, "-o", art)
    _damage(art, how)
    code, out, err = _cli(capsys, "run", "--invoke", "sumsq", art, "3")
    assert code == 1 and out == "" and err.startswith("error: DecodeError") and \
        "Traceback" not in err
