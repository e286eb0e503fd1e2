"""One release pipeline, two builders: the images of a release built by podman/buildah
or by Docker Buildx go through the very same push, tag, sign and SBOM steps, and
everything is read back from the registry the same way."""

from __future__ import annotations

import json
import subprocess

import pytest

from brokkr_dev.release.registry import Registry
from tests.fixtures.release import commit

pytestmark = [pytest.mark.release, pytest.mark.slow]
IMAGES = ("brokkr-broker", "brokkr-agent")
PLATFORMS = {"linux/amd64", "linux/arm64"}
COSIGN_FLAGS = ["--allow-http-registry", "--allow-insecure-registry", "--insecure-ignore-tlog=true"]


@pytest.fixture
def cosign(cosign_keys, release_tools):
    """cosign with the release key's public half: `cosign("verify", ref)`."""

    def run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(release_tools["cosign"]),
                command,
                *("--key", str(cosign_keys.with_suffix(".pub"))),
                *args,
                *COSIGN_FLAGS,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    return run


@pytest.fixture(params=["tiny_images", "tiny_buildx_images"], ids=["podman", "buildx"])
def builder(request):
    return request.getfixturevalue(request.param)


def human_tags(registry: Registry, repo: str) -> dict[str, str]:
    return {
        t: registry.digest(repo, t) or ""
        for t in registry.tags(repo)
        if not t.startswith("sha256-")
    }


def test_release_reads_back_the_same_whichever_builder(
    builder, do_release, oci_registry, brokkr_repo, cosign
):
    registry = Registry(oci_registry.host)
    first = do_release("v1.0.0", builder=builder)
    assert first is not None
    for name in IMAGES:
        repo = f"brokkr/{name}"
        digest = first.images[name]
        tags = human_tags(registry, repo)
        assert tags == dict.fromkeys(("v1.0.0", "1.0.0", "v1.0", "v1", "latest"), digest)
        index = json.loads(registry.manifest(repo, digest).body)
        entries = {
            f"{m['platform']['os']}/{m['platform']['architecture']}": m for m in index["manifests"]
        }
        assert set(entries) == PLATFORMS
        for platform, entry in entries.items():
            # each platform image is the one built for it (config and label)
            manifest = json.loads(registry.manifest(repo, entry["digest"]).body)
            config = json.loads(registry.blob(repo, manifest["config"]["digest"]))
            arch = platform.split("/")[1]
            assert (config["os"], config["architecture"]) == ("linux", arch)
            assert config["config"]["Labels"]["arch"] == arch
            assert first.platforms[name][platform] == entry["digest"]
            ref = f"{oci_registry.host}/{repo}@{entry['digest']}"
            verified = cosign("verify-attestation", "--type", "spdxjson", ref)
            assert verified.returncode == 0, verified.stderr
        ref = f"{oci_registry.host}/{repo}@{digest}"
        assert cosign("verify", ref).returncode == 0
    for name, digest in first.charts.items():
        ref = f"{oci_registry.host}/brokkr/charts/{name}@{digest}"
        assert cosign("verify", ref).returncode == 0

    # the next patch moves the floating tags and leaves v1.0.0 where it was
    commit(brokkr_repo, "fix: a patch")
    second = do_release("v1.0.1", builder=builder, sbom=False)
    assert second is not None
    tags = human_tags(registry, "brokkr/brokkr-agent")
    new = second.images["brokkr-agent"]
    assert new != first.images["brokkr-agent"]
    assert tags["v1.0.0"] == tags["1.0.0"] == first.images["brokkr-agent"]
    assert tags["v1.0.1"] == tags["1.0.1"] == tags["v1.0"] == tags["v1"] == tags["latest"] == new
