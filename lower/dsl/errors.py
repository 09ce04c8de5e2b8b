"""Diagnostics of the rule language. `RuleError` is a `WasmError` (the project's one
exception hierarchy) that carries every problem found, each citing file:line:column."""

from __future__ import annotations

from dataclasses import dataclass

from deadeye.ir.errors import WasmError


@dataclass(frozen=True, order=True)
class Pos:
    """A place in a rule file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @property
    def where(self) -> str:
        """`file:line`, the key of firing counters and trace reports."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, order=True)
class Diagnostic:
    pos: Pos
    message: str

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}"


class RuleError(WasmError):
    """One or more problems in rule files; `diagnostics` lists them in file order."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(map(str, self.diagnostics)))


class Collector:
    """Accumulates diagnostics so that one run reports every error, not only the first."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, pos: Pos, message: str) -> None:
        self.items.append(Diagnostic(pos, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise RuleError(self.items)
