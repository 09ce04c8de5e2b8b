"""The `.wast` spec-script runner (`deadeye wast`).

A script is read by `deadeye.sexpr`, its literals by `deadeye.literals`. Text modules go
through `wasmtime.wat2wasm` (the exact source slice of the module form, with non-ASCII
characters rewritten as `\\u{..}` escapes, which wat2wasm accepts where it refuses raw bidi
controls); `quote` modules pass their concatenated string bytes to wat2wasm; `binary`
modules are their concatenated string bytes. Every command is counted under one KIND:

    module register invoke get assert_return assert_trap assert_exhaustion assert_invalid
    assert_malformed assert_unlinkable assert_uninstantiable

(`assert_trap` on a module counts as `assert_uninstantiable`) and ends passed, failed or
skipped, with a reason for the last two.

Execution backend protocol
--------------------------
The runner drives execution through a backend object; `ENGINES` maps `--engine` names to
factories `factory(features) -> backend` that build one backend per script file (a script's
modules share one store). `features` is the script's `deadeye.frontend.module.Features`
(see `script_features`: scripts under `core/` get Wasm 2.0 with every proposal off, scripts
under `proposals/NAME/` that proposal only, other scripts None = the decoder's defaults).
A backend provides:

    compile(data: bytes) -> handle
        Decode and validate a binary module with those features. Raise `DecodeError`
        (malformed) or `ValidationError` (invalid). The handle is opaque to the runner.
    instantiate(handle, registered: dict[str, instance]) -> instance
        Instantiate, resolving each import `(module, name)` as the export `name` of
        `registered[module]` (a value earlier returned by `instantiate` or `spectest`).
        Raise `LinkError` when an import is missing or has the wrong type, `Trap` when
        initialisation traps (segment out of bounds, start function trap).
    invoke(instance, name: str, args: list[tuple[ValType, value]]) -> list[tuple[ValType, value]]
        Call an exported function. Values follow deadeye's conventions: ints holding bit
        patterns (i32/i64 unsigned, f32/f64 IEEE bits, v128 128-bit int), None for null
        references, `HostRef` objects for `ref.extern N` (pass them through unchanged; the
        runner compares them by identity), any non-None object for a non-null funcref.
        Raise `Trap` with the spec's wording in `Trap.message` (e.g. "integer divide by
        zero"); stack exhaustion is a Trap whose message contains "call stack exhausted".
    get(instance, name: str) -> tuple[ValType, value]
        Read an exported global.
    spectest() -> instance
        The `spectest` host module: functions print, print_i32, print_i64, print_f32,
        print_f64, print_i32_f32, print_f64_f64 (no results); globals global_i32 = 666,
        global_i64 = 666, global_f32 = 666.6, global_f64 = 666.6 (immutable); table: 10..20
        funcref; memory: 1..2 pages. The runner registers it as "spectest" in every script.
    unsupported(instance, name: str) -> str | None      (optional)
        A reason the backend cannot run this export (the runner then skips the command
        with that reason), or None.

Without a backend (`--engine` not given while `DEFAULT_ENGINE` is None), modules are still
decoded and validated through `deadeye.frontend.module.parse_module(data, validate="eager",
features=...)`; everything that needs execution is skipped with the reason "no executor".

Public entry points: `run_file`, `run_paths`, `count_commands`, `main`; `ENGINES`."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from deadeye.ir.errors import DecodeError, LinkError, Trap, ValidationError, WasmError
from deadeye.ir.types import ValType
from deadeye.literals import FLOAT_FORMATS, LANE_SHAPES, parse_float, parse_int, parse_v128_lanes
from deadeye.sexpr import Atom, SList, Str, read, syntax_error

__all__ = [
    "KINDS",
    "ENGINES",
    "DEFAULT_ENGINE",
    "NO_EXECUTOR",
    "NO_DECODER",
    "HostRef",
    "host_ref",
    "FileResult",
    "RunResult",
    "WasmtimeBackend",
    "count_commands",
    "run_file",
    "run_paths",
    "script_features",
    "main",
]

KINDS = (
    "module",
    "register",
    "invoke",
    "get",
    "assert_return",
    "assert_trap",
    "assert_exhaustion",
    "assert_invalid",
    "assert_malformed",
    "assert_unlinkable",
    "assert_uninstantiable",
)
NO_EXECUTOR = "no executor"
NO_DECODER = "no decoder"
EXHAUSTION_TEXT = "call stack exhausted"

# Heads of the fields a module may have; a script made only of these is one implicit module.
MODULE_FIELDS = frozenset(
    ["type", "import", "func", "table", "memory", "global", "export", "start", "elem", "data", "tag", "rec"]
)


# ----------------------------------------------------------------------------- host references


class HostRef:
    """The externref value a script writes `(ref.extern N)`. Interned: one object per N, so
    a backend that passes references through unchanged preserves identity."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n

    def __repr__(self) -> str:
        return f"HostRef({self.n})"


_HOST_REFS: dict[int, HostRef] = {}


def host_ref(n: int) -> HostRef:
    ref = _HOST_REFS.get(n)
    if ref is None:
        ref = _HOST_REFS[n] = HostRef(n)
    return ref


# ----------------------------------------------------------------------------- values


class ScriptError(Exception):
    """Internal: a command the runner cannot understand; reported as a failure at its line."""


_NUM_TYPES = {"i32.const": ValType.I32, "i64.const": ValType.I64, "f32.const": ValType.F32, "f64.const": ValType.F64}
_REF_TYPES = {"func": ValType.FUNCREF, "extern": ValType.EXTERNREF, "funcref": ValType.FUNCREF, "externref": ValType.EXTERNREF}


def _str_text(node: Str) -> str:
    try:
        return node.text()
    except UnicodeDecodeError:
        raise ScriptError(f"string {node.value!r} is not valid UTF-8") from None


def _atoms(node: SList, start: int) -> list[str]:
    out = []
    for item in node.items[start:]:
        if type(item) is not Atom:
            raise ScriptError(f"expected a literal in ({node.head()} ...)")
        out.append(item.text)
    return out


def _one_atom(node: SList) -> str:
    args = _atoms(node, 1)
    if len(args) != 1:
        raise ScriptError(f"({node.head()} ...) takes one literal")
    return args[0]


def _literal(fn: Callable[..., int], *args: Any) -> int:
    try:
        return fn(*args)
    except ValueError as e:
        raise ScriptError(str(e)) from None


def parse_value(node: Any) -> tuple[ValType, Any]:
    """An argument constant: `(i32.const 1)`, `(v128.const i8x16 ...)`, `(ref.null func)`,
    `(ref.extern 3)`..."""
    if type(node) is not SList:
        raise ScriptError("expected a constant like (i32.const 0)")
    head = node.head()
    vt = _NUM_TYPES.get(head)
    if vt is not None:
        bits = 32 if vt in (ValType.I32, ValType.F32) else 64
        fn = parse_int if vt in (ValType.I32, ValType.I64) else parse_float
        return vt, _literal(fn, _one_atom(node), bits)
    if head == "v128.const":
        args = _atoms(node, 1)
        if not args:
            raise ScriptError("v128.const needs a shape")
        return ValType.V128, _literal(parse_v128_lanes, args[0], args[1:])
    if head == "ref.null":
        args = _atoms(node, 1)
        if len(args) != 1 or args[0] not in _REF_TYPES:
            raise ScriptError("ref.null needs func or extern")
        return _REF_TYPES[args[0]], None
    if head == "ref.extern":
        return ValType.EXTERNREF, host_ref(_literal(parse_int, _one_atom(node), 64))
    raise ScriptError(f"unknown constant ({head} ...)")


class Expected:
    """One expected result: its type (None when any) and a predicate on the value."""

    __slots__ = ("vt", "check", "text")

    def __init__(self, vt: ValType | None, check: Callable[[Any], bool], text: str):
        self.vt = vt
        self.check = check
        self.text = text

    def matches(self, vt: ValType, value: Any) -> bool:
        if self.vt is not None and vt != self.vt:
            return False
        return self.check(value)


def _nan_check(bits: int, pattern: str) -> Callable[[int], bool]:
    """nan:canonical = exactly the canonical NaN of either sign; nan:arithmetic = any NaN with
    the quiet bit set, either sign."""
    mant, exp = FLOAT_FORMATS[bits]
    magnitude = (1 << (bits - 1)) - 1
    expmask = ((1 << exp) - 1) << mant
    quiet = 1 << (mant - 1)
    if pattern == "nan:canonical":
        canon = expmask | quiet
        return lambda v: isinstance(v, int) and (v & magnitude) == canon
    return lambda v: isinstance(v, int) and (v & expmask) == expmask and bool(v & quiet)


def _exact(bits: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v == bits


def parse_expected(node: Any) -> Expected:
    """A result pattern of assert_return: constants, `nan:canonical`/`nan:arithmetic` (also
    per v128 lane), `(ref.null t)`, `(ref.extern N)`, `(ref.extern)`, `(ref.func ...)`,
    `(either r...)`."""
    if type(node) is not SList:
        raise ScriptError("expected a result like (i32.const 0)")
    head = node.head()
    text = f"({' '.join(_atoms(node, 0))})" if all(type(i) is Atom for i in node.items) else f"({head} ...)"
    if head in ("f32.const", "f64.const"):
        lit = _one_atom(node)
        bits = 32 if head == "f32.const" else 64
        if lit in ("nan:canonical", "nan:arithmetic"):
            return Expected(_NUM_TYPES[head], _nan_check(bits, lit), text)
        return Expected(_NUM_TYPES[head], _exact(_literal(parse_float, lit, bits)), text)
    if head == "v128.const":
        args = _atoms(node, 1)
        if not args or args[0] not in LANE_SHAPES:
            raise ScriptError("v128.const needs a shape")
        kind, width = LANE_SHAPES[args[0]]
        if kind == "f" and any(a.startswith("nan:") and a[4:] in ("canonical", "arithmetic") for a in args[1:]):
            if len(args) - 1 != 128 // width:
                raise ScriptError(f"{args[0]} needs {128 // width} lanes")
            mask = (1 << width) - 1
            lane_checks = [
                _nan_check(width, a) if a in ("nan:canonical", "nan:arithmetic") else _exact(_literal(parse_float, a, width))
                for a in args[1:]
            ]

            def check(v: Any, lane_checks=lane_checks) -> bool:
                return isinstance(v, int) and all(c((v >> (i * width)) & mask) for i, c in enumerate(lane_checks))

            return Expected(ValType.V128, check, text)
        return Expected(ValType.V128, _exact(_literal(parse_v128_lanes, args[0], args[1:])), text)
    if head == "ref.extern":
        if len(node.items) == 1:
            return Expected(ValType.EXTERNREF, lambda v: v is not None, text)
        ref = host_ref(_literal(parse_int, _one_atom(node), 64))
        return Expected(ValType.EXTERNREF, lambda v: v is ref, text)
    if head == "ref.func":
        return Expected(ValType.FUNCREF, lambda v: v is not None, text)
    if head == "either":
        alts = [parse_expected(item) for item in node.items[1:]]
        if not alts:
            raise ScriptError("either needs alternatives")
        return _Either(alts, text)
    vt, value = parse_value(node)
    if value is None:
        return Expected(vt, lambda v: v is None, text)
    return Expected(vt, _exact(value), text)


class _Either(Expected):
    __slots__ = ("alts",)

    def __init__(self, alts: list[Expected], text: str):
        super().__init__(None, lambda v: False, text)
        self.alts = alts

    def matches(self, vt: ValType, value: Any) -> bool:
        return any(a.matches(vt, value) for a in self.alts)


def format_value(vt: ValType, value: Any) -> str:
    """A result as a script would spell it, for failure messages."""
    if vt in (ValType.I32, ValType.I64) and isinstance(value, int):
        bits = 32 if vt == ValType.I32 else 64
        signed = value - (1 << bits) if value >> (bits - 1) else value
        return f"({vt}.const {value:#x} ({signed}))"
    if vt in (ValType.F32, ValType.F64) and isinstance(value, int):
        return f"({vt}.const bits {value:#x})"
    if vt == ValType.V128 and isinstance(value, int):
        return f"(v128.const i32x4 {' '.join(f'{(value >> (32 * i)) & 0xFFFFFFFF:#x}' for i in range(4))})"
    if value is None:
        return f"(ref.null {'func' if vt == ValType.FUNCREF else 'extern'})"
    if isinstance(value, HostRef):
        return f"(ref.extern {value.n})"
    return f"({vt} {value!r})"


def _trap_matches(message: str, expected: str) -> bool:
    """The trap message contains the spec's text; or the spec's text is the message plus a
    detail the reference interpreter appends (e.g. "uninitialized element 2")."""
    message = message.strip()
    return expected in message or (bool(message) and expected.startswith(message + " "))


# ----------------------------------------------------------------------------- command shapes


@dataclass
class ModuleForm:
    """A module written in a script: its encoding and its source."""

    name: str | None
    encoding: str  # "text", "binary" or "quote"
    line: int
    source: str | bytes  # wat text for "text", raw bytes for "binary" and "quote"
    definition: bool = False


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape_non_ascii(text: str) -> str:
    # Inside strings `\u{..}` means the same character; elsewhere non-ASCII can only be in
    # comments, where the rewrite changes nothing.
    return _NON_ASCII.sub(lambda m: "\\u{%x}" % ord(m.group()), text)


def parse_module_form(node: SList, source: str) -> ModuleForm:
    items = node.items
    i = 1
    definition = False
    if i < len(items) and type(items[i]) is Atom and items[i].text in ("definition", "instance"):
        if items[i].text == "instance":
            raise ScriptError("(module instance ...) is handled as its own command")
        definition = True
        def_atom = items[i]
        i += 1
    name = None
    if i < len(items) and type(items[i]) is Atom and items[i].text.startswith("$"):
        name = items[i].text
        i += 1
    if i < len(items) and type(items[i]) is Atom and items[i].text in ("binary", "quote"):
        encoding = items[i].text
        parts = items[i + 1 :]
        if any(type(p) is not Str for p in parts):
            raise ScriptError(f"(module {encoding} ...) takes only strings")
        return ModuleForm(name, encoding, node.line, b"".join(p.value for p in parts), definition)
    if definition:
        text = source[node.start : def_atom.start] + source[def_atom.end : node.end]
    else:
        text = source[node.start : node.end]
    return ModuleForm(name, "text", node.line, _escape_non_ascii(text), definition)


def command_kind(node: Any) -> str:
    """The KIND a top-level script node counts as."""
    if type(node) is not SList:
        raise ScriptError("expected a command in parentheses")
    head = node.head()
    if head == "assert_trap" and len(node.items) > 1 and type(node.items[1]) is SList and node.items[1].head() == "module":
        return "assert_uninstantiable"
    if head in KINDS:
        return head
    raise ScriptError(f"unknown command ({head} ...)" if head else "unknown command")


def script_commands(nodes: list, source: str, filename: str) -> list[tuple[str, Any]]:
    """(kind, node) for every command; a script of bare module fields is one module whose
    node is a ModuleForm."""
    if nodes and all(type(n) is SList and n.head() in MODULE_FIELDS for n in nodes):
        text = "(module\n" + source[nodes[0].start : nodes[-1].end] + "\n)"
        return [("module", ModuleForm(None, "text", nodes[0].line, _escape_non_ascii(text)))]
    out = []
    for n in nodes:
        try:
            out.append((command_kind(n), n))
        except ScriptError as e:
            raise syntax_error(filename, getattr(n, "line", 0), str(e)) from None
    return out


def _read_script(path: str) -> tuple[str, list]:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise syntax_error(path, line, "the script is not valid UTF-8") from None
    return text, read(text, path)


def count_commands(path: str) -> dict[str, int]:
    """How many commands of each KIND the script holds (reader only, nothing runs)."""
    text, nodes = _read_script(path)
    counts = dict.fromkeys(KINDS, 0)
    for kind, _ in script_commands(nodes, text, path):
        counts[kind] += 1
    return counts


# ----------------------------------------------------------------------------- results


@dataclass
class FileResult:
    path: str
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: {"passed": 0, "failed": 0, "skipped": 0} for k in KINDS}
    )
    failures: list[dict] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)
    error: str | None = None  # the script itself could not be read

    def record(self, kind: str, line: int, status: str, reason: str = "") -> None:
        self.counts[kind][status] += 1
        if status == "failed":
            self.failures.append({"line": line, "kind": kind, "reason": reason})
        elif status == "skipped":
            self.skips.append({"line": line, "kind": kind, "reason": reason})

    def total(self, status: str) -> int:
        n = sum(c[status] for c in self.counts.values())
        if status == "failed" and self.error is not None:
            n += 1
        return n

    def summary(self) -> str:
        return _summary(self.total("passed"), self.total("failed"), self.total("skipped"))

    def to_json(self) -> dict:
        out: dict = {k: dict(v) for k, v in self.counts.items()}
        out["failures"] = list(self.failures)
        out["skips"] = list(self.skips)
        if self.error is not None:
            out["error"] = self.error
        return out


def _summary(passed: int, failed: int, skipped: int) -> str:
    s = f"{passed} passed, {failed} failed"
    return s + (f", {skipped} skipped" if skipped else "")


@dataclass
class RunResult:
    files: list[FileResult]

    def totals(self) -> dict[str, dict[str, int]]:
        out = {k: {"passed": 0, "failed": 0, "skipped": 0} for k in KINDS}
        for f in self.files:
            for k, c in f.counts.items():
                for s, n in c.items():
                    out[k][s] += n
        return out

    def total(self, status: str) -> int:
        return sum(f.total(status) for f in self.files)

    def summary(self) -> str:
        return _summary(self.total("passed"), self.total("failed"), self.total("skipped"))

    def to_json(self) -> dict:
        return {"totals": self.totals(), "files": {f.path: f.to_json() for f in self.files}}


# ----------------------------------------------------------------------------- the runner

_WAT_REJECTED = "wat"  # outcome tags of loading a module
_MALFORMED = "malformed"
_INVALID = "invalid"
_OK = "ok"
_FAILED = "failed"  # no verdict: decoder missing or crashed


class _Runner:
    def __init__(self, path: str, display: str, backend: Any, wat_cache: dict, features: Any):
        self.path = path
        self.features = features
        self.result = FileResult(display)
        self.backend = backend
        self.wat_cache = wat_cache
        self.source = ""
        self.instances: dict[str, Any] = {}  # $name -> instance (None: its module failed)
        self.definitions: dict[str, Any] = {}  # $name -> compiled handle of a definition
        self.current: Any = None
        self.current_line = 0
        self.registered: dict[str, Any] = {}

    # -- module loading ------------------------------------------------------------------
    def wat(self, text: str | bytes) -> tuple[bytes | None, str]:
        hit = self.wat_cache.get(text)
        if hit is None:
            try:
                import wasmtime
            except ImportError:
                hit = (None, "wat2wasm needs the wasmtime package")
            else:
                try:
                    hit = (bytes(wasmtime.wat2wasm(text)), "")
                except wasmtime.WasmtimeError as e:
                    msg = str(e).strip().splitlines()
                    hit = (None, msg[0] if msg else "rejected")
            self.wat_cache[text] = hit
        return hit

    def compile(self, data: bytes) -> Any:
        if self.backend is not None:
            return self.backend.compile(data)
        from deadeye.frontend.module import parse_module  # noqa: PLC0415 - may not exist yet

        if self.features is None:
            return parse_module(data, validate="eager")
        return parse_module(data, validate="eager", features=self.features)

    def load(self, form: ModuleForm) -> tuple[str, Any]:
        """(outcome, handle or reason)."""
        if form.encoding == "binary":
            data = form.source
        else:
            data, err = self.wat(form.source)
            if data is None:
                return _WAT_REJECTED, f"wat2wasm: {err}"
        try:
            return _OK, self.compile(data)
        except ImportError:
            return _FAILED, NO_DECODER
        except DecodeError as e:
            return _MALFORMED, f"malformed: {e}"
        except ValidationError as e:
            return _INVALID, f"invalid: {e}"
        except WasmError as e:
            return _FAILED, f"{type(e).__name__}: {e}"
        except Exception as e:  # a crash in the decoder must not stop the run
            return _FAILED, f"internal error: {type(e).__name__}: {e}"

    def instantiate(self, handle: Any) -> Any:
        return self.backend.instantiate(handle, self.registered)

    # -- actions ---------------------------------------------------------------------------
    def target(self, name: str | None) -> Any:
        if name is None:
            if self.current is None:
                raise ScriptError(f"no module instance (the module at line {self.current_line} failed)"
                                  if self.current_line else "no module defined")
            return self.current
        if name not in self.instances:
            raise ScriptError(f"unknown module {name}")
        inst = self.instances[name]
        if inst is None:
            raise ScriptError(f"module {name} failed to instantiate")
        return inst

    def parse_action(self, node: Any) -> tuple[str, str | None, str, list]:
        if type(node) is not SList or node.head() not in ("invoke", "get"):
            raise ScriptError("expected (invoke ...) or (get ...)")
        items = node.items
        i = 1
        modname = None
        if i < len(items) and type(items[i]) is Atom and items[i].text.startswith("$"):
            modname = items[i].text
            i += 1
        if i >= len(items) or type(items[i]) is not Str:
            raise ScriptError(f"({node.head()} ...) needs an export name")
        export = _str_text(items[i])
        args = [parse_value(a) for a in items[i + 1 :]]
        if node.head() == "get" and args:
            raise ScriptError("(get ...) takes no arguments")
        return node.head(), modname, export, args

    def run_action(self, action: tuple) -> list[tuple[ValType, Any]] | str:
        """Results, or a skip reason."""
        kind, modname, export, args = action
        inst = self.target(modname)
        unsupported = getattr(self.backend, "unsupported", None)
        if unsupported is not None:
            reason = unsupported(inst, export)
            if reason:
                return reason
        if kind == "get":
            return [self.backend.get(inst, export)]
        return list(self.backend.invoke(inst, export, args))

    # -- commands ----------------------------------------------------------------------------
    def run(self, source: str, nodes: list) -> None:
        self.source = source
        if self.backend is not None:
            self.registered["spectest"] = self.backend.spectest()
        for kind, node in script_commands(nodes, source, self.path):
            line = node.line
            try:
                status, reason = getattr(self, "cmd_" + kind)(node)
            except ScriptError as e:
                status, reason = "failed", str(e)
            except Trap as e:
                status, reason = "failed", f"unexpected trap: {e.message}"
            except WasmError as e:
                status, reason = "failed", f"{type(e).__name__}: {e}"
            except Exception as e:  # an engine bug: report it at its line and go on
                status, reason = "failed", f"internal error: {type(e).__name__}: {e}"
            self.result.record(kind, line, status, reason)

    def module_form(self, node: Any) -> ModuleForm:
        if isinstance(node, ModuleForm):
            return node
        if type(node) is not SList or node.head() != "module":
            raise ScriptError("expected a (module ...)")
        return parse_module_form(node, self.source)

    def cmd_module(self, node: Any) -> tuple[str, str]:
        if type(node) is SList and len(node.items) > 1 and type(node.items[1]) is Atom and node.items[1].text == "instance":
            return self.module_instance(node)
        form = self.module_form(node)
        self.current_line = form.line
        outcome, value = self.load(form)
        if not form.definition:
            self.current = None
            if form.name:
                self.instances[form.name] = None
        if outcome != _OK:
            return "failed", value if outcome in (_FAILED, _WAT_REJECTED) else f"module rejected: {value}"
        if form.definition:
            if form.name:
                self.definitions[form.name] = value
            return "passed", ""
        if self.backend is None:
            return "skipped", NO_EXECUTOR
        inst = self.instantiate(value)
        self.current = inst
        if form.name:
            self.instances[form.name] = inst
        return "passed", ""

    def module_instance(self, node: SList) -> tuple[str, str]:
        names = [i.text for i in node.items[2:] if type(i) is Atom]
        if len(names) != len(node.items) - 2 or not 1 <= len(names) <= 2:
            raise ScriptError("(module instance $i $def) expected")
        inst_name, def_name = (names + [names[0]])[:2] if len(names) == 1 else names
        if def_name not in self.definitions:
            raise ScriptError(f"unknown module definition {def_name}")
        self.current_line = node.line
        self.current = None
        self.instances[inst_name] = None
        if self.backend is None:
            return "skipped", NO_EXECUTOR
        inst = self.instantiate(self.definitions[def_name])
        self.current = self.instances[inst_name] = inst
        return "passed", ""

    def cmd_register(self, node: SList) -> tuple[str, str]:
        items = node.items
        if len(items) not in (2, 3) or type(items[1]) is not Str or (len(items) == 3 and type(items[2]) is not Atom):
            raise ScriptError('(register "name" $module?) expected')
        if self.backend is None:
            return "skipped", NO_EXECUTOR
        inst = self.target(items[2].text if len(items) == 3 else None)
        self.registered[_str_text(items[1])] = inst
        return "passed", ""

    def _bare_action(self, node: SList) -> tuple[str, str]:
        action = self.parse_action(node)
        if self.backend is None:
            return "skipped", NO_EXECUTOR
        out = self.run_action(action)
        if isinstance(out, str):
            return "skipped", out
        return "passed", ""

    cmd_invoke = _bare_action
    cmd_get = _bare_action

    def cmd_assert_return(self, node: SList) -> tuple[str, str]:
        if len(node.items) < 2:
            raise ScriptError("assert_return needs an action")
        action = self.parse_action(node.items[1])
        expected = [parse_expected(r) for r in node.items[2:]]
        if self.backend is None:
            return "skipped", NO_EXECUTOR
        got = self.run_action(action)
        if isinstance(got, str):
            return "skipped", got
        if len(got) != len(expected) or not all(e.matches(vt, v) for e, (vt, v) in zip(expected, got)):
            want = " ".join(e.text for e in expected) or "nothing"
            have = " ".join(format_value(vt, v) for vt, v in got) or "nothing"
            return "failed", f"{action[2]}: expected {want}, got {have}"
        return "passed", ""

    def _expect_trap(self, node: SList, default_text: str | None) -> tuple[str, str]:
        if len(node.items) != 3 or type(node.items[2]) is not Str:
            raise ScriptError(f'({node.head()} (invoke ...) "message") expected')
        action = self.parse_action(node.items[1])
        text = _str_text(node.items[2])
        if self.backend is None:
            return "skipped", NO_EXECUTOR
        try:
            got = self.run_action(action)
        except Trap as e:
            if _trap_matches(e.message, default_text or text):
                return "passed", ""
            return "failed", f"{action[2]}: expected trap {want!r}, got trap {e.message!r}"
        if isinstance(got, str):
            return "skipped", got
        have = " ".join(format_value(vt, v) for vt, v in got) or "nothing"
        return "failed", f"{action[2]}: expected trap {text!r}, returned {have}"

    def cmd_assert_trap(self, node: SList) -> tuple[str, str]:
        return self._expect_trap(node, None)

    def cmd_assert_exhaustion(self, node: SList) -> tuple[str, str]:
        return self._expect_trap(node, EXHAUSTION_TEXT)

    def _assert_module(self, node: SList) -> tuple[ModuleForm, str]:
        if len(node.items) != 3 or type(node.items[2]) is not Str:
            raise ScriptError(f'({node.head()} (module ...) "message") expected')
        return self.module_form(node.items[1]), _str_text(node.items[2])

    def cmd_assert_invalid(self, node: SList) -> tuple[str, str]:
        form, text = self._assert_module(node)
        outcome, value = self.load(form)
        if outcome == _INVALID:
            return "passed", ""
        if outcome == _OK:
            return "failed", f"module accepted, expected invalid ({text})"
        if outcome == _MALFORMED:
            return "failed", f"expected invalid ({text}), got {value}"
        return "failed", value

    def cmd_assert_malformed(self, node: SList) -> tuple[str, str]:
        form, text = self._assert_module(node)
        outcome, value = self.load(form)
        # Text and quote modules may be rejected by wat2wasm, by our decoder, or (for the few
        # text-level errors wat2wasm lets through) by our validator.
        if outcome == _MALFORMED or outcome == _WAT_REJECTED:
            return "passed", ""
        if outcome == _INVALID and form.encoding != "binary":
            return "passed", ""
        if outcome == _OK:
            return "failed", f"module accepted, expected malformed ({text})"
        if outcome == _INVALID:
            return "failed", f"expected malformed ({text}), got {value}"
        return "failed", value

    def _expect_instantiation_error(self, node: SList, error: type) -> tuple[str, str]:
        form, text = self._assert_module(node)
        outcome, value = self.load(form)
        if outcome != _OK:
            return "failed", value if outcome in (_FAILED, _WAT_REJECTED) else f"module rejected: {value}"
        if self.backend is None:
            return "skipped", NO_EXECUTOR
        try:
            inst = self.instantiate(value)
        except error as e:
            # Trap wording is the spec's; link error wording is the engine's own.
            if error is Trap and not _trap_matches(e.message, text):
                return "failed", f"expected trap {text!r}, got trap {e.message!r}"
            return "passed", ""
        del inst
        return "failed", f"module instantiated, expected {'trap' if error is Trap else 'link error'} ({text})"

    def cmd_assert_unlinkable(self, node: SList) -> tuple[str, str]:
        return self._expect_instantiation_error(node, LinkError)

    def cmd_assert_uninstantiable(self, node: SList) -> tuple[str, str]:
        return self._expect_instantiation_error(node, Trap)


def script_features(path: str) -> Any:
    """The proposals a spec script is written for, from where it lives: `.../core/X.wast`
    is plain Wasm 2.0 (every proposal off: e.g. a non-zero memory index byte is malformed
    there), `.../proposals/NAME/X.wast` has proposal NAME on and the others off, anything
    else gets None (the decoder's defaults)."""
    try:
        from deadeye.frontend.module import Features
    except ImportError:
        return None
    import dataclasses

    names = [f.name for f in dataclasses.fields(Features)]
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    on: str | None
    if len(parts) >= 3 and parts[-3] == "proposals":
        on = parts[-2].replace("-", "_")
        if on not in names:
            return None
    elif len(parts) >= 2 and parts[-2] == "core":
        on = None
    else:
        return None
    return Features(**{n: n == on for n in names})


def run_file(
    path: str,
    backend_factory: Callable[[Any], Any] | None = None,
    display: str | None = None,
    wat_cache: dict | None = None,
) -> FileResult:
    """Run one script. `backend_factory(features)` builds the execution backend (None:
    decode and validate only). `display` is the name used in results (default: `path`)."""
    features = script_features(path)
    runner = _Runner(path, display or path, None, {} if wat_cache is None else wat_cache, features)
    try:
        source, nodes = _read_script(path)
        if backend_factory is not None:
            runner.backend = backend_factory(features)
        runner.run(source, nodes)
    except DecodeError as e:  # the script is malformed
        runner.result.error = str(e)
        runner.result.failures.append({"line": 0, "kind": "script", "reason": str(e)})
    return runner.result


# ----------------------------------------------------------------------------- wasmtime backend


_WASMTIME_TYPE_NAMES = {"anyref": "externref"}  # wasmtime-py 50 prints externref so
_V128_MARK = object()  # key in a wasmtime instance's export dict: "its types use v128"


def _wasmtime_trap_text(message: str) -> str:
    """The trap reason out of wasmtime's report (which adds a backtrace around it)."""
    if "call stack exhausted" in message or "stack overflow" in message:
        return EXHAUSTION_TEXT
    for line in message.splitlines():
        if "wasm trap:" in line:
            return line.split("wasm trap:", 1)[1].strip()
    return message.strip()


def _leb_u32(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise IndexError(pos)
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _types_use_v128(data: bytes) -> bool:
    """Whether a (wasmtime-accepted, so well-formed) binary's type section mentions v128."""
    pos = 8
    while pos < len(data):
        sid = data[pos]
        size, body = _leb_u32(data, pos + 1)
        if sid == 1:
            count, p = _leb_u32(data, body)
            for _ in range(count):
                p += 1  # 0x60
                for _ in range(2):  # params, results
                    n, p = _leb_u32(data, p)
                    if ValType.V128 in data[p : p + n]:
                        return True
                    p += n
            return False
        pos = body + size
    return False


class WasmtimeBackend:
    """A backend on wasmtime-py: the reference used to test this runner, and a model for
    deadeye's own API backend (which mirrors wasmtime-py). Limits of wasmtime-py 50: functions
    with v128 in their type are skipped (calling them aborts the process), and f32/f64 travel
    as C floats, so signalling-NaN payloads may not survive. Modules are decoded by deadeye's
    decoder when it exists (for the malformed/invalid verdict), else by wasmtime, whose errors
    then all count as invalid."""

    def __init__(self, features: Any = None) -> None:
        import wasmtime

        self.w = wasmtime
        self.features = features
        config = wasmtime.Config()
        for name in ("tail_call", "multi_memory"):  # extended-const has no switch in wasmtime
            if features is not None:
                setattr(config, "wasm_" + name, bool(getattr(features, name)))
        self.engine = wasmtime.Engine(config)
        self.store = wasmtime.Store(self.engine)
        self._v128_modules: set[int] = set()
        # Whether deadeye's decoder gives the malformed/invalid verdict before wasmtime runs.
        self.use_deadeye_decoder = True

    # values ------------------------------------------------------------------------------
    def _to_wasmtime(self, vt: ValType, v: Any) -> Any:
        import struct

        w = self.w
        if vt == ValType.I32:
            return w.Val.i32(v - (1 << 32) if v >> 31 else v)
        if vt == ValType.I64:
            return w.Val.i64(v - (1 << 64) if v >> 63 else v)
        if vt == ValType.F32:
            return w.Val.f32(struct.unpack("<f", struct.pack("<I", v))[0])
        if vt == ValType.F64:
            return w.Val.f64(struct.unpack("<d", struct.pack("<Q", v))[0])
        if vt == ValType.EXTERNREF:
            return w.Val.externref(v)
        if vt == ValType.FUNCREF:
            return w.Val.funcref(v)
        raise LinkError(f"wasmtime backend cannot pass {vt}")

    def _from_wasmtime(self, ty: Any, v: Any) -> tuple[ValType, Any]:
        import struct

        name = str(ty)
        vt = ValType.from_name(_WASMTIME_TYPE_NAMES.get(name, name))
        if vt == ValType.I32:
            return vt, v & 0xFFFFFFFF
        if vt == ValType.I64:
            return vt, v & 0xFFFFFFFFFFFFFFFF
        if vt == ValType.F32:
            return vt, struct.unpack("<I", struct.pack("<f", v))[0]
        if vt == ValType.F64:
            return vt, struct.unpack("<Q", struct.pack("<d", v))[0]
        return vt, v

    # protocol ----------------------------------------------------------------------------
    def compile(self, data: bytes) -> Any:
        if self.use_deadeye_decoder:
            try:
                from deadeye.frontend.module import parse_module

                if self.features is None:
                    parse_module(data, validate="eager")
                else:
                    parse_module(data, validate="eager", features=self.features)
            except ImportError:
                pass  # deadeye's decoder is not there yet: wasmtime's verdict alone
        try:
            module = self.w.Module(self.engine, data)
        except self.w.WasmtimeError as e:
            raise ValidationError(str(e).strip().splitlines()[0]) from None
        if _types_use_v128(data):
            self._v128_modules.add(id(module))
        return module

    def instantiate(self, handle: Any, registered: dict) -> Any:
        w = self.w
        linker = w.Linker(self.engine)
        linker.allow_shadowing = True  # a module may import the same item twice
        for imp in handle.imports:
            provider = registered.get(imp.module)
            if provider is None or imp.name not in provider:
                raise LinkError(f"unknown import {imp.module}.{imp.name}")
            linker.define(self.store, imp.module, imp.name, provider[imp.name])
        try:
            inst = linker.instantiate(self.store, handle)
        except w.Trap as e:
            raise Trap(_wasmtime_trap_text(e.message)) from None
        except w.WasmtimeError as e:
            text = str(e)
            if "trap" in text.lower() or "out of bounds" in text:
                raise Trap(text) from None
            raise LinkError(text.strip().splitlines()[0]) from None
        exports = dict(inst.exports(self.store).items())
        exports[_V128_MARK] = id(handle) in self._v128_modules
        return exports

    def unsupported(self, instance: dict, name: str) -> str | None:
        # Even asking wasmtime-py for a v128 function's type aborts the process, so a
        # module whose type section mentions v128 is not run at all.
        if instance.get(_V128_MARK):
            return "wasmtime-py cannot pass v128"
        return None

    def invoke(self, instance: dict, name: str, args: list) -> list:
        func = instance.get(name)
        if not isinstance(func, self.w.Func):
            raise LinkError(f"no exported function {name!r}")
        ty = func.type(self.store)
        try:
            out = func(self.store, *[self._to_wasmtime(vt, v) for vt, v in args])
        except self.w.Trap as e:
            raise Trap(_wasmtime_trap_text(e.message)) from None
        results = list(ty.results)
        if not results:
            return []
        values = list(out) if len(results) > 1 else [out]
        return [self._from_wasmtime(t, v) for t, v in zip(results, values)]

    def get(self, instance: dict, name: str) -> tuple:
        g = instance.get(name)
        if not isinstance(g, self.w.Global):
            raise LinkError(f"no exported global {name!r}")
        return self._from_wasmtime(g.type(self.store).content, g.value(self.store))

    def spectest(self) -> dict:
        w = self.w
        s = self.store
        out: dict = {}
        sigs = {
            "print": [],
            "print_i32": [w.ValType.i32()],
            "print_i64": [w.ValType.i64()],
            "print_f32": [w.ValType.f32()],
            "print_f64": [w.ValType.f64()],
            "print_i32_f32": [w.ValType.i32(), w.ValType.f32()],
            "print_f64_f64": [w.ValType.f64(), w.ValType.f64()],
        }
        for name, params in sigs.items():
            out[name] = w.Func(s, w.FuncType(params, []), lambda *a: None)
        for name, ty, val in (
            ("global_i32", w.ValType.i32(), w.Val.i32(666)),
            ("global_i64", w.ValType.i64(), w.Val.i64(666)),
            ("global_f32", w.ValType.f32(), w.Val.f32(666.6)),
            ("global_f64", w.ValType.f64(), w.Val.f64(666.6)),
        ):
            out[name] = w.Global(s, w.GlobalType(ty, False), val)
        out["table"] = w.Table(s, w.TableType(w.ValType.funcref(), w.Limits(10, 20)), None)
        out["memory"] = w.Memory(s, w.MemoryType(w.Limits(1, 2)))
        return out


# Engine name -> factory(features) of a backend (one per script). The public API adds its
# engines here.
ENGINES: dict[str, Callable[[Any], Any]] = {"wasmtime": WasmtimeBackend}
DEFAULT_ENGINE: str | None = None


# ----------------------------------------------------------------------------- paths and CLI


def find_scripts(paths: list[str]) -> list[str]:
    """Files as given; folders searched recursively for *.wast, sorted."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, f) for f in files if f.endswith(".wast")]
            out += sorted(found)
        elif os.path.exists(p):
            out.append(p)
        else:
            raise FileNotFoundError(2, "No such file or directory", p)
    return out


def run_paths(
    paths: list[str],
    engine: str | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> RunResult:
    name = engine if engine is not None else DEFAULT_ENGINE
    if name is not None and name not in ENGINES:
        known = ", ".join(sorted(ENGINES)) or "none"
        raise LinkError(f"unknown engine {name!r} (known: {known})")
    factory = ENGINES[name] if name is not None else None
    files = find_scripts(paths)
    wat_cache: dict = {}  # per run: the same text met twice converts once
    results = []
    for i, path in enumerate(files):
        if progress is not None:
            progress(i, len(files), path)
        r = run_file(path, factory, wat_cache=wat_cache)
        results.append(r)
        if on_file is not None:
            on_file(r)
    return RunResult(results)


class _Progress:
    """A single updating status line on a terminal."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.width = 0

    def __call__(self, i: int, n: int, path: str) -> None:
        text = f"[{i + 1}/{n}] {path}"[:79]
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def main(args: Any) -> int:
    """`deadeye wast`: args.paths, args.json, args.engine, args.verbose."""
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    verbose = bool(getattr(args, "verbose", False))

    def on_file(r: FileResult) -> None:
        if progress is not None:
            progress.clear()
        if r.error is not None:
            print(f"{r.path}: error: {r.error}")
        print(f"{r.path}: {r.summary()}")
        if verbose:
            for f in r.failures:
                print(f"  {r.path}:{f['line']}: {f['kind']}: {f['reason']}")
        sys.stdout.flush()

    start = time.monotonic()
    result = run_paths(list(args.paths), getattr(args, "engine", None), on_file, progress)
    if progress is not None:
        progress.clear()
    if getattr(args, "json", None):
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_json(), f, indent=1)
    if verbose:
        print(f"({time.monotonic() - start:.1f}s)", file=sys.stderr)
    print(result.summary())
    return 1 if result.total("failed") else 0
