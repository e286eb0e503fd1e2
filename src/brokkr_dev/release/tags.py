"""The tag fan-out rules, as pure functions.

A stable release vX.Y.Z is published as `vX.Y.Z` (and `X.Y.Z`, the form the charts'
appVersion uses as their default image tag) and may also move the floating tags
`vX.Y`, `vX` and `latest`. A floating tag moves only when this release is the highest
stable version that the tag covers, so releasing a fix for an older line (v1.0.5 after
v1.1.0) moves `v1.0` but leaves `v1` and `latest` on v1.1.0. A prerelease gets only
its exact tags. Development builds get `sha-<7 hex>` and the sanitised branch name
(containers/tagnames.py: the one rule, shared with `invoke images.build`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from brokkr_dev.containers.tagnames import sanitise_branch
from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version


class Action(Enum):
    """What publishing does to one tag."""

    CREATE = "create"  # the tag does not exist yet
    MOVE = "move"  # the tag exists and will point at this release
    KEEP = "keep"  # the tag exists and already points at this version (re-run)


@dataclass(frozen=True)
class TagChange:
    """One tag that a release writes, and whether it is new or moved."""

    tag: str
    action: Action
    previous: Version | None = None  # the version a moved tag pointed at

    def describe(self) -> str:
        if self.action is Action.MOVE:
            return f"{self.tag}: move (from {self.previous})"
        if self.action is Action.KEEP:
            return f"{self.tag}: keep (already this release)"
        return f"{self.tag}: create"


def _covered(version: Version, floating: str) -> bool:
    """Whether a stable version falls under a floating tag (v1, v1.2, latest)."""
    if floating == "latest":
        return True
    parts = floating[1:].split(".")
    if len(parts) == 1:
        return version.major == int(parts[0])
    return (version.major, version.minor) == (int(parts[0]), int(parts[1]))


def release_tags(version: Version, released: Iterable[Version]) -> list[TagChange]:
    """The tags that publishing `version` writes, given the versions already released.

    `released` may contain `version` itself (a resumed run): it is not "newer than"
    itself, so the result is the same and the exact tag is reported as kept.
    """
    previous = set(released)
    action = Action.KEEP if version in previous else Action.CREATE
    # The exact version twice: `v1.2.3` (the release tag) and `1.2.3`, the chart's
    # appVersion, which is the Helm charts' default image tag.
    exact = [TagChange(version.tag, action), TagChange(version.plain, action)]
    if version.is_prerelease:
        return exact
    stable = [v for v in previous if not v.is_prerelease and v != version]
    changes = list(exact)
    for floating in (f"v{version.major}.{version.minor}", f"v{version.major}", "latest"):
        others = [v for v in stable if _covered(v, floating)]
        highest = max(others, default=None)
        if highest is not None and highest > version:
            continue  # a newer release owns this tag
        if highest is None:
            changes.append(TagChange(floating, Action.CREATE))
        else:
            changes.append(TagChange(floating, Action.MOVE, previous=highest))
    return changes


_SHA = re.compile(r"^[0-9a-f]{7,40}$")


def dev_tags(commit: str, branch: str | None) -> list[str]:
    """Tags of a development build: `sha-<7 hex>` and, on a branch, the branch name."""
    sha = commit.strip().lower()
    if not _SHA.match(sha):
        raise ReleaseError(
            f"commit {commit!r} is not a hexadecimal git commit id (7 to 40 characters); "
            "pass the output of `git rev-parse HEAD`"
        )
    tags = [f"sha-{sha[:7]}"]
    if branch and branch != "HEAD":  # detached HEAD has no branch to name
        tags.append(sanitise_branch(branch))
    return tags
