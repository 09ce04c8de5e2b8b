"""The FileCheck subset used by the filetests, and the filetest runner's failure paths."""

from __future__ import annotations

import pytest

from deadeye.ir.errors import DecodeError
from deadeye.opt.filecheck import CheckFailure, check, parse_directives
from test_filetests import run_filetest

OUT = """\
block0(v0: i32):
    v1 = i32.const 5
    v2 = i32.add v0, v1
    return v2
block1:
    jump block0
"""


def run(checks: str, text: str = OUT):
    check(text, parse_directives(checks))


def test_directives_are_parsed_from_comments_only():
    ds = parse_directives("v1 = x\n; check: a b\n;; nextln:c\n; not: d\n; sameln: e\n; note")
    assert [(d.kind, d.pattern, d.line) for d in ds] == [
        ("check", "a b", 2), ("nextln", "c", 3), ("not", "d", 4), ("sameln", "e", 5)]


def test_check_in_order():
    run("; check: v1 = i32.const 5\n; check: return v2")
    with pytest.raises(CheckFailure, match="line 2: `check: v1 = i32.const 5` failed"):
        run("; check: return v2\n; check: v1 = i32.const 5")


def test_blanks_match_any_run_of_blanks_and_text_is_literal():
    run("; check: v2   =  i32.add v0,v1".replace(",v1", ", v1"))
    with pytest.raises(CheckFailure):
        run("; check: i32.add v0.*v1")  # regex characters are literal outside $(...)


def test_nextln_and_sameln():
    run("; check: v1 = i32.const\n; nextln: v2 = i32.add\n; sameln: v0, v1")
    with pytest.raises(CheckFailure, match="next line"):
        run("; check: v1 = i32.const\n; nextln: return v2")
    with pytest.raises(CheckFailure, match="same line"):
        run("; check: v1 = i32.const\n; sameln: i32.add")
    with pytest.raises(CheckFailure, match="last line"):
        run("; check: jump block0\n; nextln: x", OUT.rstrip("\n"))


def test_not_between_matches_and_at_the_end():
    run("; check: v1 =\n; not: i32.mul\n; check: return")
    with pytest.raises(CheckFailure, match=r"`not: i32.add` matched 'i32.add' on output line 3"):
        run("; check: v1 =\n; not: i32.add\n; check: return")
    with pytest.raises(CheckFailure, match="not: block1"):
        run("; check: return\n; not: block1")
    run("; check: block1\n; not: i32.add")  # only after the last match


def test_variables_capture_and_reuse():
    run("; check: $(a=v\\d+) = i32.const 5\n; check: i32.add v0, $a\n; check: return $(r=v\\d+)"
        "\n; not: $r =")
    with pytest.raises(CheckFailure, match="variables"):
        run("; check: $(a=v\\d+) = i32.const 5\n; check: i32.add $a, v1")
    with pytest.raises(CheckFailure, match="no earlier directive defined"):
        run("; check: i32.add $nope")


def test_variable_reused_in_its_own_pattern():
    check("x = add x, y\n", parse_directives("; check: $(v=\\w+) = add $v, y"))
    with pytest.raises(CheckFailure):
        check("x = add z, y\n", parse_directives("; check: $(v=\\w+) = add $v, y"))


def test_matches_do_not_span_lines():
    with pytest.raises(CheckFailure):
        run("; check: return v2 block1")


def test_failure_message_shows_the_output_with_a_marker():
    with pytest.raises(CheckFailure) as e:
        run("; check: i32.add\n; check: i32.sub")
    msg = str(e.value)
    assert "line 2: `check: i32.sub` failed" in msg
    assert ">    3 |     v2 = i32.add v0, v1" in msg


def test_filetest_runner_reports_wrong_expectations():
    text = """test optimize dce
function %f(v0: i32) -> i32 {
block0(v0: i32):
    v1 = i32.const 1
    return v0
}
; check: v1 = i32.const 1
"""
    out = run_filetest(text)
    assert "i32.const" not in out
    with pytest.raises(CheckFailure):
        check(out, parse_directives(text))


def test_filetest_runner_errors():
    with pytest.raises(AssertionError, match="no `test` line"):
        run_filetest("function %f() {\nblock0:\n    return\n}\n")
    with pytest.raises(AssertionError, match="unknown test command"):
        run_filetest("test compile\nfunction %f() {\nblock0:\n    return\n}\n")
    with pytest.raises(ValueError, match="unknown pass"):
        run_filetest("test optimize nope\nfunction %f() {\nblock0:\n    return\n}\n")
    with pytest.raises(DecodeError, match="line 3"):
        run_filetest("test optimize\nfunction %f() {\nblock0 oops\n    return\n}\n")
