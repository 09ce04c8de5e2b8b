"""`deadeye rules check|show`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deadeye.cli import main
from deadeye.lower.dsl import cli as rules_cli
from dsl_testlib import SOURCES


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["rules", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def rule_dir(tmp_path):
    d = tmp_path / "rules"
    (d / "sub").mkdir(parents=True)
    (d / "prelude.isle").write_text(SOURCES[0][1])
    (d / "sub" / "simplify.isle").write_text(SOURCES[1][1])
    return d


def test_check_ok_counts(capsys, rule_dir):
    code, out, err = run(capsys, "check", rule_dir)
    assert (code, err) == (0, "")
    assert out == "ok: 2 file(s), 3 type(s), 12 term(s), 26 rule(s)\n"
    # Files given one by one form the same program.
    code, out, _ = run(capsys, "check", rule_dir / "prelude.isle", rule_dir / "sub" / "simplify.isle")
    assert code == 0 and out.startswith("ok: 2 file(s)")


def test_check_reports_each_error_with_position(capsys, rule_dir):
    bad = rule_dir / "sub" / "zbad.isle"  # sorts after simplify.isle
    bad.write_text("(rule (simplify x) y)\n\n(rule (simplify (add x x)) x)\n(rule (pick x 9) x")
    code, out, err = run(capsys, "check", rule_dir)
    assert code == 1
    # A syntax error stops that file; the other files' errors are still found in later runs.
    assert out == f"{bad}:4:19: syntax error: unexpected end of file (expected '(', ')', Type.Variant, a name, an integer)\n"
    assert err == "1 error(s)\n"
    bad.write_text("(rule (simplify x) y)\n\n(rule (simplify (add x x)) x)\n(rule (pick x z) w)\n")
    code, out, err = run(capsys, "check", rule_dir)
    assert code == 1 and err == "2 error(s)\n"
    assert out == f"{bad}:1:20: unbound variable y\n{bad}:4:18: unbound variable w\n"
    # Overlaps are checked once the rules type-check.
    bad.write_text("(rule 9 (simplify (add x x)) x)\n(rule 1 (pick x @ (is_leaf) 1) x)\n")
    code, out, err = run(capsys, "check", rule_dir)
    lines = out.splitlines()
    # is_leaf is not declared disjoint from the add, mul and neg of three pick rules.
    assert code == 1 and len(lines) == 4 and err == "4 error(s)\n"
    assert lines[0].startswith(f"{bad}:1:1: rules of simplify overlap: this rule and the one at {rule_dir}")
    for line in lines[1:]:
        assert line.startswith(f"{bad}:2:1: cannot decide whether this rule and the one at {rule_dir}")
        assert "not declared disjoint" in line


def test_check_without_paths_uses_the_shipped_rules(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(rules_cli, "shipped_rules_dir", lambda: tmp_path)
    code, out, _ = run(capsys, "check")
    assert (code, out) == (0, f"no rule files in {tmp_path}\n")
    code, out, err = run(capsys, "show", "simplify")
    assert (code, out, err) == (1, "", f"error: no rule files in {tmp_path}\n")


def test_shipped_rules_check():
    shipped = rules_cli.shipped_rules_dir()
    proc = subprocess.run([sys.executable, "-m", "deadeye", "rules", "check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if any(shipped.rglob("*.isle")):
        assert proc.stdout.startswith("ok: ")
    else:
        assert proc.stdout == f"no rule files in {shipped}\n"


def test_missing_path(capsys, tmp_path):
    code, _, err = run(capsys, "check", tmp_path / "nope.isle")
    assert code == 1 and "No such file or directory" in err and "nope.isle" in err


def test_show_prints_the_generated_matcher(capsys, rule_dir):
    code, out, err = run(capsys, "show", "pick", rule_dir)
    assert (code, err) == (0, "")
    assert out.startswith("# ---- term pick: 7 rule(s)")
    assert "def match_pick(rt, a0, a1):" in out and "def all_pick(rt, out, a0, a1):" in out
    assert "simplify" not in out.split("def all_pick")[0].replace("simplify.isle", "")
    # Every leaf names the rule's file:line.
    src = str(rule_dir / "sub" / "simplify.isle")
    for n, text in enumerate(SOURCES[1][1].splitlines(), 1):
        if text.startswith("(rule") and "(pick" in text:
            assert out.count(f"at {src}:{n}:1 ") == 2, text  # once per function
    compile(out, "<show>", "exec")  # readable and valid Python


def test_show_unknown_term(capsys, rule_dir):
    code, out, err = run(capsys, "show", "add", rule_dir)
    assert code == 1 and out == "" and err == "error: no rules define term add\n"


def test_show_finds_the_term_in_either_shipped_rule_set(capsys):
    # the mid-end and the lowering rules are separate programs: each term is shown from its own
    for term in ("simplify", "lower"):
        code, out, err = run(capsys, "show", term)
        assert code == 0 and err == "" and out.startswith(f"# ---- term {term}:"), (term, err)
    code, out, err = run(capsys, "show", "no_such_term")
    assert (code, out, err) == (1, "", "error: no rules define term no_such_term\n")
