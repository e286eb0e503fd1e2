"""The test gate runs the checks on the commit to publish and refuses a red one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.testgate import run_checks

PASSING = "def test_adds():\n    assert 1 + 1 == 2\n"
FAILING = "def test_adds():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n"
# no third-party plugins: the checks start quickly
QUIET_ENV = {"PATH": "/usr/bin:/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def repo_with_test(root: Path, test: str) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_math.py").write_text(test)
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root.parent, "init", "-q", "-b", "main", str(root))
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=T", "add", "-A")
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=T", "commit", "-qm", "x")
    return root


def test_a_failing_unit_test_refuses_the_commit_and_says_why(tmp_path):
    root = repo_with_test(tmp_path / "repo", FAILING)
    log: list[str] = []
    with pytest.raises(ReleaseError) as info:
        run_checks(root, [PYTEST], env=QUIET_ENV, log=log.append)
    message = str(info.value)
    head = git(root, "rev-parse", "HEAD")[:12]
    assert message.startswith(f"refusing to release commit {head}: `{' '.join(PYTEST)}` failed")
    assert "publishes only a commit whose lint and unit tests pass" in message
    assert "arithmetic is broken" in message  # the failure itself, from pytest's output
    assert log == [f"gate: running `{' '.join(PYTEST)}` on {head}"]


def test_passing_checks_are_timed(tmp_path):
    root = repo_with_test(tmp_path / "repo", PASSING)
    result = run_checks(root, [PYTEST, ("git", "status")], env=QUIET_ENV, log=print)
    assert result.commit == git(root, "rev-parse", "HEAD")
    assert list(result.seconds) == [" ".join(PYTEST), "git status"]


def test_checks_never_see_the_publishing_secrets(tmp_path):
    root = repo_with_test(tmp_path / "repo", PASSING)
    env = {
        "PATH": "/usr/bin:/bin",
        "GITHUB_TOKEN": "t",
        "REGISTRY_PASSWORD": "p",
        "COSIGN_PASSWORD": "c",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "o",
        "BROKKR_RELEASE_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "KEEP_ME": "yes",
    }
    probe = (
        sys.executable,
        "-c",
        "import os, sys; names = {'GITHUB_TOKEN', 'REGISTRY_PASSWORD', 'COSIGN_PASSWORD', "
        "'ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'BROKKR_RELEASE_WEBHOOK_URL'}; "
        "sys.exit(1 if names & set(os.environ) or os.environ.get('KEEP_ME') != 'yes' else 0)",
    )
    run_checks(root, [probe], env=env, log=print)


def test_checks_that_dirty_the_tree_are_refused(tmp_path):
    root = repo_with_test(tmp_path / "repo", PASSING)
    scribble = (sys.executable, "-c", "open('generated.txt', 'w').write('x')")
    with pytest.raises(ReleaseError, match="the checks changed the checkout"):
        run_checks(root, [scribble], env=QUIET_ENV, log=print)
