"""Both charts on real pods of a kind cluster: probes, storage, Services, NetworkPolicy,
Pod Security, the in-cluster agent, `helm test` and uninstall.

The tests share one installation (the session fixture `brokkr` in conftest.py) and
run in file order; the last one uninstalls.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from typing import Any

import pytest
from pytest_helm_charts.clusters import Cluster as HelmChartsCluster
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run
from pytest_helm_charts.k8s.stateful_set import wait_for_stateful_sets_to_run

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.containers.podman import podman
from brokkr_dev.local.broker_admin import BrokerUnavailable
from tests.e2e_kind.conftest import (
    AGENT,
    AGENT_NAME,
    AGENT_RELEASE,
    BROKER,
    BROKER_RELEASE,
    CLUSTER_NAME,
    DATA_PVC,
    NAMESPACE,
    POSTGRESQL,
    Brokkr,
    Cluster,
    ready,
    restricted_spec,
    selector,
    tcp_check,
)

pytestmark = [pytest.mark.kind, pytest.mark.slow]
APPLY_TIMEOUT = 120


def podman_arch(reference: str) -> str:
    done = subprocess.run(
        podman("image", "inspect", "--format", "{{.Architecture}}", reference),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_images_match_the_node_architecture_and_run_without_a_registry(brokkr: Brokkr):
    node = brokkr.cluster.api.get("/api/v1/nodes")["items"][0]
    arch = node["status"]["nodeInfo"]["architecture"]
    loaded = (brokkr.images.broker, brokkr.images.agent, brokkr.images.postgresql.reference)
    assert {podman_arch(ref) for ref in loaded} == {arch}
    running = {}
    for pod in brokkr.cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]:
        for container in pod["spec"]["containers"]:
            # Never pulled: the pods can only run because the images were loaded.
            assert container["imagePullPolicy"] == "Never", container["name"]
            running[container["image"]] = ready(pod)
    assert running == dict.fromkeys(loaded, True)


def test_workloads_run_as_pytest_helm_charts_sees_them(
    brokkr: Brokkr, kube_cluster: HelmChartsCluster
):
    """Another client's view of the installation: every replica available."""
    client = kube_cluster.kube_client
    assert client is not None
    deployments = wait_for_deployments_to_run(
        client, [BROKER, AGENT], NAMESPACE, 60, missing_ok=False
    )
    assert sorted(d.name for d in deployments) == sorted([BROKER, AGENT])
    (postgresql,) = wait_for_stateful_sets_to_run(client, [POSTGRESQL], NAMESPACE, 60)
    assert postgresql.obj["status"]["readyReplicas"] == 1


def test_broker_is_ready_through_its_readyz_probe(brokkr: Brokkr):
    deployment = brokkr.cluster.api.get(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{BROKER}"
    )
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/readyz"
    (pod,) = brokkr.cluster.pods(NAMESPACE, selector("broker"))
    assert ready(pod)
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    # The same endpoint through the Service answers with the database checked.
    response = brokkr.admin.session.get(brokkr.admin.api.removesuffix("/api/v1") + "/readyz")
    assert response.status_code == 200, response.text


def test_bundled_postgresql_keeps_its_data_on_a_bound_pvc_across_a_restart(brokkr: Brokkr):
    cluster = brokkr.cluster
    claim = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{DATA_PVC}")
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"], "bound by the default StorageClass's provisioner"
    # Something only the database knows: an agent created through the broker.
    marker, _ = brokkr.admin.agent(f"survivor-{secrets.token_hex(3)}", CLUSTER_NAME)
    (old,) = cluster.pods(NAMESPACE, selector("postgresql"))
    cluster.api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{old['metadata']['name']}")

    def restarted() -> bool:
        pods = cluster.pods(NAMESPACE, selector("postgresql"))
        return (
            bool(pods) and pods[0]["metadata"]["uid"] != old["metadata"]["uid"] and ready(pods[0])
        )

    poll(restarted, 180, "a new, Ready PostgreSQL pod")
    # The broker reconnects by itself and still knows the agent. Its pod may never
    # have looked unready (a short outage can fall between two kubelet probes), so
    # the API says when it is back: 503 "retry later" until then.
    poll(lambda: ready(cluster.pods(NAMESPACE, selector("broker"))[0]), 120, "the broker Ready")
    agent = poll(
        lambda: brokkr.admin.get_agent(marker),
        60,
        "the broker to answer again",
        not_yet=(BrokerUnavailable,),
    )
    assert agent["id"] == marker


def test_agent_in_cluster_is_active_with_only_a_service_url_and_a_pak(brokkr: Brokkr):
    config = brokkr.cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{AGENT}")
    assert config["data"]["BROKKR__AGENT__BROKER_URL"] == f"http://{BROKER}.{NAMESPACE}.svc:3000"
    assert not any("KUBECONFIG" in key for key in config["data"])  # in-cluster ServiceAccount

    def heard_from() -> dict[str, Any] | None:
        agent = brokkr.admin.get_agent(brokkr.agent_id)
        return agent if agent["last_heartbeat"] and agent["k8s_reachable"] else None

    agent = poll(heard_from, 120, "a heartbeat with the Kubernetes API reachable")
    assert (agent["name"], agent["cluster_name"], agent["status"]) == (
        AGENT_NAME,
        CLUSTER_NAME,
        "ACTIVE",
    )


def test_a_stack_posted_to_the_broker_is_applied_by_the_agent_and_reported(brokkr: Brokkr):
    cluster, admin = brokkr.cluster, brokkr.admin
    target = f"apps-{secrets.token_hex(3)}"
    cluster.api.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}},
    )
    try:
        generator = admin.generator(f"kind-{secrets.token_hex(3)}")
        stack = admin.stack(f"kind-{secrets.token_hex(3)}", generator)
        admin.register(generator, brokkr.agent_id)
        admin.target(brokkr.agent_id, stack)
        manifest = (
            "apiVersion: v1\nkind: ConfigMap\n"
            f"metadata:\n  name: from-broker\n  namespace: {target}\n"
            "data:\n  greeting: hello from the broker\n"
        )
        deployed = admin.deploy(stack, manifest)
        path = f"/api/v1/namespaces/{target}/configmaps/from-broker"
        applied = poll(
            lambda: cluster.api.exists(path) and cluster.api.get(path),
            APPLY_TIMEOUT,
            "the agent to apply the ConfigMap",
        )
        assert applied["data"] == {"greeting": "hello from the broker"}
        event = poll(
            lambda: admin.event_for(brokkr.agent_id, deployed["id"]),
            APPLY_TIMEOUT,
            "the agent's event for the deployment object",
        )
        assert event["status"] == "SUCCESS", event
    finally:
        cluster.api.request("DELETE", f"/api/v1/namespaces/{target}")


@pytest.mark.parametrize("release", [BROKER_RELEASE, AGENT_RELEASE])
def test_helm_test_passes(brokkr: Brokkr, release: str):
    done = brokkr.cluster.helm("test", release, "--namespace", NAMESPACE, "--timeout", "180s")
    assert "Phase:          Succeeded" in done.stdout, done.stdout


def test_network_policy_lets_only_the_broker_reach_postgresql(brokkr: Brokkr):
    cluster = brokkr.cluster
    service = f"{POSTGRESQL}.{NAMESPACE}.svc"
    # An unlabelled pod in the same namespace: dropped by the PostgreSQL policy.
    phase, logs = cluster.run_pod(
        NAMESPACE,
        f"intruder-{secrets.token_hex(3)}",
        restricted_spec(brokkr.images.broker, tcp_check(service, 5432)),
    )
    assert phase == "Failed", f"an unlabelled pod reached PostgreSQL:\n{logs}"
    assert "refused or dropped" in logs
    # The broker pod itself gets through (the control: the Service and DNS work).
    (pod,) = cluster.pods(NAMESPACE, selector("broker"))
    done = cluster.kubectl(
        "exec",
        "--namespace",
        NAMESPACE,
        pod["metadata"]["name"],
        "--",
        *tcp_check(service, 5432),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_restricted_pod_security_is_enforced_and_our_pods_are_admitted(brokkr: Brokkr):
    cluster = brokkr.cluster
    labels = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    spec = restricted_spec(brokkr.images.broker, ["true"])
    del spec["securityContext"]["runAsNonRoot"]
    spec["containers"][0]["securityContext"] = {"privileged": True}
    response = cluster.api.request(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"}, "spec": spec},
    )
    assert response.status_code == 403, response.text
    assert 'violates PodSecurity "restricted:latest"' in response.json()["message"]
    pods = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    components = {p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pods}
    assert {"broker", "postgresql", "agent"} <= components
    assert all(ready(p) for p in pods if p["status"].get("phase") == "Running")


def test_uninstall_leaves_only_the_data_pvc(brokkr: Brokkr, cluster: Cluster):
    for release in (AGENT_RELEASE, BROKER_RELEASE):
        cluster.helm("uninstall", release, "--namespace", NAMESPACE, "--wait", "--timeout", "180s")

    def leftovers() -> set[str]:
        done = cluster.kubectl(
            "get",
            "all,configmaps,secrets,serviceaccounts,roles,rolebindings,"
            "networkpolicies,persistentvolumeclaims",
            "--namespace",
            NAMESPACE,
            "--output",
            "json",
        )
        names = set()
        for item in json.loads(done.stdout)["items"]:
            name = f"{item['kind']}/{item['metadata']['name']}"
            if name not in ("ServiceAccount/default", "ConfigMap/kube-root-ca.crt"):
                names.add(name)
        return names

    expected = {f"PersistentVolumeClaim/{DATA_PVC}"}
    try:
        poll(lambda: leftovers() == expected, 120, "only the data PVC to be left")
    except TimeoutError:
        assert leftovers() == expected
    cluster_wide = cluster.kubectl("get", "clusterroles,clusterrolebindings", "--output", "name")
    assert AGENT not in cluster_wide.stdout
