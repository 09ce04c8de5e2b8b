"""Counting the compile pipeline's work: which functions were lifted and lowered."""

from __future__ import annotations

import deadeye.lower.compile
import deadeye.pipeline


def count_pipeline(monkeypatch) -> tuple[list[int], list[int]]:
    """(lifted, lowered): defined indices, appended as the bytecode pipeline lifts and
    lowers functions from now on."""
    lifted: list[int] = []
    lowered: list[int] = []
    lift, lower = deadeye.pipeline.lift_function, deadeye.lower.compile.compile_function

    def counting_lift(module, index, env):
        lifted.append(index)
        return lift(module, index, env)

    def counting_lower(func, env, code, index, stats=None):
        lowered.append(index)
        return lower(func, env, code, index, stats)

    monkeypatch.setattr(deadeye.pipeline, "lift_function", counting_lift)
    monkeypatch.setattr(deadeye.lower.compile, "compile_function", counting_lower)
    return lifted, lowered
