"""Operator guides on real pods: every guide with blocks marked for kind, word for
word, and the image-pull failure the troubleshooting guide describes.

The quick start and the raw-manifests guide install both charts' defaults (the raw
manifests are `helm template` of them); the other guides (`ON_KIND_SHARED_INSTALL`)
run against the session's shared install, reached as the guides say, through
`kubectl port-forward` of the broker's Service and the agent's Deployment.
`kind_images` loaded the session's images under the charts' default references, so
nothing is pulled.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.charts import lint as charts
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.release import manifests
from tests.docs.guiderun import GUIDES, ON_KIND_SHARED_INSTALL, guide_env, run_guide
from tests.e2e_kind.conftest import (
    AGENT,
    AGENT_CHART,
    BROKER,
    NAMESPACE,
    Brokkr,
    Cluster,
    KindImages,
    PortForward,
    remove_namespace,
)

pytestmark = pytest.mark.kind


def run_on_kind(
    cluster: Cluster, guide: str, values: dict[str, str], namespace: str, tmp_path: Path
) -> float:
    """Run `guide`'s kind blocks; its namespace goes even when the guide fails."""
    env = guide_env(tmp_path, str(cluster.kind.kubeconfig))
    try:
        return run_guide(GUIDES / guide, "kind", values, tmp_path, env)
    finally:
        if cluster.api.exists(f"/api/v1/namespaces/{namespace}"):
            remove_namespace(cluster, namespace)


def test_quick_start_runs_word_for_word_on_kind(
    cluster: Cluster, kind_images: KindImages, tmp_path: Path
):
    namespace = f"quickstart-{secrets.token_hex(3)}"
    values = {
        "BROKKR_CHARTS": str(charts.CHARTS_DIR),
        "BROKKR_NAMESPACE": namespace,
        "BROKKR_LOCAL_PORT": str(free_port()),
    }
    seconds = run_on_kind(cluster, "quick-start.md", values, namespace, tmp_path)
    e2e_kind.record("quick_start_guide_s", seconds)


def test_raw_manifests_run_word_for_word_on_kind(
    cluster: Cluster, kind_images: KindImages, tmp_path: Path
):
    """The release's install.yaml files, applied with kubectl as the guide says."""
    assets = tmp_path / "release-assets"
    manifests.write_install_manifests(charts.CHARTS_DIR, assets)
    values = {"BROKKR_RELEASE_URL": assets.as_uri(), "BROKKR_LOCAL_PORT": str(free_port())}
    # The guide's names are fixed: namespace `brokkr`, ClusterRole(Binding)s named
    # after the release. Cluster-scoped leftovers of a failed run would block the next.
    try:
        seconds = run_on_kind(cluster, "raw-manifests.md", values, "brokkr", tmp_path)
    finally:
        for kind in ("clusterrolebindings", "clusterroles"):
            cluster.kubectl(
                "delete",
                kind,
                "-l",
                "app.kubernetes.io/instance=brokkr-agent",
                "--ignore-not-found",
            )
    e2e_kind.record("raw_manifests_guide_s", seconds)


@pytest.mark.parametrize("guide", ON_KIND_SHARED_INSTALL)
def test_guide_runs_word_for_word_against_the_shared_install(
    guide: str, brokkr: Brokkr, tmp_path: Path
):
    """The guide's placeholders as a reader on kind fills them: the broker and the agent
    through port-forwards of their own, the admin PAK from the chart's Secret, a fresh
    namespace for what the guide installs."""
    cluster = brokkr.cluster
    namespace = f"guide-{Path(guide).stem}-{secrets.token_hex(3)}"
    broker = PortForward(cluster, NAMESPACE, BROKER, 3000)
    agent = PortForward(cluster, NAMESPACE, AGENT, 8080, kind="deployment")
    try:
        values = {
            "BROKKR_URL": broker.url,
            "BROKKR_ADMIN_PAK": cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"],
            "BROKKR_AGENT_URL": agent.url,
            "BROKKR_CHARTS": str(charts.CHARTS_DIR),
            "BROKKR_NAMESPACE": namespace,
        }
        seconds = run_on_kind(cluster, guide, values, namespace, tmp_path)
    finally:
        agent.stop()
        broker.stop()
    e2e_kind.record(f"{Path(guide).stem.replace('-', '_')}_guide_s", seconds)


def test_an_image_that_cannot_be_pulled_fails_as_troubleshooting_describes(
    cluster: Cluster, tmp_path: Path
):
    """docs/operators/troubleshooting.md quotes the event this test prints."""
    namespace = f"pull-{secrets.token_hex(3)}"
    missing = "0.0.0-missing"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.helm(
            "install",
            "pull",
            AGENT_CHART,
            "--namespace",
            namespace,
            "--set",
            "broker.url=http://broker.invalid:3000",
            "--set",
            "agent.name=pull",
            "--set",
            "agent.clusterName=pull",
            "--set",
            "pak.value=brokkr_Abcd1234_abcdefghijklmnopqrstuvwx",
            "--set",
            f"image.tag={missing}",
        )

        def pull_failed() -> str | None:
            for pod in cluster.pods(namespace, "app.kubernetes.io/instance=pull"):
                for status in pod["status"].get("containerStatuses") or []:
                    reason = (status["state"].get("waiting") or {}).get("reason")
                    if reason in ("ErrImagePull", "ImagePullBackOff"):
                        return str(reason)
            return None

        reason = poll(pull_failed, 180, "the agent pod to fail pulling its image")
        events = cluster.api.get(f"/api/v1/namespaces/{namespace}/events")["items"]
        failed = [e["message"] for e in events if e.get("reason") == "Failed"]
        print(f"\nwaiting reason {reason}; events:\n" + "\n".join(failed))
        image = f"ghcr.io/colliery-io/brokkr-agent:{missing}"
        assert any(f'Failed to pull image "{image}"' in m for m in failed), failed
    finally:
        remove_namespace(cluster, namespace)
