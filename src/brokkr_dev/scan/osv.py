"""Versions in OSV entries (the format of golang.org/x/vulndb)."""

from __future__ import annotations

import re

SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def semver_key(version: str) -> tuple:
    """A sort key following semver precedence (a pre-release sorts before its release)."""
    match = SEMVER.match(version.strip())
    if not match:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, parts)


def fixed_versions(ranges: list[dict]) -> list[str]:
    """Every version that an entry names as fixing it."""
    return [
        event["fixed"]
        for entry in ranges
        for event in entry.get("events") or []
        if "fixed" in event
    ]
