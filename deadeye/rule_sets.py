"""The shipped rule sets, registered for `deadeye rules coverage|test`
(`deadeye.lower.dsl.coverage.RULE_SETS`): this module sits at the top of the layering
because running a corpus needs the frontend, the optimizer and the lowering.

- "opts": the mid-end rules (`rules/opts`), fired by `deadeye.opt.rewrite` when functions
  are optimized at -O2; property-tested with `deadeye.opt.rule_check.IRDomain`.
- "lower": the instruction-selection rules (`rules/lower`), fired when -O2 IR is lowered
  to bytecode (`deadeye.lower.isel.lowering_rules`).

The corpus: .wasm files, and every module that .wast scripts define (text modules are
converted with wasmtime's wat2wasm; modules that do not decode or validate are skipped:
they are the spec suite's negative tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from deadeye.ir.errors import WasmError
from deadeye.lower.dsl.coverage import RuleSetSpec, register_rule_set


def corpus_modules(paths, on_error: Callable[[str], None]) -> Iterator[tuple[str, object]]:
    """(label, decoded and validated Module) for every module under `paths`."""
    from deadeye.frontend.module import parse_module

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix in (".wasm", ".wast"))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(2, "No such file or directory", str(p))
    for f in files:
        items = [(str(f), f.read_bytes(), None)] if f.suffix == ".wasm" else _script_modules(f)
        for label, data, features in items:
            try:
                if features is None:
                    yield label, parse_module(data, validate="eager")
                else:
                    yield label, parse_module(data, validate="eager", features=features)
            except WasmError:
                continue  # a negative test of the suite, or not a module we take
            except RecursionError:
                on_error(f"{label}: nested too deeply")


def _script_modules(path: Path):
    import wasmtime

    from deadeye.sexpr import SList
    from deadeye.wast import ModuleForm, _read_script, parse_module_form, script_commands, \
        script_features

    features = script_features(str(path))
    text, nodes = _read_script(str(path))
    for kind, node in script_commands(nodes, text, str(path)):
        if kind != "module":
            continue
        try:
            form = node if isinstance(node, ModuleForm) else parse_module_form(node, text) \
                if isinstance(node, SList) else None
        except Exception:  # a form the script reader rejects is the wast runner's business
            continue
        if form is None:
            continue
        data = form.source
        if form.encoding == "text":
            try:
                data = bytes(wasmtime.wat2wasm(form.source))
            except Exception:  # wat2wasm rejects it: an assert_malformed-style module
                continue
        yield f"{path}:{form.line}", data, features


def _compile_corpus(paths, limit, on_error, compile_one) -> int:
    n = 0
    for label, module in corpus_modules(paths, on_error):
        if limit is not None and n >= limit:
            break
        n += 1
        for i in range(len(module.func_types)):
            try:
                compile_one(module, i)
            except WasmError as e:
                on_error(f"{label}: function {i}: {e}")
    return n


def _opts_corpus(paths, limit, on_error):
    from deadeye.frontend.lift import ModuleLifter
    from deadeye.opt import optimize
    from deadeye.opt.rewrite import ruleset

    rs, _ = ruleset()
    rs.reset_counters()
    lifters: dict[int, ModuleLifter] = {}

    def compile_one(module, i):
        lifter = lifters.get(id(module))
        if lifter is None:
            lifters.clear()
            lifter = lifters[id(module)] = ModuleLifter(module)
        optimize(lifter.function(i), 2, env=lifter.env)

    n = _compile_corpus(paths, limit, on_error, compile_one)
    return n, [rs]


def _opts_domain():
    from deadeye.opt.rewrite import rules_dir
    from deadeye.opt.rule_check import load_checked

    return load_checked([rules_dir()])


def _lower_available() -> str | None:
    try:
        from deadeye.lower.isel import lowering_rules  # noqa: F401
        from deadeye.pipeline import pipeline_for  # noqa: F401
    except ImportError as e:
        return f"the lowering is not installed ({e})"
    return None


def _lower_corpus(paths, limit, on_error):
    from deadeye.lower.isel import lowering_rules
    from deadeye.pipeline import ModulePipeline

    rs = lowering_rules()
    rs.reset_counters()

    def compile_one(module, i):
        pipe = pipelines.get(id(module))
        if pipe is None:
            pipelines.clear()
            pipe = pipelines[id(module)] = ModulePipeline(module)
        pipe.bytecode(i, 2)

    pipelines: dict[int, ModulePipeline] = {}
    n = _compile_corpus(paths, limit, on_error, compile_one)
    return n, [rs]


register_rule_set(RuleSetSpec("opts", "mid-end rewrite rules (rules/opts)", _opts_corpus,
                              _opts_domain))
def _lower_domain():
    from deadeye.lower.ruletest_domain import rules_test_domain

    return rules_test_domain()


register_rule_set(RuleSetSpec("lower", "instruction selection rules (rules/lower)",
                              _lower_corpus, _lower_domain, _lower_available))
