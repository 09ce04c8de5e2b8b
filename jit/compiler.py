"""Compiling the handler module and caching its object code on disk.

The handler module depends only on the ISA table, the templates in `llvmgen.py`, the
dispatch mode and the target, so it is compiled once per machine: the object file is
cached under a key made of the ISA layout hash, a hash of the generator's source, the
deadeye and llvmlite versions, the target triple, the host CPU name and features, and the
mode. A warm start loads the object with `ExecutionEngine.add_object_file` and only
resolves symbols. `timings` records the cold compile and warm load times.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from deadeye.interp.isa.encoding import layout_hash
from deadeye.interp.isa.table import OP_LIST

from . import llvmgen

_LOCK = threading.Lock()
_INITIALIZED = False
_LOADED: dict[tuple[str, str], "Handlers"] = {}
timings: dict[str, float] = {}  # "compile:<mode>" (cold) and "load:<mode>" (warm), seconds


def _init() -> None:
    global _INITIALIZED
    if not _INITIALIZED:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        _INITIALIZED = True


def default_cache_dir() -> Path:
    env = os.environ.get("DEADEYE_CACHE_DIR")
    if env:
        return Path(env) / "jit"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deadeye" / "jit"


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("deadeye")
    except Exception:  # running from a source tree without metadata
        return "0"


def host_target() -> tuple[str, str, str]:
    """(triple, cpu, features) of this machine."""
    _init()
    return llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def target_machine(triple: str, cpu: str = "", features: str = "", opt: int = 2):
    _init()
    target = llvm.Target.from_triple(triple)
    return target.create_target_machine(cpu=cpu, features=features, opt=opt, reloc="static",
                                        codemodel="jitdefault")


# Hashed when the generator is imported, not when an object is compiled: a process that
# imported an older generator must never publish its object under a newer source's key.
_GEN_HASH = hashlib.sha256(Path(llvmgen.__file__).read_bytes()).hexdigest()


def cache_key(mode: str, triple: str, cpu: str, features: str) -> str:
    parts = [layout_hash(), _GEN_HASH, _version(), llvmlite.__version__,
             triple, cpu, features, mode]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def optimized_module(mode: str, tm, triple: str):
    """Generate, parse, verify and optimize a mode's handler module for `tm`."""
    mod = llvm.parse_assembly(str(llvmgen.generate(mode, triple)))
    mod.triple = triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=2)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def emit_assembly(mode: str, triple: str, cpu: str = "", features: str = "") -> str:
    """Assembly of a mode's handlers for any target LLVM knows (used by the tail-call
    checks for x86-64 and AArch64)."""
    tm = target_machine(triple, cpu, features)
    return tm.emit_assembly(optimized_module(mode, tm, triple))


def object_code(mode: str, cache_dir: Path | None = None) -> tuple[bytes, bool]:
    """(object file bytes for this host, loaded from the cache?)."""
    triple, cpu, features = host_target()
    cdir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cdir / f"handlers-{mode}-{cache_key(mode, triple, cpu, features)}.o"
    try:
        return path.read_bytes(), True
    except OSError:
        pass
    t0 = time.perf_counter()
    tm = target_machine(triple, cpu, features)
    obj = tm.emit_object(optimized_module(mode, tm, triple))
    timings[f"compile:{mode}"] = time.perf_counter() - t0
    try:  # atomic publish: concurrent processes never read a half-written object
        cdir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cdir, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(obj)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs the next start a compile
    return obj, False


@dataclass
class Handlers:
    """The loaded handler module of one dispatch mode."""

    mode: str
    engine: object
    run: int  # address of deadeye_run (deadeye_enter with its arguments in the context)
    handler: list[int] = field(default_factory=list)  # op index -> handler address (direct)
    cached: bool = False


def load(mode: str, cache_dir: Path | None = None) -> Handlers:
    """The handlers of `mode`, compiled or loaded once per process."""
    key = (mode, str(cache_dir or ""))
    with _LOCK:
        h = _LOADED.get(key)
        if h is not None:
            return h
        obj, cached = object_code(mode, cache_dir)
        t0 = time.perf_counter()
        triple, cpu, features = host_target()
        tm = target_machine(triple, cpu, features)
        empty = llvm.parse_assembly("")
        engine = llvm.create_mcjit_compiler(empty, tm)
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        run = engine.get_function_address("deadeye_run")
        handler = []
        if mode != "loop":
            handler = [engine.get_function_address(f"h_{op.index}") for op in OP_LIST]
        if not run or (mode != "loop" and not all(handler)):
            raise RuntimeError(f"handler object for mode {mode} is missing symbols")
        timings[f"load:{mode}"] = time.perf_counter() - t0
        h = _LOADED[key] = Handlers(mode, engine, run, handler, cached)
        return h
