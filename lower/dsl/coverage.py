"""`deadeye rules coverage`: which rules never fire on a corpus.

The rule language serves two rule sets (mid-end rewrites `rules/opts`, instruction
selection `rules/lower`); each has its own host environment, which lives above this
package. So a rule set is described by a `RuleSetSpec` that the application registers
(`register_rule_set`; `deadeye/rule_sets.py` registers the shipped ones):

- `name` ("opts", "lower") and `description`;
- `run_corpus(paths, limit, on_error) -> (modules, [RuleSet])`: compile every module of
  the corpus (at most `limit`) through the pipeline stage that uses these rules, and
  return how many modules were compiled and the RuleSet(s) whose counters hold the
  firings; modules that cannot be compiled are reported through `on_error(text)`;
- `test_domain() -> (CheckedProgram, RuleSet, Domain)` (optional): what
  `deadeye rules test` needs (see `ruletest.py`);
- `available() -> str | None`: None when usable, else why not (e.g. the lowering is not
  installed).

The corpus is the application's business (`deadeye/rule_sets.py`: .wasm files and every
module of .wast scripts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from deadeye.lower.dsl.runtime import RuleInfo, RuleSet


@dataclass
class RuleSetSpec:
    name: str
    description: str
    run_corpus: Callable[[list, int | None, Callable[[str], None]], tuple[int, list[RuleSet]]]
    test_domain: Callable[[], tuple] | None = None
    available: Callable[[], str | None] = lambda: None


RULE_SETS: dict[str, RuleSetSpec] = {}


def register_rule_set(spec: RuleSetSpec) -> None:
    RULE_SETS[spec.name] = spec


@dataclass
class CoverageReport:
    name: str
    counts: list[tuple[RuleInfo, int]] = field(default_factory=list)
    items: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def never_fired(self) -> list[RuleInfo]:
        return [r for r, n in self.counts if n == 0]

    def render(self, show_all: bool = False) -> str:
        lines = [f"{self.name}: {len(self.counts) - len(self.never_fired)}/{len(self.counts)} "
                 f"rule(s) fired on {self.items} module(s)"]
        for r, n in sorted(self.counts, key=lambda rc: (rc[0].file, rc[0].line)):
            if n == 0:
                lines.append(f"  never fired: {r.where}: {r.text}")
            elif show_all:
                lines.append(f"  {n:>8}  {r.where}")
        for e in self.errors:
            lines.append(f"  skipped: {e}")
        return "\n".join(lines)


def merge_counts(rulesets: Iterable[RuleSet]) -> list[tuple[RuleInfo, int]]:
    """Per rule (by file:line:col), the firings summed over several RuleSets of one set."""
    total: dict[tuple, list] = {}
    for rs in rulesets:
        for r, n in rs.rule_counts():
            key = (r.file, r.line, r.col)
            if key in total:
                total[key][1] += n
            else:
                total[key] = [r, n]
    return [(r, n) for r, n in total.values()]
