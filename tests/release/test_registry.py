"""The OCI distribution client against a real local registry, and development builds."""

from __future__ import annotations

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.registry import Registry, split_reference
from brokkr_dev.release.run import publish_dev
from tests.fixtures.release import run

pytestmark = [pytest.mark.release]


def test_tags_manifests_and_copy(oci_registry, tiny_images):
    registry = Registry(oci_registry.host)
    assert registry.tags("brokkr/nothing") == set()
    assert registry.digest("brokkr/nothing", "v1") is None
    listing = tiny_images("brokkr-broker", ["linux/amd64", "linux/arm64"])
    target = f"docker://{oci_registry.host}/brokkr/x:v1.0.0"
    run(*tiny_images.podman, "manifest", "push", "--all", "--tls-verify=false", listing, target)
    manifest = registry.manifest("brokkr/x", "v1.0.0")
    assert manifest is not None
    assert manifest.media_type in {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
    assert registry.copy_tag("brokkr/x", "v1.0.0", "latest") == manifest.digest
    assert registry.copy_tag("brokkr/x", manifest.digest, "v1") == manifest.digest
    assert registry.tags("brokkr/x") == {"v1.0.0", "latest", "v1"}
    assert registry.digest("brokkr/x", "latest") == manifest.digest
    with pytest.raises(ReleaseError, match="does not exist"):
        registry.copy_tag("brokkr/x", "v9.9.9", "v9")


def test_unreachable_registry_is_a_clear_error(oci_registry):
    oci_registry.stop()
    with pytest.raises(ReleaseError, match=f"registry {oci_registry.host} is not reachable"):
        Registry(oci_registry.host).ping()


def test_split_reference():
    assert split_reference("ghcr.io/colliery-io") == ("ghcr.io", "colliery-io")
    assert split_reference("127.0.0.1:5000/a/b") == ("127.0.0.1:5000", "a/b")
    with pytest.raises(ReleaseError, match="does not start with a registry host"):
        split_reference("colliery-io/brokkr")


def test_publish_dev_pushes_sha_and_branch_tags(oci_registry, tiny_images, brokkr_repo):
    run("git", "checkout", "-q", "-b", "feature/Fast-Path", cwd=brokkr_repo)
    sha = run("git", "rev-parse", "HEAD", cwd=brokkr_repo)[:7]
    digests = publish_dev(
        f"{oci_registry.host}/brokkr",
        root=brokkr_repo,
        env={},
        log=lambda _m: None,
        builder=tiny_images,
        podman=tiny_images.podman,
    )
    registry = Registry(oci_registry.host)
    for name in ("brokkr-broker", "brokkr-agent"):
        assert registry.tags(f"brokkr/{name}") == {f"sha-{sha}", "feature-fast-path"}
        assert registry.digest(f"brokkr/{name}", "feature-fast-path") == digests[name]
