"""The pinned CLIs work against the cluster: kubectl reads nodes, helm installs and waits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from brokkr_dev.base import toolchain
from tests.fixtures.kube import KubeCluster
from tests.k8s.conftest import condition

CHART = Path(__file__).parent / "data" / "tiny"


@pytest.fixture(scope="module")
def manifest() -> dict[str, toolchain.Tool]:
    return toolchain.load_manifest()


def test_api_server_reports_the_pinned_release(
    k8s_cluster: KubeCluster, manifest: dict[str, toolchain.Tool]
) -> None:
    if k8s_cluster.provider is None:
        pytest.skip("a given cluster may run any Kubernetes version")
    version = k8s_cluster.client.get("/version")
    pinned = manifest["kubernetes"].version
    assert version["gitVersion"] == pinned
    assert (version["major"], version["minor"]) == tuple(pinned.lstrip("v").split(".")[:2])


def test_kubectl_lists_a_ready_node(k8s_cluster: KubeCluster) -> None:
    result = k8s_cluster.kubectl("get", "nodes", "--no-headers")
    rows = [line.split() for line in result.stdout.splitlines()]
    assert any(row[1] == "Ready" for row in rows), result.stdout
    version = k8s_cluster.kubectl("version", "--client", "-o", "json").stdout
    pinned = toolchain.load_manifest()["kubernetes"].version
    assert f'"gitVersion": "{pinned}"' in version


def test_helm_install_wait_succeeds(
    k8s_cluster: KubeCluster, k8s_namespace: str, manifest: dict[str, toolchain.Tool]
) -> None:
    helm = toolchain.ensure(manifest["helm"], log=lambda _: None)
    result = subprocess.run(
        [
            str(helm),
            "install",
            "tiny",
            str(CHART),
            "--namespace",
            k8s_namespace,
            "--wait",
            "--timeout",
            "120s",
        ],
        env=k8s_cluster.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "STATUS: deployed" in result.stdout
    client = k8s_cluster.client
    deployed = client.get(f"/apis/apps/v1/namespaces/{k8s_namespace}/deployments/tiny-tiny")
    assert condition(deployed, "Available") == "True"
    assert deployed["status"]["readyReplicas"] == 2
    service = client.get(f"/api/v1/namespaces/{k8s_namespace}/services/tiny-tiny")
    assert service["spec"]["clusterIP"].startswith("10.96.")
