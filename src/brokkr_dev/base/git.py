"""The git facts the automation reads (HEAD, branch, tags, history), through one `git()`."""

from __future__ import annotations

from pathlib import Path

from brokkr_dev.base.commands import run

HINT = "the automation works on a git checkout with at least one commit; install git with `invoke system.install`"


def git(
    root: Path,
    *args: str,
    check: bool = True,
    strip: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    """Run git in `root` and return its stdout (stripped unless strip=False).

    A failure raises `CommandError`; with check=False a failed command returns its
    (usually empty) stdout instead.
    """
    done = run(["git", "-C", str(root), *args], env=env, timeout=60, check=check, hint=HINT)
    return done.stdout.strip() if strip else done.stdout


def tags(root: Path, pattern: str) -> list[str]:
    """The tags matching a glob pattern."""
    return git(root, "tag", "--list", pattern).split()


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


def commits(root: Path, since: str | None) -> list[tuple[str, str]]:
    """(short sha, subject) of each commit after `since` up to HEAD, newest first."""
    span = f"{since}..HEAD" if since else "HEAD"
    out = git(root, "log", "--no-merges", "--format=%h%x00%s", span)
    return [tuple(line.split("\x00", 1)) for line in out.splitlines() if "\x00" in line]  # type: ignore[misc]
