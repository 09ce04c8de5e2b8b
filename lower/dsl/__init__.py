"""deadeye.lower.dsl: the rule language (grammar, checks, matcher compiler).

Typical use by a driver::

    rs = load_rules([rules_dir / "opts"], env={"ext_iadd": ..., "mk_iadd": ...})
    new = rs.call("simplify", value)      # None: no rule applies

The language is described in LANGUAGE.md next to this file; see `runtime` for the
host-function conventions and the instrumentation (counters, trace, chaos mode, work
budget).
"""

from deadeye.lower.dsl.codegen import COMPILER_VERSION, Generated, generate
from deadeye.lower.dsl.errors import Diagnostic, Pos, RuleError
from deadeye.lower.dsl.overlap import check_overlaps
from deadeye.lower.dsl.parser import find_rule_files, parse_sources, parse_text
from deadeye.lower.dsl.runtime import (
    RuleInfo, RuleSet, cache_key, check_sources, compile_sources, default_cache_dir,
    load_rules, load_sources, read_sources, term_source,
)
from deadeye.lower.dsl.typecheck import CheckedProgram, Term, typecheck

__all__ = [
    "COMPILER_VERSION", "CheckedProgram", "Diagnostic", "Generated", "Pos", "RuleError",
    "RuleInfo", "RuleSet", "Term", "cache_key", "check_overlaps", "check_sources",
    "compile_sources", "default_cache_dir", "find_rule_files", "generate", "load_rules",
    "load_sources", "parse_sources", "parse_text", "read_sources", "term_source", "typecheck",
]
