"""Write a release version into the files that carry it, keeping their formatting.

pyproject.toml's `[project] version` (and the project's own entry in uv.lock, or
`uv sync --locked` refuses the stamped commit), and in each chart's Chart.yaml
`version` and `appVersion` (kept in lockstep with the Python package). A chart-only fix bumps the
chart's patch version and keeps `appVersion`, so the chart still deploys the same
images. Edits are line-based so that comments and key order survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import semver
from packaging.version import Version as Pep440

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version

CHART_NAMES = ("brokkr-broker", "brokkr-agent")

_PROJECT_VERSION = re.compile(r'^(version\s*=\s*")([^"]*)(")', re.MULTILINE)
_SECTION = re.compile(r"^\[([^\]]+)\]\s*$", re.MULTILINE)
# The project itself in uv.lock: the package whose source is the repository root.
_LOCK_PROJECT = re.compile(
    r'^\[\[package\]\]\nname = "(?P<name>[^"]+)"\nversion = "(?P<version>[^"]*)"\n'
    r'source = \{ (?:editable|virtual) = "\." \}',
    re.MULTILINE,
)


@dataclass(frozen=True)
class FileChange:
    """One field that stamping changes (or would change, in a dry run)."""

    path: Path
    field: str
    old: str
    new: str

    def describe(self, root: Path) -> str:
        shown = self.path.relative_to(root) if self.path.is_relative_to(root) else self.path
        return f"{shown}: {self.field} {self.old} -> {self.new}"


def _project_span(text: str, path: Path) -> tuple[int, int]:
    sections = list(_SECTION.finditer(text))
    for index, match in enumerate(sections):
        if match.group(1).strip() == "project":
            end = sections[index + 1].start() if index + 1 < len(sections) else len(text)
            return match.end(), end
    raise ReleaseError(f"{path} has no [project] table; is this Brokkr's pyproject.toml?")


def read_project_version(pyproject: Path) -> str:
    """The `[project] version` of pyproject.toml."""
    text = pyproject.read_text()
    start, end = _project_span(text, pyproject)
    match = _PROJECT_VERSION.search(text, start, end)
    if match is None:
        raise ReleaseError(f'{pyproject}: [project] has no `version = "..."` line')
    return match.group(2)


def stamp_project(pyproject: Path, version: Version, write: bool) -> list[FileChange]:
    """Set `[project] version` to the release version; returns the change, if any."""
    text = pyproject.read_text()
    start, end = _project_span(text, pyproject)
    match = _PROJECT_VERSION.search(text, start, end)
    if match is None:
        raise ReleaseError(f'{pyproject}: [project] has no `version = "..."` line')
    if match.group(2) == version.plain:
        return []
    if write:
        pyproject.write_text(text[: match.start(2)] + version.plain + text[match.end(2) :])
    return [FileChange(pyproject, "[project] version", match.group(2), version.plain)]


def stamp_lock(lock: Path, version: Version, write: bool) -> list[FileChange]:
    """Set the project's own version in uv.lock (PEP 440 form, as uv writes it)."""
    if not lock.is_file():
        return []
    text = lock.read_text()
    match = _LOCK_PROJECT.search(text)
    if match is None:
        raise ReleaseError(
            f'{lock} has no entry for the project itself (source "."); run `uv lock` and commit'
        )
    wanted = str(Pep440(version.plain))  # 1.3.0-rc.1 -> 1.3.0rc1
    if match["version"] == wanted:
        return []
    if write:
        lock.write_text(text[: match.start("version")] + wanted + text[match.end("version") :])
    return [FileChange(lock, f"{match['name']} version", match["version"], wanted)]


def _chart_field(text: str, key: str) -> re.Match[str] | None:
    return re.search(rf"^({key}:[ \t]*)([\"']?)([^\"'\s#]*)([\"']?)", text, re.MULTILINE)


def read_chart(chart_yaml: Path) -> dict[str, str]:
    """The chart's `name`, `version` and `appVersion` (missing ones are absent)."""
    if not chart_yaml.is_file():
        raise ReleaseError(f"{chart_yaml} does not exist; expected a Helm chart there")
    text = chart_yaml.read_text()
    found = {}
    for key in ("name", "version", "appVersion"):
        match = _chart_field(text, key)
        if match:
            found[key] = match.group(3)
    return found


def _set_chart(chart_yaml: Path, values: dict[str, str], write: bool) -> list[FileChange]:
    text = chart_yaml.read_text()
    changes = []
    for key, new in values.items():
        match = _chart_field(text, key)
        if match is None:
            raise ReleaseError(f"{chart_yaml} has no top-level `{key}:`; add `{key}: {new}`")
        if match.group(3) == new:
            continue
        # appVersion is a string (it is quoted so YAML never reads 1.10 as a float).
        quote = match.group(2) or ('"' if key == "appVersion" else "")
        text = text[: match.start(2)] + quote + new + quote + text[match.end(4) :]
        changes.append(FileChange(chart_yaml, key, match.group(3), new))
    if write and changes:
        chart_yaml.write_text(text)
    return changes


def stamp_chart(chart_dir: Path, version: Version, write: bool) -> list[FileChange]:
    """Set the chart's `version` and `appVersion` to the release version."""
    return _set_chart(
        chart_dir / "Chart.yaml", {"version": version.plain, "appVersion": version.plain}, write
    )


def bump_chart_patch(chart_dir: Path, write: bool) -> list[FileChange]:
    """A chart-only fix: the next patch version of the chart, `appVersion` unchanged."""
    chart_yaml = chart_dir / "Chart.yaml"
    current = read_chart(chart_yaml).get("version")
    if not current:
        raise ReleaseError(f"{chart_yaml} has no `version:` to bump")
    try:
        parsed = semver.Version.parse(current)
    except ValueError as exc:
        raise ReleaseError(f"{chart_yaml}: version {current!r} is not semver ({exc})") from exc
    if parsed.prerelease:
        raise ReleaseError(
            f"{chart_yaml}: version {current} is a prerelease; release the final version "
            "before bumping the chart alone"
        )
    return _set_chart(chart_yaml, {"version": str(parsed.bump_patch())}, write)


def stamp_all(root: Path, version: Version, charts_dir: Path, write: bool) -> list[FileChange]:
    """Stamp pyproject.toml and every chart; with write=False, only report the changes."""
    changes = stamp_project(root / "pyproject.toml", version, write)
    changes += stamp_lock(root / "uv.lock", version, write)
    for name in CHART_NAMES:
        changes += stamp_chart(charts_dir / name, version, write)
    return changes
