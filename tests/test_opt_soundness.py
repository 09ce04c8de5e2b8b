"""Soundness: random valid IR functions give the same results, traps, memory, global and
fuel before and after optimization (-O1, -O2, a random pass sequence; fuel of runs that
trap part-way must match too under `strict_fuel`)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deadeye.ir.errors import ValidationError
from deadeye.ir.text import parse_function, print_function
from deadeye.ir.verify import verify
from deadeye.opt import PIPELINES, OptStats, optimize
from opt_testlib import ENV, MEM_SIZE, SIG, WIDTH, Generator, evaluate

EXAMPLES = int(os.environ.get("DEADEYE_OPT_EXAMPLES", "60"))


def _inputs(data):
    args = [data.draw(st.one_of(st.sampled_from([0, 1, 3, 0xFF]),
                                st.integers(0, (1 << WIDTH[t]) - 1))) for t in SIG.params]
    memory = data.draw(st.binary(min_size=MEM_SIZE, max_size=MEM_SIZE))
    return args, memory, data.draw(st.integers(0, 2**32 - 1))


def _same(before, after, text, strict_fuel):
    (o1, m1, g1, f1), (o2, m2, g2, f2) = before, after
    assert o1 == o2, f"outcome {o1} became {o2}\n{text}"
    assert m1 == m2, f"memory differs\n{text}"
    assert g1 == g2, f"global differs\n{text}"
    if o1[0] == "return" or strict_fuel:
        assert f1 == f2, f"fuel {f1} became {f2}\n{text}"


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_optimized_functions_behave_the_same(data):
    func = Generator(data, st).build()
    verify(func, ENV)
    text = print_function(func)
    runs = [_inputs(data) for _ in range(3)]
    expected = [evaluate(func, *r) for r in runs]
    # -O1, -O2 (plain and with strict_fuel), and a random sequence of passes (each pass
    # alone and in odd orders).
    order = data.draw(st.lists(st.sampled_from(sorted(set(PIPELINES[2]))), min_size=1,
                               max_size=6))
    variants = [("-O1", {"level": 1}), ("-O2", {"level": 2}),
                ("-O2 strict_fuel", {"level": 2, "strict_fuel": True}),
                (",".join(order), {"passes": order})]
    for what, options in variants:
        opt = parse_function(text, ENV)
        try:
            optimize(opt, env=ENV, stats=OptStats(), verify=True, **options)
        except ValidationError as e:
            raise AssertionError(f"{what} broke the function:\n{e}\n--- input\n{text}")
        report = f"--- input\n{text}--- {what}\n{print_function(opt)}"
        for r, exp in zip(runs, expected):
            _same(exp, evaluate(opt, *r), report, options.get("strict_fuel", False))
