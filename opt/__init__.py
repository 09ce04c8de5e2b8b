"""deadeye.opt: IR optimization passes and the mid-end rewrite-rule driver.

`optimize(func, level=2, env=None, stats=None, ...)` optimizes one function in place (see
`manager.py` for the pipelines, statistics, budget and the fuel rule)."""

from deadeye.opt.manager import (  # noqa: F401
    PASSES,
    PIPELINES,
    Budget,
    OptStats,
    PassContext,
    PassRun,
    add_to_pipeline,
    optimize,
    optimize_module,
    parse_pass_list,
    register_pass,
)
