"""One rule for branch tags: no branch is ever tagged (or pushed) in a reserved shape.

`invoke images.build --push` pushes exactly `BuildInfo.tags` (and their per-arch
variants); `nox -s publish-dev` pushes `release.tags.dev_tags`. Both go through
`containers.tagnames.sanitise_branch`, tested here with every reserved shape and,
for the image build, with real git repositories checked out on such branches.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from brokkr_dev.containers import images
from brokkr_dev.containers.tagnames import RESERVED, TagNameError, sanitise_branch
from brokkr_dev.release.tags import dev_tags

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SIGNATURE = "sha256-" + "a" * 64
# Every shape a release, a signature or another commit's build writes.
RESERVED_SHAPES = [
    "latest",
    "LATEST",
    "latest-amd64",
    "v1",
    "v1.2",
    "v1.2.3",
    "v1.2.3-rc.1",
    "v1.2.3-arm64",
    "1",
    "1.2",
    "1.2.3",
    "1.2.3-rc.1",
    "1.2.3-amd64",
    "V2.0",
    "sha-abcdef0",
    "sha-abcdef0-amd64",
    f"{SIGNATURE}.sig",
    f"{SIGNATURE}.att",
]


@pytest.mark.parametrize("branch", RESERVED_SHAPES)
def test_a_branch_in_a_reserved_shape_gets_the_branch_prefix(branch: str):
    tag = sanitise_branch(branch)
    assert tag == f"branch-{branch.lower()}"
    assert not RESERVED.match(tag)


@pytest.mark.parametrize("branch", RESERVED_SHAPES)
def test_both_the_image_build_and_publish_dev_keep_off_reserved_tags(branch: str):
    info = images.BuildInfo("1.2.3", COMMIT, "2026-12-03T00:00:00Z", branch, "", "Apache-2.0")
    assert info.tags == ["sha-0123456", f"branch-{branch.lower()}"]
    assert dev_tags(COMMIT, branch) == info.tags
    for arch in images.ARCHES:
        assert all(
            not RESERVED.match(tag) or tag.startswith("sha-0123456") for tag in info.arch_tags(arch)
        )


@pytest.mark.parametrize(
    ("branch", "tag"),
    [
        ("main", "main"),
        ("feature/Add Images", "feature-add-images"),
        ("fix//double__under", "fix-double__under"),
        ("a--b", "a-b"),
        ("-leading.dots", "leading.dots"),
        ("release/v1.2.3", "release-v1.2.3"),
        ("ümlaut", "mlaut"),
        ("1" * 128 + "x", "branch-" + "1" * 121),  # the cut leaves a number: still guarded
    ],
)
def test_ordinary_branch_names_become_valid_tags(branch: str, tag: str):
    assert sanitise_branch(branch) == tag
    assert len(sanitise_branch("x" * 300)) == 128


def test_a_branch_with_nothing_usable_is_refused_by_the_image_build_too():
    info = images.BuildInfo("1.2.3", COMMIT, "2026-12-03T00:00:00Z", "///", "", "Apache-2.0")
    with pytest.raises(TagNameError, match="no characters usable"):
        _ = info.tags
    detached = images.BuildInfo("1.2.3", COMMIT, "2026-12-03T00:00:00Z", "HEAD", "", "MIT")
    assert detached.tags == ["sha-0123456"]


@pytest.mark.parametrize("branch", ["latest", "v1", "v1.2", "v1.2.3", "1.2.3", "sha-abcdef0"])
def test_images_build_on_a_real_branch_named_like_a_release_tag_never_pushes_it(
    tmp_path: Path, branch: str
):
    """`invoke images.build --push` reads its tags with read_build_info: from git."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.2.3"\n')

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
            cwd=tmp_path, capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        return done.stdout.strip()

    git("init", "--quiet", "--initial-branch", branch)
    git("add", "pyproject.toml")
    git("commit", "--quiet", "-m", "x")
    info = images.read_build_info(tmp_path)
    assert info.branch == branch
    assert info.tags == [f"sha-{git('rev-parse', 'HEAD')[:7]}", f"branch-{branch}"]
    assert branch not in info.tags
    assert not {f"{branch}-{arch}" for arch in images.ARCHES} & {
        tag for arch in images.ARCHES for tag in info.arch_tags(arch)
    }
