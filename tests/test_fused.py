"""Fused ops end to end: the emitter fuses the chains of `FUSED_CHAINS` in real code (a
ChaCha quarter round, an indexed load, a dot product), every engine computes what wasmtime
computes, and a trap inside a fused op reports the wasm offset of the instruction that
trapped (checked against wasmtime's backtrace)."""

from __future__ import annotations

import random

import pytest
import wasmtime

import deadeye
from deadeye import Trap
from deadeye.cli import main
from deadeye.interp.isa.table import FUSED_CHAINS, OPS, expand, fused_name

WAT = """
(module
  (memory (export "mem") 1)
  (func (export "qr") (param $a i32) (param $b i32) (param $c i32) (param $d i32) (result i32)
    (local.set $a (i32.add (local.get $a) (local.get $b)))
    (local.set $d (i32.rotl (i32.xor (local.get $d) (local.get $a)) (i32.const 16)))
    (local.set $c (i32.add (local.get $c) (local.get $d)))
    (local.set $b (i32.rotl (i32.xor (local.get $b) (local.get $c)) (i32.const 12)))
    (local.set $a (i32.add (local.get $a) (local.get $b)))
    (local.set $d (i32.rotl (i32.xor (local.get $d) (local.get $a)) (i32.const 8)))
    (i32.xor (i32.xor (local.get $a) (local.get $b)) (i32.xor (local.get $c) (local.get $d))))
  (func (export "load_at") (param $base i32) (param $i i32) (result i32)
    (i32.load (i32.add (local.get $base) (local.get $i))))
  (func (export "dot") (param $x i32) (param $y i32) (param $n i32) (result i32)
    (local $s i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $s (i32.add (local.get $s)
          (i32.mul (i32.load (local.get $x)) (i32.load (local.get $y)))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $s)))
"""

ENGINES = sorted(deadeye.builtin_engines())


def _fused_ops(tmp_path, capsys) -> set[str]:
    """The fused ops in `deadeye disas` of WAT (bytecode at -O2)."""
    path = tmp_path / "m.wasm"
    path.write_bytes(deadeye.wat2wasm(WAT))
    assert main(["disas", str(path)]) == 0
    names = {line.split()[1] for line in capsys.readouterr().out.splitlines()
             if line.startswith("0x")}
    return {n for n in names if OPS[n].parts}


def test_chains_are_well_formed():
    names = {fused_name(chain) for chain in FUSED_CHAINS}
    assert len(names) == len(FUSED_CHAINS)
    for chain in FUSED_CHAINS:
        row = OPS[fused_name(chain)]
        vals = list(range(1, len(row.operands) + 1))
        parts = expand(row, vals)
        assert [p.name for p, _ in parts] == [name for name, _link in chain]
        for (prev, pv), (part, v), (_n, link) in zip(parts, parts[1:], chain[1:]):
            if link is not None:  # the linked operand names the register the part before wrote
                assert v[part.names.index(link)] == pv[prev.names.index("dst")]


def test_real_code_is_fused(tmp_path, capsys):
    fused = _fused_ops(tmp_path, capsys)
    assert "i32.add+xor+rotl_imm+add+xor+rotl_imm" in fused  # ChaCha, half a quarter round
    assert "i32.add+load_m0" in fused


@pytest.fixture(scope="module")
def oracle():
    store = wasmtime.Store(wasmtime.Engine())
    inst = wasmtime.Instance(store, wasmtime.Module(store.engine, wasmtime.wat2wasm(WAT)), [])
    return store, inst.exports(store)


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_agree_with_wasmtime(engine, oracle):
    wstore, wex = oracle
    store = deadeye.Store(deadeye.Engine(deadeye.Config(engine=engine)))
    ex = deadeye.Instance(store, deadeye.Module(store.engine, deadeye.wat2wasm(WAT)), []).exports(store)
    rng = random.Random(5)
    data = bytes(rng.randrange(256) for _ in range(4096))
    ex["mem"].write(store, data, 0)
    wex["mem"].write(wstore, data, 0)
    for _ in range(50):
        args = [rng.randrange(1 << 32) - (1 << 31) for _ in range(4)]
        assert ex["qr"](store, *args) == wex["qr"](wstore, *args)
        base, i = rng.randrange(2048), rng.randrange(2000)
        assert ex["load_at"](store, base, i) == wex["load_at"](wstore, base, i)
        x, y, n = rng.randrange(1024) * 4, rng.randrange(1024) * 4 + 2, rng.randrange(100)
        assert ex["dot"](store, x, y, n) == wex["dot"](wstore, x, y, n)


@pytest.mark.parametrize("engine", ENGINES)
def test_trap_in_a_fused_op_reports_the_trapping_instruction(engine, oracle):
    wstore, wex = oracle
    with pytest.raises(wasmtime.Trap) as want:
        wex["load_at"](wstore, 65530, 4)
    store = deadeye.Store(deadeye.Engine(deadeye.Config(engine=engine)))
    ex = deadeye.Instance(store, deadeye.Module(store.engine, deadeye.wat2wasm(WAT)), []).exports(store)
    with pytest.raises(Trap) as got:
        ex["load_at"](store, 65530, 4)
    assert got.value.message == "out of bounds memory access"
    frame = want.value.frames[0]
    assert got.value.frames[0][1:] == (frame.func_index, frame.module_offset)


def test_compile_stats_count_fused_ops(tmp_path, capsys):
    path = tmp_path / "m.wasm"
    path.write_bytes(deadeye.wat2wasm(WAT))
    assert main(["compile", "--stats", str(path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("fused ops:"))
    fused, parts = (int(w) for w in line.replace("(", " ").split() if w.isdigit())
    assert fused >= 4 and parts >= 2 * fused + 4  # qr's 6-part and 3-part ops among them
