"""Assemble the WASI test programs of tests/wasi/ and run them under deadeye or wasmtime
(the differential oracle), with the same argv, environment, stdin and preopened
directory.

A program file holds module fields; `assemble` wraps it as
    (module <an import of every preview-1 function> <prelude.wat> <program> <strings>)
where each `(str "text")` of the program becomes `(i32.const ADDR) (i32.const LEN)` of a
data segment. The imports come from deadeye.wasi.SIGNATURES, so they double as a check
that our signatures match wasmtime's (a mismatch fails to link there)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import wasmtime

import deadeye
from deadeye import wasi

HERE = Path(__file__).parent / "wasi"
STRINGS_AT = 32768
_STR = re.compile(r'\(str "((?:[^"\\]|\\.)*)"\)')
_TYPES = {"i": "i32", "I": "i64"}


def _literal_len(body: str) -> int:
    """Byte length of a WAT string literal's body (escapes: \\n \\t \\\\ \\" \\' \\hh)."""
    n, i = 0, 0
    while i < len(body):
        if body[i] == "\\":
            i += 3 if body[i + 1] in "0123456789abcdefABCDEF" else 2
            n += 1
        else:
            n += len(body[i].encode("utf-8"))
            i += 1
    return n


def imports_text() -> str:
    out = []
    for name, (params, results) in wasi.SIGNATURES.items():
        p = " ".join(_TYPES[c] for c in params)
        r = " ".join(_TYPES[c] for c in results)
        sig = (f" (param {p})" if p else "") + (f" (result {r})" if r else "")
        out.append(f'(import "{wasi.MODULE}" "{name}" (func ${name}{sig}))')
    return "\n".join(out)


def assemble(name: str) -> bytes:
    program = (HERE / f"{name}.wat").read_text()
    addrs: dict[str, int] = {}
    data = []
    nxt = STRINGS_AT

    def repl(m: re.Match) -> str:
        nonlocal nxt
        body = m.group(1)
        if body not in addrs:
            addrs[body] = nxt
            data.append(f'(data (i32.const {nxt}) "{body}")')
            nxt += _literal_len(body)
        return f"(i32.const {addrs[body]}) (i32.const {_literal_len(body)})"

    program = _STR.sub(repl, program)
    text = "\n".join(["(module", imports_text(), (HERE / "prelude.wat").read_text(), program,
                      *data, ")"])
    return wasmtime.wat2wasm(text)


@dataclass
class Setup:
    argv: list[str]
    env: list[tuple[str, str]]
    dir: str | None = None  # preopened as "."
    stdin: str | None = None  # a file


def run_wasmtime(wasm: bytes, setup: Setup, stdout_path: str) -> int:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    cfg = wasmtime.WasiConfig()
    cfg.argv = setup.argv
    cfg.env = setup.env
    if setup.dir is not None:
        cfg.preopen_dir(setup.dir, ".")
    if setup.stdin is not None:
        cfg.stdin_file = setup.stdin
    cfg.stdout_file = stdout_path
    store.set_wasi(cfg)
    inst = linker.instantiate(store, wasmtime.Module(engine, wasm))
    try:
        inst.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


def deadeye_config(setup: Setup, stdout_path: str) -> deadeye.WasiConfig:
    cfg = deadeye.WasiConfig()
    cfg.argv = setup.argv
    cfg.env = setup.env
    if setup.dir is not None:
        cfg.preopen_dir(setup.dir, ".")
    if setup.stdin is not None:
        cfg.stdin_file = setup.stdin
    cfg.stdout_file = stdout_path
    return cfg


def run_deadeye(wasm: bytes, setup: Setup, stdout_path: str, engine: str = "ir") -> int:
    eng = deadeye.Engine(deadeye.Config(engine=engine))
    store = deadeye.Store(eng)
    linker = deadeye.Linker(eng)
    linker.define_wasi()
    store.set_wasi(deadeye_config(setup, stdout_path))
    inst = linker.instantiate(store, deadeye.Module(eng, wasm))
    try:
        inst.exports(store)["_start"](store)
    except deadeye.ExitTrap as e:
        return e.code
    finally:
        store.set_wasi(None)  # close the guest's descriptors now
    return 0


def tree(root: str, base: str | None = None) -> dict[str, bytes | None]:
    """Every entry under `root` (relative path -> file bytes, None for a directory,
    the link target for a symlink, with `base` in it shown as "BASE")."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                target = os.readlink(p)
                if base is not None:
                    target = target.replace(base, "BASE")
                out[rel] = b"-> " + os.fsencode(target)
            elif os.path.isdir(p):
                out[rel] = None
            else:
                out[rel] = Path(p).read_bytes()
    return out
