"""The air-gapped guide, followed from a "published" registry to an empty mirror.

The release code publishes the real charts (with small stand-in images, a
throw-away cosign key and syft SBOMs) to one local registry; the guide then copies
everything to a second local registry, verifies the signatures there offline and
installs from it into the local cluster.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokkr_dev.base import toolchain
from brokkr_dev.release.registry import Registry
from tests.docs.guiderun import GUIDES, guide_env, run_guide
from tests.fixtures.registry import LocalRegistry, running_registry
from tests.fixtures.release import use_real_charts

pytestmark = [pytest.mark.release, pytest.mark.k8s, pytest.mark.charts, pytest.mark.slow]


@pytest.fixture
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    yield from running_registry(tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def released(brokkr_repo, do_release) -> None:
    """Version 1.0.0 of the real charts (and stand-in images), signed, in oci_registry."""
    use_real_charts(brokkr_repo)
    assert do_release("v1.0.0") is not None


@pytest.fixture(scope="session")
def oras() -> Path:
    """The pinned oras in bin/ (the guide copies with it)."""
    return toolchain.ensure(toolchain.load_manifest()["oras"], log=lambda _m: None)


@pytest.mark.usefixtures("released", "oras")
def test_air_gapped_guide_installs_from_the_mirror_only(
    oci_registry, mirror, cosign_keys, k8s_cluster, tmp_path: Path
):
    namespace = f"docs-airgapped-{secrets.token_hex(3)}"
    values = {
        "SOURCE_REGISTRY": f"{oci_registry.host}/brokkr",
        "MIRROR_REGISTRY": mirror.host,
        "MIRROR_URL": f"http://{mirror.host}",
        "BROKKR_VERSION": "1.0.0",
        "COSIGN_PUBLIC_KEY": str(cosign_keys.with_name("cosign.pub")),
        "MIRROR_PASSWORD": secrets.token_hex(8),
        "BROKKR_NAMESPACE": namespace,
        "ORAS_FLAGS": "--from-plain-http --to-plain-http",  # both local registries
    }
    # The source stays up while the guide runs (the copy needs it); afterwards the
    # mirror alone must hold what the cluster references.
    try:
        run_guide(
            GUIDES / "air-gapped.md",
            "local",
            values,
            tmp_path,
            guide_env(tmp_path, str(k8s_cluster.kubeconfig)),
        )
        oci_registry.stop()
        deployments = k8s_cluster.client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")
        images = {
            c["image"]
            for d in deployments["items"]
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert images == {f"{mirror.host}/colliery-io/brokkr-broker:1.0.0"}
        assert Registry(mirror.host).digest("colliery-io/brokkr-broker", "1.0.0") is not None
    finally:
        k8s_cluster.client.request("DELETE", f"/api/v1/namespaces/{namespace}")
