"""Release versions: semantic versions written with a `v` prefix (v1.2.3, v1.3.0-rc.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from pathlib import Path

import semver

from brokkr_dev.base import git
from brokkr_dev.release import ReleaseError

# A full release tag as it appears in git and in the registry.
_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


@total_ordering
@dataclass(frozen=True)
class Version:
    """A release version; ordered by semantic-version precedence."""

    major: int
    minor: int
    patch: int
    prerelease: str | None = None

    @property
    def tag(self) -> str:
        """The git and image tag: `v1.2.3` or `v1.2.3-rc.1`."""
        return f"v{self.plain}"

    @property
    def plain(self) -> str:
        """Without the `v`: what pyproject.toml and Chart.yaml hold."""
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.prerelease}" if self.prerelease else core

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease is not None

    def _semver(self) -> semver.Version:
        return semver.Version(self.major, self.minor, self.patch, self.prerelease)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._semver() < other._semver()

    def __str__(self) -> str:
        return self.tag


def parse(text: str) -> Version:
    """Parse `vX.Y.Z[-pre]`, refusing anything else with the reason and an example."""
    candidate = text.strip()
    if not candidate.startswith("v"):
        hint = f"v{candidate}" if candidate[:1].isdigit() else "v1.2.3"
        raise ReleaseError(
            f"release version {text!r} must start with 'v' (semantic version with a v prefix), "
            f"e.g. {hint}"
        )
    if "+" in candidate:
        raise ReleaseError(
            f"release version {text!r} has build metadata ('+...'); registries do not allow "
            "'+' in tags and semver ignores it for ordering: drop it, e.g. "
            f"{candidate.split('+', 1)[0]}"
        )
    try:
        parsed = semver.Version.parse(candidate[1:])
    except ValueError as exc:
        raise ReleaseError(
            f"release version {text!r} is not a valid semantic version ({exc}); "
            "expected vMAJOR.MINOR.PATCH or vMAJOR.MINOR.PATCH-PRERELEASE, e.g. v1.2.3 or "
            "v1.3.0-rc.1 (no leading zeros)"
        ) from exc
    return Version(parsed.major, parsed.minor, parsed.patch, parsed.prerelease)


def parse_released(tags: list[str] | set[str] | tuple[str, ...]) -> set[Version]:
    """The release versions among arbitrary tags; floating tags (v1, latest) are ignored."""
    found = set()
    for tag in tags:
        if _TAG.match(tag):
            try:
                found.add(parse(tag))
            except ReleaseError:
                continue
    return found


def released_tags(root: Path) -> set[Version]:
    """Every release version tagged in the checkout at `root`."""
    return parse_released(git.tags(root, "v*"))


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
