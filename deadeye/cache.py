"""Compiled-code artifacts: the compile cache (`Config(cache_dir=...)`) and the files of
`deadeye compile -o FILE` (run with `deadeye run FILE`, or `Module.deserialize_file`).

Both hold one module's `CompiledCode` for one *mode* (opt level, NaN canonicalization,
strict fuel: what changes the bytecode) in the same container. An artifact of
`deadeye compile -o` also carries the module's binary; a cache entry does not (its key
names the binary by hash).

Container (integers little-endian):

    offset size
         0    8  magic b"DEYEcode"
         8    2  CONTAINER_VERSION (this layout)
        10    2  the ISA's FORMAT_VERSION (interp.isa): bytecode of another ISA never loads
        12   32  key: sha256 over the module's sha256, the mode, deadeye's version, the ISA
                 format version and layout hash, and the compiler fingerprint (a hash of
                 the frontend, IR, optimizer, rules and lowering sources)
        44   32  sha256 of everything after the header (module binary and payload)
        76    8  payload length
        84    1  opt level (0..2)
        85    1  NaN canonicalization (0/1)
        86    1  strict fuel (0/1)
        87    1  reserved (0)
        88    4  module binary length W (0 in cache entries)
        92    W  the module binary
    92 + W  ...  payload: `CompiledCode.pack()` (documented in interp/isa/program.py)

Loading checks, in order: magic, container and ISA versions, lengths (a truncated file),
the checksum (a corrupted one), the key against the one this build computes for the
module and mode (a stale one: another deadeye build, another module), and the payload's
structure. A cache entry that fails any check is rebuilt and rewritten, never used; an
artifact that fails raises DecodeError. Cache files are published atomically
(write to a temporary file, then rename), so concurrent processes never read half a file.

A cache miss compiles every function of the module at once and stores them (a hit then
skips lifting, optimizing and lowering entirely); if some function fails to compile
(lazily validated, invalid), nothing is stored and compilation stays lazy."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import struct
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from deadeye.interp.isa import FORMAT_VERSION, layout_hash
from deadeye.interp.isa.program import CompiledCode
from deadeye.ir.errors import DecodeError

__all__ = ["MAGIC", "CONTAINER_VERSION", "SUFFIX", "Mode", "Artifact", "cache_key", "dump",
           "load", "CodeCache", "is_artifact", "compiler_fingerprint", "module_hash",
           "describe", "run_compile"]

MAGIC = b"DEYEcode"
CONTAINER_VERSION = 1
_HEAD = struct.Struct("<8sHH32s32sQBBBBI")
SUFFIX = ".dcode"

# The packages whose sources decide the bytecode a module compiles to.
_COMPILER_PACKAGES = ("deadeye.frontend", "deadeye.ir", "deadeye.opt", "deadeye.lower",
                      "deadeye.rules", "deadeye.interp.isa")


class Mode(NamedTuple):
    """What changes the compiled code (the pipeline's key)."""

    opt_level: int
    nan_canonicalization: bool
    strict_fuel: bool


class Artifact(NamedTuple):
    mode: Mode
    key: bytes
    wasm: bytes
    code: CompiledCode


@lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """sha256 over the compiler's source files (so a cache never outlives a code change
    that did not bump a version)."""
    h = hashlib.sha256()
    for pkg in _COMPILER_PACKAGES:
        spec = importlib.util.find_spec(pkg)
        for root in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(root).rglob("*")):
                if path.suffix in (".py", ".isle", ".lark") and "__pycache__" not in path.parts:
                    h.update(f"{pkg}/{path.relative_to(root).as_posix()}\0".encode())
                    h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(module_sha256: bytes, mode: Mode) -> bytes:
    from deadeye import __version__

    parts = [module_sha256.hex(), repr(tuple(mode)), __version__, str(FORMAT_VERSION),
             layout_hash(), compiler_fingerprint()]
    return hashlib.sha256("\0".join(parts).encode()).digest()


def module_hash(wasm: bytes) -> bytes:
    return hashlib.sha256(wasm).digest()


def dump(code: CompiledCode, mode: Mode, wasm: bytes, *, embed: bool) -> bytes:
    """The container of `code` (compiled from `wasm` in `mode`); `embed` stores `wasm`."""
    payload = code.pack()
    key = cache_key(module_hash(wasm), mode)
    carried = wasm if embed else b""
    head = _HEAD.pack(MAGIC, CONTAINER_VERSION, FORMAT_VERSION, key,
                      hashlib.sha256(carried + payload).digest(), len(payload), mode.opt_level,
                      int(mode.nan_canonicalization), int(mode.strict_fuel), 0, len(carried))
    return head + carried + payload


def is_artifact(data: bytes) -> bool:
    return data[:len(MAGIC)] == MAGIC


def load(blob: bytes, wasm: bytes | None = None) -> Artifact:
    """Parse and check a container (see the module docstring). `wasm`: the module the
    code must have been compiled from (a cache entry); None: the embedded one."""
    if len(blob) < _HEAD.size or not is_artifact(blob):
        raise DecodeError("not a deadeye compiled-code file (bad magic or truncated header)", 0)
    (_, container, isa, key, digest, size, level, nan, strict, _, wlen) = _HEAD.unpack_from(blob)
    if container != CONTAINER_VERSION:
        raise DecodeError(f"compiled-code container version {container}, this build reads "
                          f"{CONTAINER_VERSION}", 8)
    if isa != FORMAT_VERSION:
        raise DecodeError(f"bytecode of ISA format version {isa}, this build runs "
                          f"{FORMAT_VERSION}; recompile", 10)
    if len(blob) != _HEAD.size + wlen + size:
        raise DecodeError("compiled-code file is truncated or has trailing bytes", _HEAD.size)
    payload = blob[_HEAD.size + wlen:]
    if hashlib.sha256(blob[_HEAD.size:]).digest() != digest:
        raise DecodeError("compiled-code file is corrupt (checksum mismatch)", 44)
    if level > 2 or nan > 1 or strict > 1:
        raise DecodeError("compiled-code file has an invalid mode", 84)
    mode = Mode(level, bool(nan), bool(strict))
    if wasm is None:
        wasm = blob[_HEAD.size:_HEAD.size + wlen]
    if cache_key(module_hash(wasm), mode) != key:
        raise DecodeError("compiled code is stale (another deadeye build or another module); "
                          "recompile", 12)
    return Artifact(mode, key, wasm, CompiledCode.unpack(payload))


class CodeCache:
    """A directory of cache entries, one file per (module, mode)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    def path(self, wasm: bytes, mode: Mode) -> Path:
        tag = f"O{mode.opt_level}{'n' if mode.nan_canonicalization else ''}" \
              f"{'s' if mode.strict_fuel else ''}"
        return self.dir / f"{module_hash(wasm).hex()[:40]}-{tag}{SUFFIX}"

    def get(self, wasm: bytes, mode: Mode) -> CompiledCode | None:
        """The cached code, or None (missing, or failing any check: to be rebuilt)."""
        try:
            blob = self.path(wasm, mode).read_bytes()
        except OSError:
            return None
        try:
            art = load(blob, wasm)
        except DecodeError:
            return None
        return art.code if art.mode == mode else None

    def put(self, wasm: bytes, mode: Mode, code: CompiledCode) -> None:
        """Store atomically; an unwritable cache only costs the next run a compile."""
        blob = dump(code, mode, wasm, embed=False)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.replace(tmp, self.path(wasm, mode))
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass


def describe(mode: Mode) -> str:
    flags = [f"-O{mode.opt_level}"]
    flags += ["--nan-canonicalization"] if mode.nan_canonicalization else []
    flags += ["--fuel"] if mode.strict_fuel else []
    return " ".join(flags)


def run_compile(args) -> int:
    """`deadeye compile FILE [-O N] [--stats] [-o OUT] [--nan-canonicalization] [--fuel]`:
    lower every function through the pipeline the engines use; `-o` writes the artifact."""
    from deadeye.cli import _read_input
    from deadeye.frontend.module import parse_module
    from deadeye.lower.compile import LowerStats
    from deadeye.pipeline import pipeline_for

    data = _read_input(args.file)
    module = parse_module(data, validate="eager")
    mode = Mode(args.opt_level, bool(getattr(args, "nan_canonicalization", False)),
                bool(getattr(args, "fuel", False)) and bool(args.opt_level))
    stats = LowerStats()
    code = pipeline_for(module).compile_all(mode, stats)
    print(f"compiled {stats.functions} function(s): {len(code.code)} bytes of bytecode, "
          f"{len(code.pool)} pool constant(s)")
    if args.stats:
        print(stats.report())
    if getattr(args, "output", None):
        blob = dump(code, mode, data, embed=True)
        with open(args.output, "wb") as f:
            f.write(blob)
        print(f"wrote {args.output}: {len(blob)} bytes ({describe(mode)}, ISA format "
              f"{FORMAT_VERSION})")
    return 0
