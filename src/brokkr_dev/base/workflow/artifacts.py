"""The artifacts of one workflow run, as actions/upload-artifact and download-artifact
(v4) keep them: named sets of files that later jobs of the same run fetch.

Unlike a cache entry, an artifact does not outlive its run here: the player keeps
them in a folder made when the play starts and removed when it ends (GitHub keeps
them for the run's page too, which the player has none of). A run's artifact names
are unique; fetching a name nobody uploaded fails, as it does on GitHub.

Which files a `path:` selects follows the upload action: each line is a file, a
folder (all files under it) or a glob (`*` within one folder, `**` across them); `!`
lines exclude; hidden files (a name starting with `.` below the searched folder) are
left out unless asked for. The artifact's root is the searched folder, a lone file's
folder, or the deepest folder common to several searched paths.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base.errors import AutomationError

# Characters GitHub refuses in an artifact name.
FORBIDDEN_IN_NAME = '"<>|*?:\\/\r\n'
GLOB_CHARS = frozenset("*?[")


class ArtifactError(AutomationError):
    """An upload or download that fails on GitHub too; the message says why and the fix."""


@dataclass(frozen=True)
class Selection:
    """The files a `path:` input selects, and the folder their names are relative to."""

    files: tuple[Path, ...]
    root: Path


def select(lines: list[str], workspace: Path, home: Path, hidden: bool = False) -> Selection:
    """The files `lines` (a `path:` input, split) name, as the upload action finds them."""
    includes: list[Path] = []
    excludes: list[re.Pattern[str]] = []
    for line in lines:
        path = Path(os.path.normpath(workspace / expand_home(line.removeprefix("!"), home)))
        if line.startswith("!"):
            excludes.append(_glob_pattern(str(path)))
        else:
            includes.append(path)
    searched = _search_roots(includes)
    found: dict[Path, None] = {}  # ordered, unique
    for pattern in includes:
        root = _search_root(pattern)
        for match in _matches(pattern):
            for file in _files_under(match):
                relative = file.relative_to(root).parts if file.is_relative_to(root) else ()
                if not hidden and any(part.startswith(".") for part in relative):
                    continue
                if any(_excluded(file, exclude) for exclude in excludes):
                    continue
                found[file] = None
    files = tuple(found)
    if len(searched) > 1:
        root = Path(os.path.commonpath([str(path) for path in searched]))
    elif searched and len(files) == 1 and files[0] == searched[0]:
        root = files[0].parent  # a lone file is stored without its folders
    else:
        root = searched[0] if searched else workspace
    return Selection(files, root)


def expand_home(written: str, home: Path) -> Path:
    """`~` and `~/...` as the actions read them: the runner user's home."""
    return home / written[2:] if written == "~" or written.startswith("~/") else Path(written)


def _search_root(pattern: Path) -> Path:
    """The pattern's leading folders before its first glob character."""
    plain = []
    for part in pattern.parts:
        if GLOB_CHARS & set(part):
            break
        plain.append(part)
    return Path(*plain)


def _search_roots(includes: list[Path]) -> list[Path]:
    """One per include, leaving out any inside another (they add no new root)."""
    roots = sorted({_search_root(path) for path in includes}, key=lambda path: len(path.parts))
    kept: list[Path] = []
    for root in roots:
        if not any(root.is_relative_to(other) for other in kept):
            kept.append(root)
    return kept


def _matches(pattern: Path) -> list[Path]:
    if GLOB_CHARS & set(str(pattern)):
        return [Path(match) for match in sorted(glob.glob(str(pattern), recursive=True))]
    return [pattern] if pattern.exists() else []


def _files_under(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(file for file in path.rglob("*") if file.is_file())
    return [path] if path.is_file() else []


def _glob_pattern(pattern: str) -> re.Pattern[str]:
    """A path glob as a regular expression: `**` crosses folders, `*` and `?` do not."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    translated = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(translated.get(part, re.escape(part)) for part in parts))


def _excluded(file: Path, exclude: re.Pattern[str]) -> bool:
    """An exclusion covers the file itself or any folder above it."""
    return any(exclude.fullmatch(str(path)) for path in (file, *file.parents))


class ArtifactStore:
    """`<root>/<quoted name>/`: one folder per artifact, its files under their names.
    An artifact is complete once renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            urllib.parse.unquote(entry.name)
            for entry in self.root.iterdir()
            if not entry.name.startswith(".")
        )

    def upload(self, name: str, selection: Selection, overwrite: bool = False) -> int:
        """Store the selected files as `name`; returns the artifact's number in the run."""
        check_name(name)
        final = self._entry(name)
        if final.exists() and not overwrite:
            raise ArtifactError(
                f"an artifact named {name!r} was already uploaded in this run (names are "
                "unique per run): give this one another name, or set `overwrite: true`"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.root / f".{final.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        for file in selection.files:
            target = partial / file.relative_to(selection.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
        partial.mkdir(exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        return self.names().index(name) + 1

    def download(self, name: str, destination: Path) -> None:
        """Copy artifact `name`'s files into `destination` (existing files are replaced)."""
        entry = self._entry(name)
        if not entry.is_dir():
            uploaded = ", ".join(self.names()) or "none"
            raise ArtifactError(
                f"Unable to download artifact(s): Artifact not found for name: {name} "
                f"(uploaded in this run so far: {uploaded}). Upload it in a job this one "
                "`needs:`, or correct the name"
            )
        shutil.copytree(entry, destination, dirs_exist_ok=True)

    def _entry(self, name: str) -> Path:
        return self.root / urllib.parse.quote(name, safe="")


def check_name(name: str) -> None:
    bad = sorted({char for char in name if char in FORBIDDEN_IN_NAME})
    if not name or bad:
        shown = " ".join(repr(char) for char in bad) or "(empty)"
        raise ArtifactError(
            f"artifact name {name!r} is not allowed ({shown}); a name may not be empty "
            f"or hold any of {' '.join(repr(char) for char in FORBIDDEN_IN_NAME)}"
        )
