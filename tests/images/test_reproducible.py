"""Reproducible images: two clean builds of one commit with podman give identical
digests for every platform, the per-architecture images and the manifest list as a
registry would receive them (brokkr_dev.containers.reproducible)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from brokkr_dev.base.commands import run
from brokkr_dev.containers import images, reproducible
from brokkr_dev.containers.podman import podman

pytestmark = [pytest.mark.images, pytest.mark.slow]

# Names of their own, so the session's built images keep their tags.
REGISTRY = "localhost/reproducible-test"


def build_and_push(workdir: Path, attempt: str) -> dict[str, object]:
    """One clean build of the broker for both platforms, pushed (list and images) into
    a `dir:` copy; the image ids, the list's digest and every blob's name."""
    started = time.monotonic()
    result = images.build(
        targets=("broker",),
        arches=images.ARCHES,
        builder="podman",
        registry=REGISTRY,
        reproducible=True,
    )
    print(f"{attempt} reproducible build of both platforms: {time.monotonic() - started:.0f} s")
    found: dict[str, object] = {
        arch: reproducible.image_id(references[0])
        for (_target, arch), references in result.images.items()
    }
    digest_file = workdir / f"{attempt}.digest"
    copy = workdir / attempt
    run(
        podman(
            "manifest", "push", "--all", "--digestfile", str(digest_file),
            result.manifests["broker"][0], f"dir:{copy}",
        )
    )  # fmt: skip
    found["list"] = digest_file.read_text().strip()
    found["blobs"] = sorted(path.name for path in copy.iterdir())
    return found


def test_two_clean_builds_of_a_commit_give_identical_digests(tmp_path: Path):
    first = build_and_push(tmp_path, "first")
    second = build_and_push(tmp_path, "second")
    assert set(first) == {*images.ARCHES, "list", "blobs"}
    for key in (*images.ARCHES, "list", "blobs"):
        assert second[key] == first[key], f"{key} differs between two builds of one commit"
