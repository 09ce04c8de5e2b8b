"""The distribution installs as one `deadeye` package, and CI runs the README's command."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ["frontend", "ir", "opt", "lower", "interp", "jit", "rules"]


def test_wheel_has_one_top_level_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("deadeye-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"deadeye"}
    for sub in SUBPACKAGES:
        assert f"deadeye/{sub}/__init__.py" in names
    assert "deadeye/lower/dsl/__init__.py" in names
    # Rule files ship as package data.
    shipped_rules = {n for n in names if n.startswith("deadeye/rules/") and n.endswith(".isle")}
    on_disk = {f"deadeye/rules/{p.relative_to(ROOT / 'rules')}" for p in (ROOT / "rules").rglob("*.isle")}
    assert on_disk <= shipped_rules


def test_installed_environment_has_no_stray_top_level_modules(tmp_path):
    # Outside the source tree only `deadeye.*` is importable (editable or not).
    code = "import importlib.util as u, sys; " \
        f"sys.exit(any(u.find_spec(n) for n in {SUBPACKAGES!r}) or not u.find_spec('deadeye.ir'))"
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path).returncode == 0


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.S)


def test_ci_runs_the_readme_test_command():
    ci_lines = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#") and "pytest" in line
    ]
    assert len(ci_lines) == 1
    blocks = _readme_commands()
    assert any(ci_lines[0] in block.splitlines() for block in blocks), ci_lines[0]
