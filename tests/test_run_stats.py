"""`deadeye run --stats`: executed bytecode op counts and the hottest op pairs on stderr
(the interpreter's counting mode, on only with --stats)."""

from __future__ import annotations

import os
import re

import pytest

import deadeye
from deadeye.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIB = os.path.join(ROOT, "examples", "fib.wasm")  # naive recursive fib: n < 2 is the base
HELLO = os.path.join(ROOT, "examples", "hello.wasm")

_COUNT = re.compile(r"^ +(\d+)  (\S+)$")
_PAIR = re.compile(r"^ +(\d+)  (\S+) -> (\S+)$")


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def parse_stats(err: str) -> tuple[int, dict[str, int], dict[tuple[str, str], int]]:
    """(executed, {op: count}, {(op, op): count}) from the --stats text; asserts its shape."""
    lines = err.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("executed bytecode ops: "))
    executed = int(lines[start].split(": ")[1])
    assert lines[start + 1] == "hottest ops:"
    split = lines.index("hottest op pairs:", start)
    ops = {}
    for line in lines[start + 2:split]:
        m = _COUNT.match(line)
        assert m, line
        ops[m[2]] = int(m[1])
    pairs = {}
    for line in lines[split + 1:]:
        m = _PAIR.match(line)
        if not m:  # what follows the report (e.g. the error line of a trap)
            assert line.startswith("error: "), line
            break
        pairs[(m[2], m[3])] = int(m[1])
    counts = list(ops.values())
    assert counts == sorted(counts, reverse=True) and sum(counts) <= executed
    assert list(pairs.values()) == sorted(pairs.values(), reverse=True)
    return executed, ops, pairs


def test_stats_shape_and_counts(capsys):
    n = 15
    rc = main(["run", "--engine", "interp", "--stats", "--invoke", "fib", FIB, str(n)])
    out, err = capsys.readouterr()
    assert rc == 0 and out.split() == [str(_fib(n))]  # results stay on stdout
    executed, ops, pairs = parse_stats(err)
    # fib(n) makes 2*fib(n+1) - 1 activations: every one returns, all but the first are
    # entered by a `call` op
    activations = 2 * _fib(n + 1) - 1
    assert ops["return"] == activations and ops["call"] == activations - 1
    assert executed >= 4 * activations
    assert len(pairs) > 0 and all(c <= min(ops.get(a, c), ops.get(b, c))
                                  for (a, b), c in pairs.items())


def test_stats_count_fuel_ops_only_with_fuel(capsys):
    main(["run", "--stats", "--invoke", "fib", FIB, "10"])
    _, without = capsys.readouterr()
    main(["run", "--stats", "--fuel", "100000", "--invoke", "fib", FIB, "10"])
    _, with_fuel = capsys.readouterr()
    assert "fuel" not in parse_stats(without)[1]
    assert parse_stats(with_fuel)[0] > parse_stats(without)[0]


def test_stats_for_a_wasi_command(capfd):
    rc = main(["run", "--stats", HELLO])
    out, err = capfd.readouterr()  # a WASI guest writes to the process's descriptors
    assert rc == 0 and out
    assert parse_stats(err)[0] > 0


def test_stats_printed_when_the_run_traps(capsys):
    rc = main(["run", "--stats", "--fuel", "50", "--invoke", "fib", FIB, "20"])
    _, err = capsys.readouterr()
    assert rc == 1 and "all fuel consumed" in err
    assert parse_stats(err)[0] > 0


def test_no_stats_without_the_flag(capsys):
    assert main(["run", "--invoke", "fib", FIB, "10"]) == 0
    assert capsys.readouterr().err == ""
    assert deadeye.Engine(deadeye.Config(engine="interp")).executor.stats is False


@pytest.mark.parametrize("engine_name", ["ir"])
def test_stats_on_other_engines_say_so(engine_name, capsys):
    rc = main(["run", "--engine", engine_name, "--stats", "--invoke", "fib", FIB, "5"])
    out, err = capsys.readouterr()
    assert rc == 0 and out.split() == ["5"] and "--engine interp" in err
