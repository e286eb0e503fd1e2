"""Which build stands for the previous release (N-1) in the upgrade tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version, parse
from tests.fixtures.previous_release import (
    PreviousRelease,
    choose,
    find,
    scratch_checkout,
    stamped_version,
)


@pytest.mark.parametrize(
    ("current", "expected"),
    [("v0.1.0", "v0.0.0"), ("v1.4.2", "v1.3.0"), ("v0.0.3", "v0.0.2"), ("v2.0.0", "v1.0.0")],
)
def test_without_a_tag_the_working_tree_stands_in_for_the_version_below(current, expected):
    assert choose(parse(current), set()) == PreviousRelease(parse(expected), None)


def test_version_zero_has_no_predecessor():
    with pytest.raises(ReleaseError, match="no version below 0.0.0"):
        stamped_version(Version(0, 0, 0))


def test_the_highest_stable_tag_below_the_current_version_wins():
    released = {parse(t) for t in ("v0.9.0", "v1.0.0", "v1.0.1", "v1.1.0-rc.1", "v1.1.0", "v2.0.0")}
    assert choose(parse("v1.2.0"), released) == PreviousRelease(parse("v1.1.0"), "v1.1.0")
    # a prerelease of the next version is not a release an operator runs
    assert choose(parse("v1.1.0"), released).tag == "v1.0.1"
    # tags only above the current version: nothing earlier, so the stamped stand-in
    assert choose(parse("v0.1.0"), {parse("v2.0.0")}) == PreviousRelease(parse("v0.0.0"), None)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / ".gitignore").write_text("ignored.txt\n")
    (root / "pyproject.toml").write_text('[project]\nname = "brokkr"\nversion = "1.2.0"\n')
    (root / "code.py").write_text("released = True\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    return root


def test_a_real_tag_is_picked_and_its_tree_is_built(repo: Path, tmp_path: Path):
    assert find(repo) == PreviousRelease(parse("v1.1.0"), None)
    git(repo, "tag", "-a", "v1.1.0", "-m", "v1.1.0")
    (repo / "code.py").write_text("released = False  # after the tag\n")
    previous = find(repo)
    assert previous == PreviousRelease(parse("v1.1.0"), "v1.1.0")
    scratch = scratch_checkout(repo, previous, tmp_path / "scratch")
    assert (scratch / "code.py").read_text() == "released = True\n"
    assert git(scratch, "status", "--porcelain") == ""


def test_without_a_tag_the_work_tree_is_copied_with_a_reproducible_commit(
    repo: Path, tmp_path: Path
):
    (repo / "code.py").write_text("uncommitted = 1\n")
    (repo / "new.py").write_text("untracked = 1\n")
    (repo / "ignored.txt").write_text("not part of a build\n")
    previous = find(repo)
    first = scratch_checkout(repo, previous, tmp_path / "a")
    second = scratch_checkout(repo, previous, tmp_path / "b")
    assert (first / "code.py").read_text() == "uncommitted = 1\n"
    assert (first / "new.py").exists() and not (first / "ignored.txt").exists()
    # same files, same commit: the image tags (sha-<commit>) and layer cache repeat
    assert git(first, "rev-parse", "HEAD") == git(second, "rev-parse", "HEAD")
    assert git(first, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
