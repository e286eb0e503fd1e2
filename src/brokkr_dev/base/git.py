"""The few git facts a release needs, read with the git CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version, parse_released


def git(root: Path, *args: str, check: bool = True, strip: bool = True) -> str:
    """Run git in `root` and return its stdout (stripped unless strip=False)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ReleaseError("git is not installed; run `invoke system.install`") from exc
    if check and result.returncode != 0:
        raise ReleaseError(f"`git {' '.join(args)}` failed in {root}: {result.stderr.strip()}")
    return result.stdout.strip() if strip else result.stdout


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD")


def branch(root: Path) -> str | None:
    """The current branch, or None on a detached HEAD (as in CI tag builds)."""
    name = git(root, "rev-parse", "--abbrev-ref", "HEAD")
    return None if name == "HEAD" else name


def dirty_paths(root: Path) -> list[str]:
    """Modified, staged and untracked (not ignored) paths."""
    return [
        line[3:] for line in git(root, "status", "--porcelain", strip=False).splitlines() if line
    ]


def tag_commit(root: Path, tag: str) -> str | None:
    """The commit a tag points at, or None when the tag does not exist."""
    found = git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
    return found or None


def released_tags(root: Path) -> set[Version]:
    return parse_released(git(root, "tag", "--list", "v*").split())


def previous_release(root: Path, version: Version) -> Version | None:
    """The release whose notes end where this one's begin.

    The highest tagged version below this one; prereleases count only for a
    prerelease, so v1.1.0's notes cover everything since v1.0.x, rc's included.
    """
    candidates = [
        v
        for v in released_tags(root)
        if v < version and (version.is_prerelease or not v.is_prerelease)
    ]
    return max(candidates, default=None)


def commits(root: Path, since: str | None) -> list[tuple[str, str]]:
    """(short sha, subject) of each commit after `since` up to HEAD, newest first."""
    span = f"{since}..HEAD" if since else "HEAD"
    out = git(root, "log", "--no-merges", "--format=%h%x00%s", span)
    return [tuple(line.split("\x00", 1)) for line in out.splitlines() if "\x00" in line]  # type: ignore[misc]
