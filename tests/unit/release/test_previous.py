"""Which build stands for the previous release (N-1) in the upgrade tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from brokkr_dev.base import paths
from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version, parse
from tests.fixtures.previous_release import (
    PINNED_COMMIT,
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
def test_without_a_tag_the_pinned_commit_is_released_as_the_version_below(current, expected):
    assert choose(parse(current), set()) == PreviousRelease(parse(expected), None, PINNED_COMMIT)


def test_version_zero_has_no_predecessor():
    with pytest.raises(ReleaseError, match="no version below 0.0.0"):
        stamped_version(Version(0, 0, 0))


def test_the_highest_stable_tag_below_the_current_version_wins():
    released = {parse(t) for t in ("v0.9.0", "v1.0.0", "v1.0.1", "v1.1.0-rc.1", "v1.1.0", "v2.0.0")}
    assert choose(parse("v1.2.0"), released) == PreviousRelease(parse("v1.1.0"), "v1.1.0")
    # a prerelease of the next version is not a release an operator runs
    assert choose(parse("v1.1.0"), released).tag == "v1.0.1"
    # tags only above the current version: nothing earlier, so the pinned commit
    assert choose(parse("v0.1.0"), {parse("v2.0.0")}).commit == PINNED_COMMIT


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
    assert find(repo).commit == PINNED_COMMIT  # no tag: the pin
    git(repo, "tag", "-a", "v1.1.0", "-m", "v1.1.0")
    (repo / "code.py").write_text("released = False  # after the tag\n")
    previous = find(repo)
    assert previous == PreviousRelease(parse("v1.1.0"), "v1.1.0")
    scratch = scratch_checkout(repo, previous, tmp_path / "scratch")
    assert (scratch / "code.py").read_text() == "released = True\n"
    assert git(scratch, "status", "--porcelain") == ""


def test_without_a_tag_the_pinned_commit_is_built_reproducibly_not_the_work_tree(
    repo: Path, tmp_path: Path
):
    pinned = git(repo, "rev-parse", "HEAD")
    (repo / "code.py").write_text("released = False\n")
    git(repo, "commit", "-qam", "two")
    (repo / "code.py").write_text("uncommitted = 1\n")
    previous = choose(parse("v1.2.0"), set(), pinned)
    first = scratch_checkout(repo, previous, tmp_path / "a")
    second = scratch_checkout(repo, previous, tmp_path / "b")
    assert (first / "code.py").read_text() == "released = True\n"  # the pinned commit's
    # same files, same commit: the image tags (sha-<commit>) and layer cache repeat
    assert git(first, "rev-parse", "HEAD") == git(second, "rev-parse", "HEAD")
    assert git(first, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached


def test_a_pin_missing_from_the_clone_says_to_fetch_the_history(repo: Path, tmp_path: Path):
    previous = choose(parse("v1.2.0"), set(), "0" * 40)
    with pytest.raises(ReleaseError, match=r"not in the clone .*`git fetch --unshallow --tags`"):
        scratch_checkout(repo, previous, tmp_path / "scratch")


def changed(*parts: str) -> list[str]:
    """Files that differ between the pinned commit and HEAD under a path."""
    return git(paths.REPO_ROOT, "diff", "--name-only", PINNED_COMMIT, "HEAD", "--", *parts).split()


def test_the_pinned_commit_is_older_code_of_main_with_a_different_broker_agent_and_charts():
    root = paths.REPO_ROOT
    present = subprocess.run(
        ["git", "-C", str(root), "cat-file", "-e", f"{PINNED_COMMIT}^{{commit}}"], check=False
    )
    assert present.returncode == 0, (
        f"the pinned N-1 commit {PINNED_COMMIT[:12]} is not in this clone: the tests need "
        "the whole history (`git fetch --unshallow`; in Actions, checkout's fetch-depth: 0)"
    )
    assert git(root, "merge-base", "--is-ancestor", PINNED_COMMIT, "HEAD") == ""  # exit 0
    assert git(root, "rev-parse", "HEAD") != PINNED_COMMIT
    assert changed("src/brokkr/broker"), "the pinned broker is today's: pin an older commit"
    assert changed("src/brokkr/agent"), "the pinned agent is today's: pin an older commit"
    assert changed("charts/brokkr-broker") and changed("charts/brokkr-agent")
    # Migrations are append-only: N-1's are today's first ones, unchanged.
    assert not [f for f in changed("src/brokkr/broker/db/migrations") if not f.endswith(".sql")]
    old = git(root, "ls-tree", "--name-only", PINNED_COMMIT, "src/brokkr/broker/db/migrations/")
    for name in old.split():
        assert git(root, "diff", "--name-only", PINNED_COMMIT, "HEAD", "--", name) == "", name
