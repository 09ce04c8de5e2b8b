"""Loading compiled rules and running them.

`load_rules(paths, env)` parses, checks and compiles rule files (or takes the generated
module from the on-disk cache), binds the extern names to the host's Python functions
from `env`, and returns a `RuleSet`. Host conventions:

- an extractor of arity 0 returns a truth value (does the value match?); of arity 1 the
  single output or None; of arity n > 1 an n-tuple or None;
- a constructor is called with the term's arguments and returns the built value;
- an enum literal `Type.Variant` is the string "Variant", unless `enums` maps "Type" to
  a class, in which case it is `getattr(cls, "Variant")`;
- a guard `(if e)` passes unless e is None or False; `(if-let p e)` fails when e is None;
  a term defined by rules yields None when no rule matches.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple

from deadeye.lower.dsl.codegen import COMPILER_VERSION, Generated, generate
from deadeye.lower.dsl.errors import Diagnostic, Pos, RuleError
from deadeye.lower.dsl.overlap import check_overlaps
from deadeye.lower.dsl.parser import find_rule_files, parse_sources
from deadeye.lower.dsl.typecheck import CheckedProgram, typecheck

_CACHE_MAGIC = "# deadeye-rules-cache"


class RuleInfo(NamedTuple):
    id: int
    term: str
    file: str
    line: int
    col: int
    priority: int
    text: str

    @property
    def where(self) -> str:
        """`file:line`: the key of counters and trace reports."""
        return f"{self.file}:{self.line}"


def _passes(v: Any) -> bool:
    return v is not None and v is not False


class _OutOfBudget(Exception):
    """Internal control flow: unwinds a top-level invocation whose work budget ran out."""


class RuleSet:
    """Compiled rules bound to host functions.

    `call(term, *args)` runs a term's rules and returns the result of the rule that fired,
    or None when none matches. Instrumentation:
    - `counters` maps each rule's `file:line` to how many times it fired;
    - `trace`, if set, is called as `trace(rule_info, args, result)` after each firing;
    - `set_chaos(seed)` makes every invocation pick a random rule among all that match;
    - `budget` (units of work per top-level `call`; each term invocation, nested ones
      included, costs one) and `budget_hook(term, args) -> bool` (consulted at each
      invocation; False stops) bound the work: a top-level call that runs out returns
      None and sets `exhausted`.
    """

    def __init__(self, namespace: dict, source: str, env: dict, enums: dict | None = None,
                 from_cache: bool = False):
        self.source = source
        self.from_cache = from_cache
        self.rules = tuple(RuleInfo(i, *r) for i, r in enumerate(namespace["RULES"]))
        self._first: dict[str, Callable] = {}
        self._all: dict[str, Callable] = {}
        self._arity: dict[str, int] = {}
        for term, (first, every, arity) in namespace["TERMS"].items():
            self._first[term] = namespace[first]
            self._all[term] = namespace[every]
            self._arity[term] = arity
        missing = []
        for gname, (role, term, py_name, file, line, col) in namespace["EXTERNS"].items():
            fn = env.get(py_name)
            if not callable(fn):
                what = "is missing" if fn is None else "is not callable"
                missing.append(Diagnostic(Pos(file, line, col), f"host function {py_name} for the "
                                          f"{role} of {term} {what}"))
            namespace[gname] = fn
        enums = enums or {}
        for gname, (ty, variant) in namespace["ENUMS"].items():
            cls = enums.get(ty)
            if cls is None:
                namespace[gname] = variant
            elif not hasattr(cls, variant):
                missing.append(Diagnostic(Pos("<enums>", 1, 1), f"{cls!r} bound to enum {ty} has no "
                                          f"member {variant}"))
            else:
                namespace[gname] = getattr(cls, variant)
        if missing:
            raise RuleError(missing)
        namespace["_passes"] = _passes
        self._counts = [0] * len(self.rules)
        self.trace: Callable[[RuleInfo, tuple, Any], None] | None = None
        self.budget: int | None = None
        self.budget_hook: Callable[[str, tuple], bool] | None = None
        self.exhausted = False
        self._rng: random.Random | None = None
        self._depth = 0
        self._remaining = 0

    @property
    def terms(self) -> dict[str, int]:
        """Terms defined by rules, with their arities."""
        return dict(self._arity)

    def set_chaos(self, seed: int | None) -> None:
        """Pick among all matching rules with a RNG seeded by `seed`; None turns it off."""
        self._rng = None if seed is None else random.Random(seed)

    @property
    def counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rules:
            out[r.where] = out.get(r.where, 0) + self._counts[r.id]
        return out

    def rule_counts(self) -> list[tuple[RuleInfo, int]]:
        return [(r, self._counts[r.id]) for r in self.rules]

    def reset_counters(self) -> None:
        self._counts = [0] * len(self.rules)

    def _check_call(self, term: str, args: tuple) -> None:
        if term not in self._arity:
            raise KeyError(f"no rules define term {term!r}")
        if len(args) != self._arity[term]:
            raise TypeError(f"term {term} takes {self._arity[term]} argument(s), got {len(args)}")

    def call(self, term: str, *args):
        """Run `term`'s rules on `args`: the result of the rule that fires, or None."""
        if self._depth == 0:
            self._check_call(term, args)
            self.exhausted = False
            self._remaining = self.budget if self.budget is not None else -1
            self._depth = 1
            try:
                return self._invoke(term, args)
            except _OutOfBudget:
                self.exhausted = True
                return None
            finally:
                self._depth = 0
        self._depth += 1
        try:
            return self._invoke(term, args)
        finally:
            self._depth -= 1

    def _invoke(self, term: str, args: tuple):
        if self._remaining >= 0:
            if self._remaining == 0:
                raise _OutOfBudget
            self._remaining -= 1
        if self.budget_hook is not None and not self.budget_hook(term, args):
            raise _OutOfBudget
        if self._rng is None:
            hit = self._first[term](self, *args)
            if hit is None:
                return None
            rid, result = hit
        else:
            found = self._all[term](self, [], *args)
            if not found:
                return None
            rid, thunk = self._rng.choice(found)
            result = thunk()
        self._counts[rid] += 1
        if self.trace is not None:
            self.trace(self.rules[rid], args, result)
        return result

    def matching(self, term: str, *args) -> list[RuleInfo]:
        """Every rule of `term` whose pattern and guards match `args` (right-hand sides are
        not evaluated; nothing is counted)."""
        self._check_call(term, args)
        return sorted((self.rules[rid] for rid, _ in self._all[term](self, [], *args)),
                      key=lambda r: r.id)

    def term_source(self, term: str) -> str:
        return term_source(self.source, term)


def term_source(source: str, term: str) -> str:
    """The part of a generated module that matches `term`."""
    marker = f"# ---- term {term}: "
    start = source.find(marker)
    if start < 0:
        raise KeyError(f"no rules define term {term!r}")
    end = source.find("\n# ---- term ", start + 1)
    return source[start:] if end < 0 else source[start:end + 1]


# -- checking and compiling ------------------------------------------------------------

def read_sources(paths) -> list[tuple[str, str]]:
    """(display name, text) of every rule file under `paths` (files or directories)."""
    out = []
    for name, path in find_rule_files(paths):
        out.append((name, path.read_text(encoding="utf-8", errors="replace")))
    return out


def check_sources(sources: list[tuple[str, str]]) -> CheckedProgram:
    """Parse, type-check and overlap-check; raise RuleError listing every problem."""
    prog = parse_sources(sources)
    try:
        checked = typecheck(prog)
        check_overlaps(checked).raise_if_any()
    except RecursionError:
        raise RuleError([Diagnostic(Pos(sources[0][0], 1, 1), "patterns are nested too deeply")]) from None
    return checked


def compile_sources(sources: list[tuple[str, str]]) -> Generated:
    """Check and generate the matcher module (no cache)."""
    return generate(check_sources(sources))


def default_cache_dir() -> Path:
    """$DEADEYE_CACHE_DIR/rules, else the user's cache dir ($XDG_CACHE_HOME or
    ~/.cache)/deadeye/rules."""
    if os.environ.get("DEADEYE_CACHE_DIR"):
        return Path(os.environ["DEADEYE_CACHE_DIR"]) / "rules"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deadeye" / "rules"


@lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """COMPILER_VERSION plus a hash of the compiler's own sources, so that editing the
    compiler also invalidates cached matchers."""
    h = hashlib.sha256(COMPILER_VERSION.encode())
    here = Path(__file__).parent
    for name in ("grammar.lark", "ast.py", "parser.py", "typecheck.py", "overlap.py", "codegen.py"):
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return f"{COMPILER_VERSION}-{h.hexdigest()[:16]}"


def cache_key(sources: list[tuple[str, str]]) -> str:
    """Hash of the compiler and of every rule file's name and text, in order."""
    h = hashlib.sha256(f"deadeye-rules {compiler_fingerprint()}\0".encode())
    for name, text in sources:
        h.update(f"{len(name)}:{name}\0{len(text)}:".encode())
        h.update(text.encode("utf-8", errors="surrogatepass"))
    return h.hexdigest()[:40]


def _exec(source: str, filename: str) -> dict:
    ns: dict = {"__name__": "deadeye_rules_generated"}
    exec(compile(source, filename, "exec"), ns)
    return ns


def _read_cache(path: Path, key: str) -> str | None:
    """The cached module's source if the file is intact, else None."""
    try:
        data = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    head, _, body = data.partition("\n")
    parts = head.split(" ")
    if len(parts) != 4 or " ".join(parts[:2]) != _CACHE_MAGIC or parts[2] != key:
        return None
    if hashlib.sha256(body.encode()).hexdigest() != parts[3]:
        return None
    return body


def _write_cache(path: Path, key: str, source: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(source.encode()).hexdigest()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{_CACHE_MAGIC} {key} {digest}\n{source}")
        os.replace(tmp, path)
        _prune(path.parent)
    except OSError:
        pass  # an unwritable cache only costs the next run a recompilation


_CACHE_KEEP = 64


def _prune(cache_dir: Path) -> None:
    """Keep the most recently written entries only (each rule edit makes a new one)."""
    entries = sorted(cache_dir.glob("*.py"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[_CACHE_KEEP:]:
        try:
            if _read_cache_head(old):
                old.unlink()
        except OSError:
            pass


def _read_cache_head(path: Path) -> bool:
    """Is this one of our cache files (so pruning never deletes anything else)?"""
    with open(path, "rb") as f:
        return f.read(len(_CACHE_MAGIC)) == _CACHE_MAGIC.encode()


def load_sources(sources: list[tuple[str, str]], env: dict, *, enums: dict | None = None,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> RuleSet:
    """Compile (or fetch from the cache) and bind rules given as (name, text) pairs."""
    key = cache_key(sources)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{key}.py"
    if use_cache:
        source = _read_cache(path, key)
        if source is not None:
            try:
                ns = _exec(source, str(path))
                meta_ok = ns.get("COMPILER_VERSION") == COMPILER_VERSION
            except Exception:  # a cache file that does not run is rebuilt below
                meta_ok = False
            if meta_ok:
                try:
                    return RuleSet(ns, source, env, enums, from_cache=True)
                except (KeyError, ValueError, TypeError):
                    pass
    gen = compile_sources(sources)
    ns = _exec(gen.source, f"<rules {key[:12]}>")
    rs = RuleSet(ns, gen.source, env, enums)
    if use_cache:
        _write_cache(path, key, gen.source)
    return rs


def load_rules(paths, env: dict, *, enums: dict | None = None,
               cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> RuleSet:
    """Load the rule files under `paths` (files or directories) into a RuleSet; `env`
    maps the host function names of the `extern` declarations to callables."""
    return load_sources(read_sources(paths), env, enums=enums, cache_dir=cache_dir, use_cache=use_cache)
