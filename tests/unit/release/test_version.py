"""Release version parsing: valid tags, ordering, and clear refusals."""

from __future__ import annotations

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version, parse, parse_released


def test_parses_stable_and_prerelease():
    assert parse("v1.2.3") == Version(1, 2, 3)
    rc = parse("v1.3.0-rc.1")
    assert rc == Version(1, 3, 0, "rc.1")
    assert rc.is_prerelease
    assert rc.tag == "v1.3.0-rc.1"
    assert rc.plain == "1.3.0-rc.1"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1.2.3", "must start with 'v'"),
        ("1.2.3", "e.g. v1.2.3"),
        ("release-1", "must start with 'v'"),
        ("v1.2", "not a valid semantic version"),
        ("v01.2.3", "no leading zeros"),
        ("v1.2.3+build.5", "build metadata"),
        ("v1.2.3-", "not a valid semantic version"),
        ("vx.y.z", "not a valid semantic version"),
    ],
)
def test_refuses_invalid_versions_with_reason(text, fragment):
    with pytest.raises(ReleaseError) as info:
        parse(text)
    assert fragment in str(info.value)
    assert repr(text) in str(info.value)


def test_semver_precedence():
    ordered = [
        "v0.9.9",
        "v1.0.0-alpha",
        "v1.0.0-rc.1",
        "v1.0.0-rc.2",
        "v1.0.0",
        "v1.0.1",
        "v1.10.0",
    ]
    assert sorted(parse(t) for t in reversed(ordered)) == [parse(t) for t in ordered]


def test_parse_released_ignores_floating_and_foreign_tags():
    tags = ["v1.0.0", "v1.0", "v1", "latest", "sha-abcdef1", "main", "v1.1.0-rc.1", "sha256-aa.sig"]
    assert parse_released(tags) == {parse("v1.0.0"), parse("v1.1.0-rc.1")}
