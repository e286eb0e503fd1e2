"""kind's own node image, pinned by digest: the pin agrees with kind's source."""

from __future__ import annotations

from brokkr_dev.base import toolchain
from brokkr_dev.containers.nodeimage import published
from brokkr_dev.containers.nodeimage.build import kind_module


def test_the_pin_is_the_image_the_pinned_kind_release_names():
    kind = toolchain.load_manifest()["kind"]
    assert kind.version == published.KIND_VERSION, "bump published.py with tools.toml [kind]"
    source = (kind_module(kind.version) / published.SOURCE_FILE).read_text()
    assert published.from_kind_source(source) == published.IMAGE


def test_a_pull_uses_the_digest_never_the_tag():
    assert published.by_digest() == f"kindest/node@{published.digest()}"
    assert published.digest().startswith("sha256:") and len(published.digest()) == 71
    assert published.repository("127.0.0.1:5000/kindest/node:v1@sha256:ab") == (
        "127.0.0.1:5000/kindest/node"
    )


def test_a_test_image_keeps_the_pinned_repository_and_tag_with_its_own_digest():
    other = "sha256:" + "0" * 64
    assert published.tag() == "v1.37.0"
    assert published.with_digest(other) == f"kindest/node:v1.37.0@{other}"
    assert published.by_digest(published.with_digest(other)) == f"kindest/node@{other}"


def test_kind_source_without_a_default_image_gives_none():
    assert published.from_kind_source("package defaults\n") is None
