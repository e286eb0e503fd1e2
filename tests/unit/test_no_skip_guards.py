"""No guard that turns a rename into a skip.

`pytest.importorskip` of our own modules and `skipif` on files of this repository
make a renamed module or a lost chart look like a skipped test, which no one reads.
Everything the tests import or read here always exists, so those guards are refused
outright; a runtime `pytest.skip` is allowed only where a reason is listed below.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# (file relative to tests/, the skip's reason): runtime conditions, not missing code.
ALLOWED_SKIPS = {
    ("k8s/test_tools.py", "a given cluster may run any Kubernetes version"),
    (
        "fixtures/mirror.py",
        "no Docker engine answers; the mirror tests need one whose registry-mirrors "
        "include a loopback address (docs/e2e.md, 'The pull path through a mirror')",
    ),
    (
        "fixtures/mirror.py",
        "the Docker engine has no registry mirror on 127.0.0.0/8: add "
        '"registry-mirrors": ["http://127.0.0.1:5057"] to /etc/docker/daemon.json and '
        "reload dockerd (docs/e2e.md, 'The pull path through a mirror')",
    ),
}


def guards(path: Path, root: Path = TESTS) -> list[str]:
    """The skip guards in one test file, as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name.endswith(("importorskip", "skipif")):
            found.append(f"{node.lineno}: {name}")
        elif name in {"pytest.skip", "skip"}:
            reason = (
                node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            )
            if (str(path.relative_to(root)), reason) not in ALLOWED_SKIPS:
                found.append(f"{node.lineno}: {name}({reason!r})")
    return found


def test_no_test_skips_itself_when_project_code_or_charts_are_missing():
    offenders = {
        str(path.relative_to(TESTS)): found
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != Path(__file__).name and (found := guards(path))
    }
    assert offenders == {}, (
        "skip guards on code or files that always exist hide a rename or a loss; "
        "import the module or read the file directly so the test fails instead"
    )


def test_the_check_sees_each_kind_of_guard(tmp_path: Path):
    planted = tmp_path / "test_planted.py"
    planted.write_text(
        "import pytest\n"
        'pytest.importorskip("brokkr_dev.charts")\n'
        'pytestmark = pytest.mark.skipif(True, reason="charts missing")\n'
        'def test_x():\n    pytest.skip("not yet")\n'
    )
    assert [line.split(":")[0] for line in guards(planted, tmp_path)] == ["2", "3", "5"]
