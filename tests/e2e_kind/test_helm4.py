"""Helm 4 on real pods: both charts installed, upgraded and uninstalled by Helm 4.

Every other kind test drives the charts with Helm 3 (`helm`); lint renders them with
both. Here `helm4` (tools.toml [helm4]) does the whole life of a second installation,
in a restricted namespace of its own and under release names of its own (so its
cluster-scoped RBAC never meets the shared installation's):

- install the broker, then an agent registered with it, each waiting with Helm 4's
  `--wait` (its kstatus watcher, not Helm 3's readiness polling); the agent reports
  in, active, and `helm4 test` passes for both;
- upgrade both with a value that lands in their ConfigMaps: revision 2 is deployed,
  its pod template changed, and the rollout completes;
- uninstall both with `--wait`: only the data PVC is left, and the agent's
  ClusterRole is gone.

Each wait after Helm's own is pytest-helm-charts' (`wait_for_deployments_to_run`,
`wait_for_stateful_sets_to_run` through its `kube_cluster` fixture): a second opinion
from another client that every replica of the current template is available.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_helm_charts.clusters import Cluster as HelmChartsCluster
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run
from pytest_helm_charts.k8s.stateful_set import wait_for_stateful_sets_to_run

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.local.broker_admin import BrokerAdmin
from tests.e2e_kind.conftest import (
    AGENT_CHART,
    BROKER_CHART,
    Cluster,
    KindImages,
    PortForward,
    agent_values,
    broker_values,
    helm_wait,
    remove_namespace,
    restricted_namespace,
    write_values,
)

pytestmark = [pytest.mark.kind, pytest.mark.slow]

NAMESPACE = "brokkr-helm4"
BROKER_RELEASE, AGENT_RELEASE = "broker4", "agent4"
BROKER = f"{BROKER_RELEASE}-brokkr-broker"  # the charts' full names for these releases
AGENT = f"{AGENT_RELEASE}-brokkr-agent"
DATA_PVC = f"data-{BROKER}-postgresql-0"
HEARTBEAT_TIMEOUT = 120
ROLLOUT_TIMEOUT = 180
# Kinds a chart may create in its namespace (what uninstall must remove).
NAMESPACED_KINDS = (
    "all,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies,"
    "persistentvolumeclaims,poddisruptionbudgets"
)


def helm4(cluster: Cluster, *args: str | Path) -> str:
    return cluster.run("helm4", *args).stdout


def release_status(cluster: Cluster, release: str) -> tuple[str, int]:
    found = json.loads(helm4(cluster, "status", release, "-n", NAMESPACE, "--output", "json"))
    return found["info"]["status"], int(found["version"])


def template_checksum(cluster: Cluster, deployment: str) -> str:
    found = cluster.api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployment}")
    return str(found["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def workloads_run(kube_cluster: HelmChartsCluster, *deployments: str) -> None:
    client = kube_cluster.kube_client
    assert client is not None
    wait_for_deployments_to_run(client, list(deployments), NAMESPACE, ROLLOUT_TIMEOUT)


def leftovers(cluster: Cluster) -> set[str]:
    done = cluster.kubectl("get", NAMESPACED_KINDS, "-n", NAMESPACE, "--output", "json")
    names = {
        f"{item['kind']}/{item['metadata']['name']}" for item in json.loads(done.stdout)["items"]
    }
    return names - {"ServiceAccount/default", "ConfigMap/kube-root-ca.crt"}


def test_helm4_installs_upgrades_and_uninstalls_both_charts(
    cluster: Cluster, kind_images: KindImages, kube_cluster: HelmChartsCluster, tmp_path: Path
):
    restricted_namespace(cluster, NAMESPACE)
    wait = helm_wait(NAMESPACE)
    forward = None
    try:
        started = time.monotonic()
        broker = broker_values(kind_images)
        helm4(cluster, "install", BROKER_RELEASE, BROKER_CHART, *wait,
              "--values", write_values(tmp_path, "broker", broker))  # fmt: skip
        e2e_kind.record("helm4_broker_install_to_ready_s", time.monotonic() - started)
        assert release_status(cluster, BROKER_RELEASE) == ("deployed", 1)
        workloads_run(kube_cluster, BROKER)
        assert kube_cluster.kube_client is not None
        wait_for_stateful_sets_to_run(
            kube_cluster.kube_client, [f"{BROKER}-postgresql"], NAMESPACE, ROLLOUT_TIMEOUT
        )

        forward = PortForward(cluster, NAMESPACE, BROKER, 3000)
        admin = BrokerAdmin(forward.url, cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"])
        agent_id, pak = admin.agent("helm4-agent", "kind-helm4")
        agent = agent_values(kind_images, pak)
        agent["broker"]["url"] = f"http://{BROKER}.{NAMESPACE}.svc:3000"
        agent["agent"].update(name="helm4-agent", clusterName="kind-helm4")
        helm4(cluster, "install", AGENT_RELEASE, AGENT_CHART, *wait,
              "--values", write_values(tmp_path, "agent", agent))  # fmt: skip
        assert release_status(cluster, AGENT_RELEASE) == ("deployed", 1)
        workloads_run(kube_cluster, AGENT)

        def heard_from() -> dict[str, Any] | None:
            found = admin.get_agent(agent_id)
            return found if found["last_heartbeat"] and found["k8s_reachable"] else None

        assert poll(heard_from, HEARTBEAT_TIMEOUT, "the agent's heartbeat")["status"] == "ACTIVE"
        for release in (BROKER_RELEASE, AGENT_RELEASE):
            tested = helm4(cluster, "test", release, "-n", NAMESPACE, "--timeout", "180s")
            assert "Phase:          Succeeded" in tested, tested

        # Upgrade: a value each chart writes into its ConfigMap, so the pods must roll.
        for release, chart, deployment, value in (
            (BROKER_RELEASE, BROKER_CHART, BROKER, "broker.log.format=text"),
            (AGENT_RELEASE, AGENT_CHART, AGENT, "agent.log.level=debug"),
        ):
            before = template_checksum(cluster, deployment)
            helm4(cluster, "upgrade", release, chart, *wait, "--reuse-values", "--set", value)
            assert release_status(cluster, release) == ("deployed", 2)
            assert template_checksum(cluster, deployment) != before, f"{value} changed nothing"
            workloads_run(kube_cluster, deployment)
        config = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{AGENT}")
        assert config["data"]["BROKKR__LOG__LEVEL"] == "debug"
        forward.stop()
        forward = PortForward(cluster, NAMESPACE, BROKER, 3000)  # the old pod is gone
        admin = BrokerAdmin(forward.url, cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"])
        after = admin.get_agent(agent_id)["last_heartbeat"]
        poll(
            lambda: admin.get_agent(agent_id)["last_heartbeat"] != after,
            HEARTBEAT_TIMEOUT,
            "a heartbeat from the upgraded agent to the upgraded broker",
        )

        for release in (AGENT_RELEASE, BROKER_RELEASE):
            helm4(cluster, "uninstall", release, "-n", NAMESPACE, "--wait", "--timeout", "180s")
        expected = {f"PersistentVolumeClaim/{DATA_PVC}"}
        poll(lambda: leftovers(cluster) == expected, 120, "only the data PVC to be left")
        cluster_wide = cluster.kubectl("get", "clusterroles,clusterrolebindings", "-o", "name")
        assert AGENT not in cluster_wide.stdout
    finally:
        if forward is not None:
            forward.stop()
        for release in (AGENT_RELEASE, BROKER_RELEASE):
            cluster.run("helm4", "uninstall", release, "-n", NAMESPACE, "--wait", check=False)
        remove_namespace(cluster, NAMESPACE)
