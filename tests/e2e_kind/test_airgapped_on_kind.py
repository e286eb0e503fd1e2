"""The air-gapped guide on real pods: the nodes pull every image from the mirror.

The project's release code publishes version 1.0.0 of the real charts, with the
broker and agent images this session built for the node's platform, signed with a
throw-away key and with syft SBOMs, to a registry on this machine's loopback (it
stands in for ghcr.io; the nodes cannot reach it). The guide then copies everything
to a second, empty registry, the mirror, verifies signatures and SBOMs there offline,
and installs the broker chart from it. The mirror listens where the nodes reach this
machine, and their containerd trusts it over plain HTTP, as a site's nodes trust its
mirror (brokkr_dev.clusters.noderegistries). PostgreSQL's image is copied in by the
test, as the guide tells a reader to copy the official one. What the node pulls are
relabelled copies of the session's images (tests.fixtures.release.relabelled says why).

Every pod must be Ready, each with its image pulled from the mirror: the images the
session loaded into the node carry other names, and nothing else answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokkr_dev.base.localnet import free_port
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.containers.podman import podman
from brokkr_dev.release.registry import Registry
from tests.docs.guiderun import GUIDES, guide_env, run_guide
from tests.e2e_kind.conftest import (
    BROKER_CHART,
    Cluster,
    KindImages,
    chart_default_image,
    ready,
    remove_namespace,
)
from tests.fixtures.kind import KindCluster
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.release import BuiltImages, relabelled, run, use_real_charts

pytestmark = pytest.mark.kind

VERSION = "1.0.0"


@pytest.fixture
def node_mirror(
    kind_cluster: KindCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRegistry]:
    """An empty registry at the nodes' gateway, trusted by their containerd."""
    assert kind_cluster.kind is not None
    provider = kind_cluster.kind
    registry = LocalRegistry(
        tmp_path_factory.mktemp("node-mirror"), host=f"{provider.gateway()}:{free_port()}"
    )
    registry.start()
    try:
        provider.trust_registry(registry.host)
        yield registry
    finally:
        provider.forget_registry(registry.host)
        registry.stop()


@pytest.fixture
def released(
    brokkr_repo: Path,
    do_release,
    kind_images: KindImages,
    oci_registry: LocalRegistry,
    cosign_keys: Path,
) -> Iterator[dict[str, str]]:
    """1.0.0 of the real charts and the session's images, signed, in oci_registry; the
    guide's values that say where it is and how it was signed."""
    use_real_charts(brokkr_repo)
    platform = f"linux/{kind_images.arch}"
    images = BuiltImages(
        {"brokkr-broker": kind_images.broker, "brokkr-agent": kind_images.agent}, platform
    )
    try:
        assert do_release(f"v{VERSION}", builder=images, platforms=(platform,)) is not None
        yield {
            "SOURCE_REGISTRY": f"{oci_registry.host}/brokkr",
            "BROKKR_VERSION": VERSION,
            "COSIGN_PUBLIC_KEY": str(cosign_keys.with_name("cosign.pub")),
        }
    finally:
        images.remove()


def copy_postgresql(kind_images: KindImages, mirror: LocalRegistry) -> None:
    """The session's PostgreSQL stand-in (a relabelled copy: see `relabelled`), at the
    path the chart asks the mirror for."""
    path = chart_default_image(BROKER_CHART, "postgresql", "image").split("/", 1)[1]
    copy = relabelled(kind_images.postgresql.reference, f"localhost/airgap-postgresql:{VERSION}")
    try:
        run(
            *podman("push", "--quiet", "--tls-verify=false", copy, f"docker://{mirror.host}/{path}")
        )
    finally:
        run(*podman("rmi", copy))


def test_air_gapped_guide_installs_from_the_mirror_and_every_image_is_pulled_from_it(
    cluster: Cluster,
    kind_images: KindImages,
    released: dict[str, str],
    node_mirror: LocalRegistry,
    tmp_path: Path,
):
    namespace = f"airgapped-{secrets.token_hex(3)}"
    copy_postgresql(kind_images, node_mirror)
    values = {
        **released,
        "MIRROR_REGISTRY": node_mirror.host,
        "MIRROR_URL": f"http://{node_mirror.host}",
        "ORAS_FLAGS": "--from-plain-http --to-plain-http",  # both registries are plain HTTP
        "MIRROR_PASSWORD": secrets.token_hex(8),
        "BROKKR_NAMESPACE": namespace,
    }
    env = guide_env(tmp_path, str(cluster.kind.kubeconfig))
    try:
        seconds = run_guide(GUIDES / "air-gapped.md", "kind", values, tmp_path, env)
        pods = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
        assert all(ready(p) for p in pods), [p["status"] for p in pods if not ready(p)]
        # container -> the image it runs, as the kubelet resolved it when it pulled
        pulled = {s["name"]: s["imageID"] for p in pods for s in p["status"]["containerStatuses"]}
        assert set(pulled) >= {"broker", "postgresql"}, pulled
        elsewhere = {n: i for n, i in pulled.items() if not i.startswith(f"{node_mirror.host}/")}
        assert not elsewhere, f"images not pulled from the mirror {node_mirror.host}: {elsewhere}"
        mirrored = Registry(node_mirror.host, plain_http=True).digest(
            "colliery-io/brokkr-broker", VERSION
        )
        assert pulled["broker"] == f"{node_mirror.host}/colliery-io/brokkr-broker@{mirrored}"
        e2e_kind.record("air_gapped_guide_s", seconds)
    finally:
        if cluster.api.exists(f"/api/v1/namespaces/{namespace}"):
            remove_namespace(cluster, namespace)
