"""The test gate: green records of every check for this tree, then the checks it runs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from brokkr_dev.base import green, paths
from brokkr_dev.release import ReleaseError
from brokkr_dev.release.plan import Options
from brokkr_dev.release.testgate import require_records, run_checks
from brokkr_dev.release.version import parse

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
        "BROKKR_HELM_KEY_PASSPHRASE": "h",
        "KEEP_ME": "yes",
    }
    probe = (
        sys.executable,
        "-c",
        "import os, sys; names = {'GITHUB_TOKEN', 'REGISTRY_PASSWORD', 'COSIGN_PASSWORD', "
        "'ACTIONS_ID_TOKEN_REQUEST_TOKEN', 'BROKKR_RELEASE_WEBHOOK_URL', "
        "'BROKKR_HELM_KEY_PASSPHRASE'}; "
        "sys.exit(1 if names & set(os.environ) or os.environ.get('KEEP_ME') != 'yes' else 0)",
    )
    run_checks(root, [probe], env=env, log=print)


def test_checks_that_dirty_the_tree_are_refused(tmp_path):
    root = repo_with_test(tmp_path / "repo", PASSING)
    scribble = (sys.executable, "-c", "open('generated.txt', 'w').write('x')")
    with pytest.raises(ReleaseError, match="the checks changed the checkout"):
        run_checks(root, [scribble], env=QUIET_ENV, log=print)


# --- green records: the checks CI runs, looked up by the tree they passed on ----------


@pytest.fixture
def records(tmp_path, monkeypatch) -> Path:
    """Record and pending directories of this test only."""
    monkeypatch.setenv(green.RECORDS_ENV, str(tmp_path / "green"))
    monkeypatch.setenv("BROKKR_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "green"


def passed(root: Path, check: str, args: list[str] | None = None) -> str:
    """What a session's wrapper does around a run that passed."""
    green.begin(check, args or [], root)
    return green.finish(check, root)


def tree_of(root: Path) -> str:
    return git(root, "rev-parse", "HEAD^{tree}")


def test_the_default_gate_requires_a_green_record_of_every_check_ci_runs(tmp_path, records):
    assert Options(version=parse("v1.0.0")).records == ("lint", "tests", "e2e-kind", "scan")
    root = repo_with_test(tmp_path / "repo", PASSING)
    with pytest.raises(ReleaseError) as info:
        require_records(root, Options(version=parse("v1.0.0")).records)
    message = str(info.value)
    tree = tree_of(root)[:12]
    for check, command in [
        ("lint", "scripts/nox -s lint"),
        ("tests", "scripts/nox -s tests"),
        ("e2e-kind", "scripts/nox -s e2e-kind"),
        ("scan", "scripts/nox -s scan -- --images --mode release"),
    ]:
        assert f"  - {check}: no green record for tree {tree}: run `{command}`" in message
    for check in green.REQUIRED[:-1]:
        passed(root, check)
    with pytest.raises(ReleaseError, match=r"missing:\n  - scan: no green record") as info:
        require_records(root, green.REQUIRED)
    assert "lint:" not in str(info.value) and "e2e-kind:" not in str(info.value)
    assert "will not" not in passed(root, "scan", ["--images", "--mode", "release"])
    require_records(root, green.REQUIRED)  # every record, this tree: the gate lets it through


@pytest.mark.parametrize(
    ("check", "args"),
    [
        ("tests", ["-k", "broker"]),
        ("tests", ["tests/unit"]),
        ("e2e-kind", ["-x"]),
        ("scan", []),
        ("scan", ["--images", "--mode", "ci", "--tolerate-not-scanned", "trivy-vuln"]),
        ("scan", ["--images", "--mode", "release", "--tag", "sha-0000000"]),
    ],
)
def test_a_partial_run_writes_no_record(tmp_path, records, check, args):
    root = repo_with_test(tmp_path / "repo", PASSING)
    assert "none will be written" in green.begin(check, args, root)
    assert "none written" in green.finish(check, root)
    assert not records.exists() or not list(records.iterdir())
    with pytest.raises(ReleaseError, match=f"  - {check}: no green record"):
        require_records(root, (check,))


def test_a_tree_that_is_dirty_at_the_start_or_made_dirty_gets_no_record(tmp_path, records):
    root = repo_with_test(tmp_path / "repo", PASSING)
    (root / "scratch.txt").write_text("untracked")
    assert "uncommitted or untracked" in green.begin("lint", [], root)
    (root / "scratch.txt").unlink()  # clean again by the end: still no record
    assert "none written" in green.finish("lint", root)
    green.begin("lint", [], root)
    (root / "tests" / "test_math.py").write_text(FAILING)  # the session changed a file
    assert "the work tree changed during the session" in green.finish("lint", root)
    (root / "tests" / "test_math.py").write_text(PASSING)
    with pytest.raises(ReleaseError, match="lint: no green record"):
        require_records(root, ("lint",))


def test_a_dirty_tree_is_refused_even_with_every_record_of_head(tmp_path, records):
    root = repo_with_test(tmp_path / "repo", PASSING)
    for check in green.REQUIRED:
        passed(root, check, ["--images", "--mode", "release"] if check == "scan" else [])
    require_records(root)
    (root / "tests" / "test_math.py").write_text(FAILING)
    with pytest.raises(ReleaseError, match="uncommitted or untracked files"):
        require_records(root)


def test_another_trees_record_is_refused(tmp_path, records):
    root = repo_with_test(tmp_path / "repo", PASSING)
    passed(root, "lint")
    old_tree = tree_of(root)
    (root / "tests" / "test_more.py").write_text(PASSING)
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=T", "commit", "-qm", "y")
    with pytest.raises(ReleaseError, match="lint: no green record"):
        require_records(root, ("lint",))  # the new commit's tree has never passed
    # A record copied under the new tree's name still says which tree it was for.
    old = records / f"{old_tree}.lint.json"
    (records / f"{tree_of(root)}.lint.json").write_text(old.read_text())
    with pytest.raises(ReleaseError, match="lint: no green record"):
        require_records(root, ("lint",))
    # So does a record of another check.
    (records / f"{tree_of(root)}.lint.json").write_text(
        json.dumps({**json.loads(old.read_text()), "tree": tree_of(root), "check": "unit"})
    )
    with pytest.raises(ReleaseError, match="lint: no green record"):
        require_records(root, ("lint",))


def test_a_record_is_written_only_after_its_session_began(tmp_path, records):
    root = repo_with_test(tmp_path / "repo", PASSING)
    with pytest.raises(green.GreenRecordError, match="no start of a tests session"):
        green.finish("tests", root)


def test_every_gated_session_is_wrapped_by_the_record_writer():
    """The sessions in noxfile.py write the records the gate reads: each one's body
    runs inside `green_record(session, "<check>")`."""
    tree = ast.parse((paths.REPO_ROOT / "noxfile.py").read_text())
    wrapped = {
        node.items[0].context_expr.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.With)
        and ast.unparse(node.items[0].context_expr).startswith("green_record(session, ")
    }
    assert wrapped == set(green.REQUIRED)
