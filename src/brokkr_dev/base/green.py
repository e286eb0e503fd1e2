"""Records of green runs: which of the release's checks passed on which git tree.

A session that the release gate needs (lint, tests, e2e-kind, scan) writes one
small JSON file when it passes, keyed by `git rev-parse HEAD^{tree}`: the content
that was checked, whatever commit carries it. It writes it only when

- the session ran in full (no pytest selection, the release-mode image scan),
- the work tree was clean (nothing modified, staged or untracked) when the session
  started, and still is, on the same tree, when it ends green.

`begin` notes the tree at the start; `finish`, called only after every step of the
session passed, writes the record. The release gate (release/testgate.py) reads
the records of the tree it is about to publish and names each check without one.
The records live in the machine's cache (shared by its clones: the key is the
content), or in $BROKKR_GREEN_DIR (e.g. a directory CI jobs pass on as artifacts).
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import git, paths
from brokkr_dev.base.errors import AutomationError

RECORDS_ENV = "BROKKR_GREEN_DIR"
# Each check the release gate requires, and the one command that runs it in full.
CHECKS: dict[str, str] = {
    "lint": "scripts/nox -s lint",
    "tests": "scripts/nox -s tests",
    "e2e-kind": "scripts/nox -s e2e-kind",
    "scan": "scripts/nox -s scan -- --images --mode release",
}
REQUIRED: tuple[str, ...] = tuple(CHECKS)
# The scan's only full form: this revision's images, every source answering.
SCAN_ARGS = ({"--images", "--mode", "release"}, {"--images", "--mode=release"})


class GreenRecordError(AutomationError):
    """A record cannot be written or read as asked; the message says why."""


@dataclass(frozen=True)
class Record:
    """One green run of one check on one tree."""

    check: str
    tree: str
    commit: str
    command: str
    finished: str
    host: str


def records_dir() -> Path:
    """Where the records are: $BROKKR_GREEN_DIR, else <cache>/green."""
    explicit = os.environ.get(RECORDS_ENV)
    return Path(explicit) if explicit else paths.cache_dir() / "green"


def pending_dir() -> Path:
    """Per-clone notes of sessions that started on a clean tree and have not ended."""
    return paths.state_dir() / "green-pending"


def clean_tree(root: Path) -> str | None:
    """HEAD's tree when the work tree is exactly HEAD (nothing dirty or untracked)."""
    if git.dirty_paths(root):
        return None
    return git.git(root, "rev-parse", "HEAD^{tree}")


def not_full(check: str, args: list[str]) -> str | None:
    """Why a session with these arguments is not the full check (None when it is)."""
    if check not in CHECKS:
        raise GreenRecordError(f"unknown check {check!r}; choose from {', '.join(CHECKS)}")
    if check == "scan":
        if set(args) in SCAN_ARGS and len(args) == len(set(args)):
            return None
        return f"only `{CHECKS['scan']}` is the release's scan, not `-- {shlex.join(args)}`"
    if args:
        return f"a run with arguments (`-- {shlex.join(args)}`) is not the whole {check} session"
    return None


def _record_path(directory: Path, tree: str, check: str) -> Path:
    return directory / f"{tree}.{check}.json"


def begin(check: str, args: list[str], root: Path = paths.REPO_ROOT) -> str:
    """Note the tree this session starts on, if its green end may be recorded."""
    why_not = not_full(check, args)
    tree = clean_tree(root)
    if tree is None and why_not is None:
        why_not = "the work tree has uncommitted or untracked files: commit them first"
    directory = pending_dir()
    directory.mkdir(parents=True, exist_ok=True)
    note = {"check": check, "tree": None if why_not else tree, "why_not": why_not}
    (directory / f"{check}.json").write_text(json.dumps(note))
    if why_not:
        return f"green record: none will be written for {check}: {why_not}"
    return f"green record: {check} on tree {tree} will be recorded if the session passes"


def finish(check: str, root: Path = paths.REPO_ROOT) -> str:
    """Write the record of a session that passed: only on the tree noted by `begin`."""
    note_path = pending_dir() / f"{check}.json"
    try:
        note = json.loads(note_path.read_text())
    except (OSError, ValueError):
        raise GreenRecordError(
            f"no start of a {check} session was noted; a record is written only by the "
            "session itself"
        ) from None
    note_path.unlink()
    if note.get("check") != check or not note.get("tree"):
        return f"green record: none written for {check}: {note.get('why_not') or 'no tree'}"
    tree = clean_tree(root)
    if tree is None or tree != note["tree"]:
        return (
            f"green record: none written for {check}: the work tree changed during the "
            f"session (started on {note['tree']}, now {tree or 'dirty'})"
        )
    record = Record(
        check=check,
        tree=tree,
        commit=git.head(root),
        command=CHECKS[check],
        finished=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        host=socket.gethostname(),
    )
    directory = records_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = _record_path(directory, tree, check)
    path.write_text(json.dumps(record.__dict__, indent=1) + "\n")
    return f"green record: {check} passed on tree {tree}: {path}"


def read(tree: str, check: str, directory: Path | None = None) -> Record | None:
    """The record of `check` on `tree`, or None (a file for another tree or check,
    or an unreadable one, counts as none)."""
    path = _record_path(directory or records_dir(), tree, check)
    try:
        record = Record(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if record.tree != tree or record.check != check or record.command != CHECKS.get(check):
        return None
    return record


def missing(
    root: Path, checks: tuple[str, ...] = REQUIRED, directory: Path | None = None
) -> list[str]:
    """Each required check without a green record for the tree at HEAD, with its fix.

    A work tree that is not exactly HEAD has no such tree: every check is missing.
    """
    if not checks:
        return []
    tree = clean_tree(root)
    if tree is None:
        return [
            "the work tree has uncommitted or untracked files, so no green run covers it: "
            "commit or remove them"
        ]
    return [
        f"{check}: no green record for tree {tree[:12]}: run `{CHECKS[check]}` on this "
        "commit with a clean work tree"
        for check in checks
        if read(tree, check, directory) is None
    ]
