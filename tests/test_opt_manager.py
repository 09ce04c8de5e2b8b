"""The pass manager: levels, pipelines as data, statistics, verification between passes,
the work budget, pass registration, NaN canonicalization of folded results."""

from __future__ import annotations

import time

import pytest

from deadeye.ir.builder import FunctionBuilder
from deadeye.ir.errors import ValidationError
from deadeye.ir.text import parse_function
from deadeye.ir.types import FuncType, ValType
from deadeye.ir.verify import verify
from deadeye.opt import PASSES, PIPELINES, OptStats, optimize, register_pass
from deadeye.opt.manager import parse_pass_list

I32, F32 = ValType.I32, ValType.F32

SAMPLE = """
function %f(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.const 2
    v2 = i32.const 3
    v3 = i32.mul v1, v2
    v4 = i32.add v0, v3
    v5 = i32.add v3, v0
    br_if v0, block1(v4), block2(v5)
block1(v6: i32) fuel=2:
    jump block3(v6)
block2(v7: i32):
    jump block3(v7)
block3(v8: i32) fuel=1:
    v9 = i32.popcnt v1
    return v8
}
"""


def test_level0_changes_nothing_and_returns_the_same_function():
    f = parse_function(SAMPLE)
    before = f.as_tuple()
    assert optimize(f, 0) is f
    assert f.as_tuple() == before


def test_levels_shrink_the_function():
    sizes = []
    for level in (0, 1, 2):
        f = parse_function(SAMPLE)
        optimize(f, level, verify=True)
        sizes.append(sum(len(b.instrs) for b in f.blocks))
    assert sizes[0] > sizes[1] > sizes[2]


def test_pipelines_are_data_over_registered_passes():
    assert PIPELINES[0] == ()
    assert set(PIPELINES[1]) == {"fold", "dce", "simplify_cfg"}
    assert {"gvn", "licm", "loads", "blockparams"} <= set(PIPELINES[2])
    parse_pass_list("dce")  # loads the pass modules
    for names in PIPELINES.values():
        assert set(names) <= set(PASSES)


def test_bad_level_and_unknown_pass_are_errors():
    with pytest.raises(ValueError):
        optimize(parse_function(SAMPLE), 3)
    with pytest.raises(ValueError, match="unknown pass 'nope'"):
        optimize(parse_function(SAMPLE), passes="dce,nope")


def test_statistics_record_every_pass_run():
    f = parse_function(SAMPLE)
    stats = OptStats()
    optimize(f, 2, stats=stats)
    names = [r.name for r in stats.runs]
    assert names[:len(PIPELINES[2])] == list(PIPELINES[2])
    for r in stats.runs:
        assert r.seconds >= 0
        if not r.changed:
            assert (r.instrs_before, r.blocks_before) == (r.instrs_after, r.blocks_after)
    dce = [r for r in stats.runs if r.name == "dce" and r.changed]
    assert dce and all(r.instrs_before - r.instrs_after == r.removed for r in dce)
    agg = stats.by_pass()
    assert agg["gvn"]["removed"] >= 1  # v5 duplicates v4
    assert stats.functions == 1
    assert "gvn" in stats.summary()


def test_chained_runs_account_instructions():
    f = parse_function(SAMPLE)
    stats = OptStats()
    optimize(f, 2, stats=stats)
    for a, b in zip(stats.runs, stats.runs[1:]):
        assert a.instrs_after == b.instrs_before and a.blocks_after == b.blocks_before


def test_verification_names_the_pass_that_broke_the_function():
    def breaker(func, ctx):
        func.blocks[0].instrs.pop()  # drop the terminator
        return True

    register_pass("test_breaker", breaker)
    try:
        with pytest.raises(ValidationError, match="after pass 'test_breaker'"):
            optimize(parse_function(SAMPLE), passes=["test_breaker"], verify=True)
    finally:
        del PASSES["test_breaker"]


def test_verification_rejects_invalid_input():
    f = parse_function(SAMPLE)
    f.blocks[1].instrs.pop()
    with pytest.raises(ValidationError, match="before optimization"):
        optimize(f, 2, verify=True)


def test_a_registered_pass_runs_in_a_pass_list():
    seen = []

    def probe(func, ctx):
        seen.append((func.name, ctx.budget.left > 0))
        ctx.rewritten += 2
        return False

    register_pass("test_probe", probe)
    try:
        stats = OptStats()
        optimize(parse_function(SAMPLE), passes="test_probe", stats=stats)
    finally:
        del PASSES["test_probe"]
    assert seen == [("f", True)]
    assert stats.runs[0].rewritten == 2


def _long_chain(n, arm_fuel=(0, 0)):
    """n diamonds in a chain, each on a computation repeated in its two arms."""
    fb = FunctionBuilder("big", FuncType((I32,), (I32,)))
    acc = fb.params[0]
    for i in range(n):
        c = fb.const(I32, i)
        x = fb.ins("i32.add", acc, c)
        y = fb.ins("i32.add", c, acc)
        then, else_ = fb.create_block(arm_fuel[0]), fb.create_block(arm_fuel[1])
        join = fb.create_block(1)
        p = fb.append_param(join, I32)
        fb.br_if(x, then, [], else_, [])
        fb.switch_to(then)
        fb.jump(join, [x])
        fb.switch_to(else_)
        fb.jump(join, [y])
        fb.switch_to(join)
        acc = p
    fb.ret(acc)
    return fb.finish()


def test_budget_bounds_the_work_and_keeps_the_function_valid():
    f = _long_chain(50, (1, 2))
    stats = OptStats()
    optimize(f, 2, stats=stats, budget=200)
    verify(f)
    assert stats.budget_exhausted == 1
    assert len(stats.runs) < len(PIPELINES[2])


def test_a_large_function_optimizes_quickly():
    f = _long_chain(400)
    start = time.perf_counter()
    stats = OptStats()
    optimize(f, 2, stats=stats)
    assert time.perf_counter() - start < 30
    verify(f)
    # x and y are one value: every diamond collapses, the chain merges into one block
    # charged the joins' fuel.
    assert len(f.blocks) == 1
    assert f.blocks[0].fuel == 400


def test_arms_with_different_fuel_are_kept():
    f = _long_chain(3, (1, 2))
    optimize(f, 2, verify=True)
    assert sorted(b.fuel for b in f.blocks) == sorted([1, 2] * 3 + [1] * 3 + [0])


def test_nan_canonicalization_of_folded_results():
    text = """
function %f() -> f32 {
block0:
    v0 = f32.const nan:0x1234
    v1 = f32.const 1.0
    v2 = f32.add v0, v1
    return v2
}
"""
    plain, canon = parse_function(text), parse_function(text)
    optimize(plain, passes="fold")
    optimize(canon, passes="fold", nan_canonicalization=True)
    assert plain.blocks[0].instrs[2].imm == (0x7FC01234,)
    assert canon.blocks[0].instrs[2].imm == (0x7FC00000,)


def _nested_loops(depth):
    """`depth` nested counted loops, each recomputing an invariant product."""
    fb = FunctionBuilder("deep", FuncType((I32,), (I32,)))
    x = fb.params[0]
    headers = []
    for _ in range(depth):
        header = fb.create_block(1)
        p = fb.append_param(header, I32)
        fb.jump(header, [x])
        fb.switch_to(header)
        headers.append((header, p))
        x = fb.ins("i32.add", p, fb.ins("i32.mul", fb.params[0], fb.params[0]))
    for header, p in reversed(headers):
        latch_exit = fb.create_block(1)
        n = fb.ins("i32.sub", p, fb.const(I32, 1))
        fb.br_if(n, header, [n], latch_exit, [])
        fb.switch_to(latch_exit)
    fb.ret(x)
    return fb.finish()


def test_deep_loop_nests_hoist_to_the_top_and_stay_cheap():
    f = _nested_loops(30)
    optimize(f, 2, verify=True)
    # the invariant product leaves all thirty loops: it sits in the entry block
    assert [i.op.name for i in f.entry.instrs].count("i32.mul") == 1
    assert sum(i.op.name == "i32.mul" for i in f.instructions()) == 1
    big = _nested_loops(250)
    start = time.perf_counter()
    optimize(big, 2, budget=100_000)
    assert time.perf_counter() - start < 30
    verify(big)


def test_removed_counts_match_the_size_change_for_deleting_passes():
    f = parse_function(SAMPLE)
    stats = OptStats()
    optimize(f, 1, stats=stats)
    for r in stats.runs:
        if r.name in ("dce", "simplify_cfg"):
            assert r.instrs_before - r.instrs_after == r.removed, r


STRICT = """
memories 1
function %f(v0: i32) -> i32 {
block0(v0: i32) fuel=1:
    v1 = i32.const 1
    jump block1
block1 fuel=2:
    i32.store mem=0 offset=0 v0, v1
    jump block2
block2 fuel=3:
    v2 = i32.add v0, v1
    jump block3
block3:
    return v2
}
"""


def test_strict_fuel_merges_only_where_early_charging_is_unobservable():
    from deadeye.ir.text import parse_module

    loose, strict = parse_module(STRICT), parse_module(STRICT)
    optimize(loose.functions[0], 1, env=loose, verify=True)
    optimize(strict.functions[0], 1, env=strict, verify=True, strict_fuel=True)
    assert [b.fuel for b in loose.functions[0].blocks] == [6]
    # block1 stores (may trap): block2's fuel stays behind it; block3 has no fuel.
    assert [b.fuel for b in strict.functions[0].blocks] == [3, 3]


def test_add_to_pipeline_inserts_once_around_an_anchor(monkeypatch):
    from deadeye.opt import add_to_pipeline

    monkeypatch.setitem(PIPELINES, 1, ("fold", "dce", "simplify_cfg"))
    add_to_pipeline("gvn", 1, after="fold")
    add_to_pipeline("gvn", 1, after="dce")  # already there: unchanged
    add_to_pipeline("licm", 1, before="simplify_cfg")
    add_to_pipeline("loads", 1)
    assert PIPELINES[1] == ("fold", "gvn", "dce", "licm", "simplify_cfg", "loads")
    with pytest.raises(ValueError):
        add_to_pipeline("blockparams", 1, after="nope")
    f = parse_function(SAMPLE)
    stats = OptStats()
    optimize(f, 1, stats=stats, verify=True)
    assert [r.name for r in stats.runs] == list(PIPELINES[1])
