"""The tag fan-out rules (pure): which tags a release creates, moves or leaves alone."""

from __future__ import annotations

import random
import re

import pytest

from brokkr_dev.containers.tagnames import TagNameError, sanitise_branch
from brokkr_dev.release import ReleaseError
from brokkr_dev.release.tags import Action, dev_tags, release_tags
from brokkr_dev.release.version import parse


def fan_out(version: str, *released: str) -> dict[str, str]:
    """Tag -> action; the plain alias (`1.2.3` next to `v1.2.3`) is checked and left out."""
    changes = release_tags(parse(version), {parse(v) for v in released})
    found = {c.tag: c.action.value for c in changes}
    assert found.pop(version[1:]) == found[version]
    return found


def test_exact_version_is_published_with_and_without_v():
    changes = release_tags(parse("v1.2.3"), set())
    assert [c.tag for c in changes[:2]] == ["v1.2.3", "1.2.3"]
    assert [c.tag for c in release_tags(parse("v1.3.0-rc.1"), set())] == [
        "v1.3.0-rc.1",
        "1.3.0-rc.1",
    ]


def test_first_release_creates_every_tag():
    assert fan_out("v1.0.0") == {
        "v1.0.0": "create",
        "v1.0": "create",
        "v1": "create",
        "latest": "create",
    }


def test_patch_on_the_newest_line_moves_everything():
    assert fan_out("v1.0.1", "v1.0.0") == {
        "v1.0.1": "create",
        "v1.0": "move",
        "v1": "move",
        "latest": "move",
    }


def test_moved_tag_names_the_version_it_leaves():
    changes = release_tags(parse("v1.0.1"), {parse("v1.0.0")})
    assert [str(c.previous) for c in changes if c.action is Action.MOVE] == ["v1.0.0"] * 3


def test_fix_for_older_line_moves_only_its_minor_tag():
    assert fan_out("v1.0.5", "v1.0.4", "v1.1.0") == {"v1.0.5": "create", "v1.0": "move"}


def test_new_minor_creates_its_minor_tag_and_moves_major_and_latest():
    assert fan_out("v1.1.0", "v1.0.0", "v1.0.1") == {
        "v1.1.0": "create",
        "v1.1": "create",
        "v1": "move",
        "latest": "move",
    }


def test_fix_for_older_major_leaves_latest():
    assert fan_out("v1.4.2", "v1.4.1", "v2.0.0") == {
        "v1.4.2": "create",
        "v1.4": "move",
        "v1": "move",
    }


def test_new_major_creates_major_tag_and_moves_latest():
    assert fan_out("v2.0.0", "v1.4.1") == {
        "v2.0.0": "create",
        "v2.0": "create",
        "v2": "create",
        "latest": "move",
    }


def test_prerelease_gets_only_its_exact_tag():
    assert fan_out("v1.1.0-rc.1", "v1.0.0") == {"v1.1.0-rc.1": "create"}
    assert fan_out("v2.0.0-alpha.1") == {"v2.0.0-alpha.1": "create"}


def test_prereleases_never_hold_floating_tags():
    # v1.1.0-rc.1 was released, but v1.1 does not exist yet: the final creates it.
    assert fan_out("v1.1.0", "v1.0.0", "v1.1.0-rc.1", "v1.1.0-rc.2") == {
        "v1.1.0": "create",
        "v1.1": "create",
        "v1": "move",
        "latest": "move",
    }


def test_older_fix_while_a_newer_prerelease_exists_moves_latest():
    # Only stable releases count: a v2 release candidate does not own `latest`.
    assert fan_out("v1.0.2", "v1.0.1", "v2.0.0-rc.1")["latest"] == "move"


def test_resumed_release_keeps_its_exact_tag_and_still_owns_floating_tags():
    assert fan_out("v1.0.1", "v1.0.0", "v1.0.1") == {
        "v1.0.1": "keep",
        "v1.0": "move",
        "v1": "move",
        "latest": "move",
    }


def test_resumed_prerelease_is_kept():
    assert fan_out("v1.1.0-rc.1", "v1.1.0-rc.1") == {"v1.1.0-rc.1": "keep"}


def test_ten_sorts_after_nine():
    assert fan_out("v1.10.0", "v1.9.0") == {
        "v1.10.0": "create",
        "v1.10": "create",
        "v1": "move",
        "latest": "move",
    }
    assert "v1" not in fan_out("v1.9.1", "v1.10.0")


def test_the_issue_sequence():
    released: set[str] = set()
    expected = {
        "v1.0.0": {"v1.0.0", "v1.0", "v1", "latest"},
        "v1.0.1": {"v1.0.1", "v1.0", "v1", "latest"},
        "v1.1.0-rc.1": {"v1.1.0-rc.1"},
        "v1.1.0": {"v1.1.0", "v1.1", "v1", "latest"},
        "v1.0.2": {"v1.0.2", "v1.0"},
    }
    for version, tags in expected.items():
        assert set(fan_out(version, *released)) == tags, version
        released.add(version)


def test_describe_reads_as_a_plan_line():
    changes = release_tags(parse("v1.0.1"), {parse("v1.0.0")})
    assert changes[0].describe() == "v1.0.1: create"
    assert changes[2].describe() == "v1.0: move (from v1.0.0)"


@pytest.mark.parametrize(
    ("branch", "tag"),
    [
        ("main", "main"),
        ("feature/Login-Page", "feature-login-page"),
        ("fix_#12: crash", "fix_-12-crash"),
        ("-.weird", "weird"),
        ("latest", "branch-latest"),
        ("v1.2", "branch-v1.2"),
        ("v2", "branch-v2"),
        ("v1.2.3-rc.1", "branch-v1.2.3-rc.1"),
        ("sha-abcdef0", "branch-sha-abcdef0"),
        ("x" * 200, "x" * 128),
    ],
)
def test_sanitise_branch(branch, tag):
    assert sanitise_branch(branch) == tag


def test_sanitise_branch_refuses_empty_result():
    with pytest.raises(TagNameError, match="no characters usable"):
        sanitise_branch("///")


def test_dev_tags():
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert dev_tags(sha, "feature/x") == ["sha-0123456", "feature-x"]
    assert dev_tags(sha, "HEAD") == ["sha-0123456"]
    assert dev_tags(sha.upper(), None) == ["sha-0123456"]
    with pytest.raises(ReleaseError, match="not a hexadecimal git commit"):
        dev_tags("zzz", "main")


@pytest.mark.parametrize(
    ("branch", "tag"),
    [
        ("1.2.3", "branch-1.2.3"),  # the plain alias every release writes
        ("1.3.0-rc.1", "branch-1.3.0-rc.1"),
        ("sha256-" + "a" * 64 + ".sig", "branch-sha256-" + "a" * 64 + ".sig"),
        ("1" * 128 + "x", "branch-" + "1" * 121),  # cutting to 128 leaves a number
    ],
)
def test_sanitise_branch_never_takes_a_release_or_signature_shape(branch, tag):
    assert sanitise_branch(branch) == tag


def written_by_releases(tag: str) -> bool:
    """Whether some release (or its cosign signature) writes `tag`: an oracle built from
    release_tags itself, independent of sanitise_branch's own pattern."""
    if tag.startswith("sha256-"):
        return True
    core, _, pre = tag.removeprefix("v").partition("-")
    numbers = core.split(".")
    if len(numbers) > 3 or not all(n.isdigit() and str(int(n)) == n for n in numbers):
        return tag == "latest"
    version_text = "v" + ".".join([*numbers, "0", "0"][:3]) + (f"-{pre}" if pre else "")
    try:
        version = parse(version_text)
    except ReleaseError:
        return False
    return any(change.tag == tag for change in release_tags(version, set()))


def test_dev_tags_never_name_a_tag_that_a_release_writes():
    """The guarantee behind `publish-dev`: whatever the branch is called, a dev build
    can never move a release tag (nor the sha tag of another commit, nor a signature)."""
    rng = random.Random(14)  # noqa: S311 - reproducible test input, not a secret
    pieces = ["v", "V", "1", "0", "12", ".", "-", "rc", "latest", "sha-", "sha256-", "/", "_", "a"]
    branches = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) for _ in range(5000)]
    branches += ["v1", "v1.2", "V1.2.3", "1.2.3", "1.2.3-rc.1", "LATEST", "release/v1.2.3"]
    commit = "0123456789abcdef0123456789abcdef01234567"
    checked = 0
    for branch in branches:
        try:
            tags = dev_tags(commit, branch)
        except TagNameError:
            continue  # nothing usable in the name: refused, nothing pushed
        sha, *rest = tags
        assert sha == "sha-0123456"
        for tag in rest:
            assert not written_by_releases(tag), (branch, tag)
            assert not re.fullmatch(r"sha-[0-9a-f]{7}", tag), (branch, tag)
            checked += 1
    # the generator does produce release-shaped names, and the oracle recognises them
    assert sum(written_by_releases(b.lower()) for b in branches) > 100
    assert checked > 4000
