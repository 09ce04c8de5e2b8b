"""`deadeye verify-nan`: check that NaN canonicalization makes a module deterministic.

Every export whose parameters and results are numbers (i32 i64 f32 f64 v128) is called on
generated inputs — edge values: NaNs with payloads (quiet and signalling, both signs),
the canonical NaNs, infinities, ±0, ±1, subnormals, extreme integers — on every available
deadeye engine (the wasmtime oracle is not one of them) at each requested opt level, with
`Config(nan_canonicalization=True)`. Findings:

  * "non-canonical": an f32/f64 result that is a NaN other than the canonical one
    (v128 and integer results cannot be judged alone: their lane shape is unknown);
  * "divergence": two engine configurations disagree on a call's outcome (results or
    trap message), on the memories' contents (compared by hash, so NaNs stored to memory
    are covered) or on the globals after the call.

Each configuration gets one instance; exports are called in the same order everywhere, so
state carried between calls is compared too.

    report = verify_nan(wasm_bytes, engines=None, samples=24)
    report.ok, report.findings, print(report.format())"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from deadeye.ir import numerics
from deadeye.ir.errors import Trap, WasmError
from deadeye.ir.types import ValType

__all__ = ["verify_nan", "NanReport", "Finding", "edge_values", "snapshot", "main",
           "add_arguments"]

NUMERIC = (ValType.I32, ValType.I64, ValType.F32, ValType.F64, ValType.V128)
ORACLES = ("wasmtime",)  # engines that are references, not deadeye executors


def _f32_edges() -> list[int]:
    return [0x7FA00001,  # signalling NaN with a payload
            0xFFC00123,  # negative quiet NaN with a payload
            0x7FC00000, 0xFFC00000,  # the canonical NaNs
            0x7F800001, 0xFFFFFFFF,
            0x7F800000, 0xFF800000,  # infinities
            0x00000000, 0x80000000,  # zeros
            0x3F800000, 0xBF800000,  # ±1
            0x00000001, 0x7F7FFFFF]  # subnormal, largest finite


def _f64_edges() -> list[int]:
    return [0x7FF4000000000001, 0xFFF8000000000123,
            0x7FF8000000000000, 0xFFF8000000000000,
            0x7FF0000000000001, 0xFFFFFFFFFFFFFFFF,
            0x7FF0000000000000, 0xFFF0000000000000,
            0x0000000000000000, 0x8000000000000000,
            0x3FF0000000000000, 0xBFF0000000000000,
            0x0000000000000001, 0x7FEFFFFFFFFFFFFF]


def _splat(bits: int, width: int) -> int:
    return sum(bits << (width * i) for i in range(128 // width))


def edge_values(t: ValType) -> list[int]:
    """The inputs tried for a parameter of type `t` (bit patterns), most telling first."""
    if t == ValType.F32:
        return _f32_edges()
    if t == ValType.F64:
        return _f64_edges()
    if t == ValType.I32:
        return [0, 1, 8, 0xFFFFFFFF, 0x80000000, 0x7FC00001]
    if t == ValType.I64:
        return [0, 1, 0xFFFFFFFFFFFFFFFF, 1 << 63, 0x7FF8000000000001]
    if t == ValType.V128:
        f32, f64 = _f32_edges(), _f64_edges()
        mixed32 = f32[0] | (f32[6] << 32) | (f32[1] << 64) | (f32[10] << 96)
        mixed64 = f64[0] | (f64[10] << 64)
        return [mixed32, mixed64, _splat(f32[0], 32), _splat(f64[1], 64), _splat(f32[10], 32),
                _splat(f64[6], 64), 0, (1 << 128) - 1]
    raise WasmError(f"no inputs for type {t}")


def _inputs(params: Sequence[ValType], samples: int, rng: random.Random) -> list[tuple]:
    """Up to `samples` argument tuples: the diagonal (i-th edge of every parameter) first,
    then a seeded sample of the remaining combinations."""
    lists = [edge_values(t) for t in params]
    if not lists:
        return [()]
    diag = [tuple(lst[i % len(lst)] for lst in lists) for i in range(max(map(len, lists)))]
    out = list(dict.fromkeys(diag))[:samples]
    total = 1
    for lst in lists:
        total *= len(lst)
    if len(out) >= samples:
        return out
    seen = set(out)
    if total <= 4096:
        rest = [c for c in itertools.product(*lists) if c not in seen]
        rng.shuffle(rest)
        return out + rest[:samples - len(out)]
    for _ in range(samples * 4):
        if len(out) >= samples:
            break
        c = tuple(rng.choice(lst) for lst in lists)
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def snapshot(inst: Any) -> tuple:
    """The observable state of a runtime instance: a hash per memory and the globals'
    values (references by kind and function index)."""
    mems = tuple(hashlib.blake2b(bytes(m.data), digest_size=16).hexdigest()
                 for m in inst.memories)
    gl = []
    for g in inst.globals:
        v = g.value
        if v is None or isinstance(v, int):
            gl.append(v)
        else:
            gl.append((type(v).__name__, getattr(v, "index", None)))
    return mems, tuple(gl)


def _non_canonical(t: ValType, v: Any) -> bool:
    if t == ValType.F32:
        return (v & 0x7F800000) == 0x7F800000 and v & 0x7FFFFF and v != numerics.CANONICAL_NAN_F32
    if t == ValType.F64:
        return ((v >> 52) & 0x7FF) == 0x7FF and v & ((1 << 52) - 1) and v != numerics.CANONICAL_NAN_F64
    return False


@dataclass
class Finding:
    kind: str  # "non-canonical" | "divergence"
    export: str
    args: tuple
    config: str  # the configuration concerned ("a vs b" for divergences)
    detail: str

    def format(self) -> str:
        args = ", ".join(hex(a) if isinstance(a, int) else repr(a) for a in self.args)
        return f"{self.kind}: {self.export}({args}) on {self.config}: {self.detail}"


@dataclass
class NanReport:
    configs: list[str]
    exports: list[str]
    calls: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def format(self) -> str:
        lines = [f.format() for f in self.findings]
        lines.append(f"{len(self.exports)} export(s), {self.calls} call(s) on "
                     f"{', '.join(self.configs)}: "
                     + ("ok" if self.ok else f"{len(self.findings)} finding(s)"))
        return "\n".join(lines)


def _outcome_text(o: tuple) -> str:
    if o[0] == "trap":
        return f"trap {o[1]!r}"
    return "[" + ", ".join(hex(v) if isinstance(v, int) else repr(v) for v in o[1]) + "]"


def verify_nan(wasm: bytes, engines: Sequence[str] | None = None, samples: int = 24,
               opt_levels: Sequence[int] = (0, 2), seed: int = 0,
               fuel: int = 1_000_000, max_findings: int = 50,
               nan_canonicalization: bool = True) -> NanReport:
    """Run the module's numeric exports on edge inputs on every engine (default: every
    available deadeye engine) at every opt level in `opt_levels`, with NaN
    canonicalization on; report non-canonical NaN results and divergences. `fuel` bounds
    each call (running out is an outcome like any trap). `nan_canonicalization=False`
    shows what the module does without the mode (findings then are expected)."""
    import deadeye

    names = [e for e in (engines or deadeye.builtin_engines()) if e not in ORACLES]
    if not names:
        raise WasmError("no deadeye engine to verify with")
    unknown = [e for e in names if e not in deadeye.available_engines()]
    if unknown:
        raise WasmError(f"engine(s) not available: {', '.join(unknown)} "
                        f"(available: {', '.join(deadeye.available_engines())})")
    runs = []  # (label, store, rt instance)
    for name in names:
        for level in opt_levels:
            cfg = deadeye.Config(engine=name, opt_level=level,
                                 nan_canonicalization=nan_canonicalization,
                                 consume_fuel=True)
            engine = deadeye.Engine(cfg)
            module = deadeye.Module(engine, wasm)
            if module.imports:
                raise WasmError("verify-nan needs a module without imports")
            store = deadeye.Store(engine)
            inst = deadeye.Instance(store, module, [])
            runs.append((f"{name}:O{level}", store, inst._rt))
    rt0 = runs[0][2]
    exports = [(n, f) for n, f in rt0.export_list
               if hasattr(f, "defined_index")
               and all(t in NUMERIC for t in (*f.type.params, *f.type.results))]
    report = NanReport([label for label, _, _ in runs], [n for n, _ in exports])
    rng = random.Random(seed)
    for ename, func in exports:
        ty = func.type
        for args in _inputs(ty.params, samples, rng):
            report.calls += 1
            seen = []
            for label, store, inst in runs:
                f = dict(inst.export_list)[ename]
                store.set_fuel(fuel)
                try:
                    outcome = ("ok", tuple(store._rt.call(f, list(args))))
                except Trap as t:
                    outcome = ("trap", t.message)
                if outcome[0] == "ok":
                    for t, v in zip(ty.results, outcome[1]):
                        if _non_canonical(t, v):
                            report.findings.append(Finding(
                                "non-canonical", ename, args, label,
                                f"{t} result {v:#x} is a non-canonical NaN"))
                seen.append((label, outcome, snapshot(inst)))
            first_label, first_out, first_state = seen[0]
            for label, out, state in seen[1:]:
                what = []
                if out != first_out:
                    what.append(f"outcome {_outcome_text(first_out)} vs {_outcome_text(out)}")
                if state[0] != first_state[0]:
                    what.append("memory contents differ")
                if state[1] != first_state[1]:
                    what.append(f"globals {first_state[1]} vs {state[1]}")
                if what:
                    report.findings.append(Finding("divergence", ename, args,
                                                   f"{first_label} vs {label}", "; ".join(what)))
            if len(report.findings) >= max_findings:
                return report
    return report


# -- command line -------------------------------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("file", metavar="FILE.wasm")
    p.add_argument("--engines", nargs="+", default=None, metavar="ENGINE",
                   help="engines to compare (default: every available deadeye engine)")
    p.add_argument("--samples", type=int, default=24, metavar="N",
                   help="input tuples per export (default 24)")
    p.add_argument("-O", dest="opt_levels", type=int, action="append", choices=(0, 1, 2),
                   help="opt level(s) to run (repeatable; default 0 and 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fuel", type=int, default=1_000_000, metavar="N",
                   help="fuel per call (default 1000000; running out counts as a trap)")


def main(args) -> int:
    from deadeye.cli import _read_input

    if args.samples < 1:
        raise WasmError("--samples must be at least 1")
    report = verify_nan(_read_input(args.file), engines=args.engines, samples=args.samples,
                        opt_levels=tuple(args.opt_levels or (0, 2)), seed=args.seed,
                        fuel=args.fuel)
    print(report.format())
    return 0 if report.ok else 1
