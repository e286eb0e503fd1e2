"""Stamping versions into pyproject.toml and Chart.yaml without losing formatting."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.stamp import (
    bump_chart_patch,
    read_chart,
    read_project_version,
    stamp_all,
    stamp_chart,
    stamp_lock,
    stamp_project,
)
from brokkr_dev.release.version import parse

PYPROJECT = """\
[build-system]
requires = ["hatchling"]

[project]
name = "brokkr"
# the release automation stamps this line
version = "0.1.0"
dependencies = []

[tool.other]
version = "9.9.9"
"""

CHART = """\
apiVersion: v2
name: brokkr-broker
# chart version and appVersion move in lockstep with pyproject's version
version: 0.1.0
appVersion: "0.1.0"
dependencies: []
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    for name in ("brokkr-broker", "brokkr-agent"):
        chart = tmp_path / "charts" / name
        chart.mkdir(parents=True)
        (chart / "Chart.yaml").write_text(CHART.replace("brokkr-broker", name))
    return tmp_path


def test_stamp_project_changes_only_the_project_version(repo):
    path = repo / "pyproject.toml"
    changes = stamp_project(path, parse("v1.2.3"), write=True)
    assert [(c.field, c.old, c.new) for c in changes] == [("[project] version", "0.1.0", "1.2.3")]
    assert path.read_text() == PYPROJECT.replace('version = "0.1.0"', 'version = "1.2.3"')
    assert read_project_version(path) == "1.2.3"
    assert stamp_project(path, parse("v1.2.3"), write=True) == []


def test_dry_run_reports_and_writes_nothing(repo):
    changes = stamp_all(repo, parse("v1.0.0-rc.1"), repo / "charts", write=False)
    assert len(changes) == 5
    assert (repo / "pyproject.toml").read_text() == PYPROJECT
    lines = [c.describe(repo) for c in changes]
    assert "charts/brokkr-agent/Chart.yaml: appVersion 0.1.0 -> 1.0.0-rc.1" in lines


def test_stamp_chart_keeps_comments_and_quotes(repo):
    chart = repo / "charts" / "brokkr-broker"
    stamp_chart(chart, parse("v1.10.0"), write=True)
    text = (chart / "Chart.yaml").read_text()
    assert 'appVersion: "1.10.0"' in text
    assert "version: 1.10.0\n" in text
    assert "# chart version and appVersion" in text
    assert read_chart(chart / "Chart.yaml") == {
        "name": "brokkr-broker",
        "version": "1.10.0",
        "appVersion": "1.10.0",
    }


def test_unquoted_app_version_gets_quoted(tmp_path):
    (tmp_path / "Chart.yaml").write_text("name: x\nversion: 0.1.0\nappVersion: 0.1.0\n")
    stamp_chart(tmp_path, parse("v1.10.0"), write=True)
    assert 'appVersion: "1.10.0"' in (tmp_path / "Chart.yaml").read_text()


def test_chart_only_patch_bump_keeps_app_version(repo):
    chart = repo / "charts" / "brokkr-broker"
    stamp_chart(chart, parse("v1.0.0"), write=True)
    changes = bump_chart_patch(chart, write=True)
    assert [(c.field, c.old, c.new) for c in changes] == [("version", "1.0.0", "1.0.1")]
    assert read_chart(chart / "Chart.yaml")["appVersion"] == "1.0.0"


def test_missing_fields_and_files_are_clear_errors(tmp_path):
    (tmp_path / "Chart.yaml").write_text("name: x\nversion: 1.0.0\n")
    with pytest.raises(ReleaseError, match="no top-level `appVersion:`"):
        stamp_chart(tmp_path, parse("v1.0.0"), write=True)
    with pytest.raises(ReleaseError, match="does not exist"):
        read_chart(tmp_path / "missing" / "Chart.yaml")
    (tmp_path / "pyproject.toml").write_text("[tool.x]\nversion = '1'\n")
    with pytest.raises(ReleaseError, match=r"no \[project\] table"):
        read_project_version(tmp_path / "pyproject.toml")


def test_the_lock_follows_the_stamp_so_uv_sync_locked_accepts_the_release_commit(tmp_path):
    """uv.lock records the project's own version: a stamped pyproject.toml with an
    unstamped lock makes `uv sync --locked` (every nox session) refuse the commit."""
    uv = shutil.which("uv")
    assert uv, "uv is on PATH in the nox sessions"
    root = Path(__file__).resolve().parents[3]
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(root / name, tmp_path / name)
    version = parse("v9.9.0-rc.1")
    stamp_project(tmp_path / "pyproject.toml", version, write=True)
    (change,) = stamp_lock(tmp_path / "uv.lock", version, write=True)
    assert (change.field, change.new) == ("brokkr version", "9.9.0rc1")  # PEP 440 form
    assert stamp_lock(tmp_path / "uv.lock", version, write=True) == []
    checked = subprocess.run(
        [uv, "lock", "--check", "--offline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    # only that one line changed
    before = (root / "uv.lock").read_text().splitlines()
    after = (tmp_path / "uv.lock").read_text().splitlines()
    assert [(a, b) for a, b in zip(before, after, strict=True) if a != b] == [
        (f'version = "{change.old}"', 'version = "9.9.0rc1"')
    ]
