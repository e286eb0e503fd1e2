"""Controllers work: Deployments become Available on kwok's fake node, namespaces are
deleted completely, and the garbage collector removes dependents of a deleted owner."""

from __future__ import annotations

import secrets

from tests.fixtures.kube import KubeCluster
from tests.k8s.conftest import condition, configmap, deployment


def test_deployment_becomes_available_with_pods_scheduled_and_ready(
    k8s_cluster: KubeCluster, k8s_namespace: str
) -> None:
    client = k8s_cluster.client
    apps = f"/apis/apps/v1/namespaces/{k8s_namespace}/deployments"
    client.create(apps, deployment("web", replicas=2))
    available = k8s_cluster.wait_for(
        lambda: (
            (d := client.get(f"{apps}/web"))
            and condition(d, "Available") == "True"
            and d["status"].get("readyReplicas") == 2
            and d
        ),
        "Deployment web to become Available with 2 ready replicas",
        timeout=90,
    )
    assert available["status"]["availableReplicas"] == 2
    pods = client.get(f"/api/v1/namespaces/{k8s_namespace}/pods", labelSelector="app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"].startswith("kwok-node-")  # placed by the scheduler
        assert pod["status"]["phase"] == "Running"  # reported by kwok
        assert condition(pod, "Ready") == "True"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


def test_deleting_a_namespace_completes_and_removes_its_objects(
    k8s_cluster: KubeCluster,
) -> None:
    client = k8s_cluster.client
    name = f"t-doomed-{secrets.token_hex(3)}"
    client.create("/api/v1/namespaces", {"metadata": {"name": name}})
    client.create(f"/api/v1/namespaces/{name}/configmaps", configmap("inside"))
    client.create(f"/apis/apps/v1/namespaces/{name}/deployments", deployment("inside", 1))
    client.delete(f"/api/v1/namespaces/{name}")
    assert client.get(f"/api/v1/namespaces/{name}")["status"]["phase"] == "Terminating"
    k8s_cluster.wait_for(
        lambda: not client.exists(f"/api/v1/namespaces/{name}"),
        f"namespace {name} to be deleted",
        timeout=90,
    )


def test_deleting_an_owner_garbage_collects_its_dependents(
    k8s_cluster: KubeCluster, k8s_namespace: str
) -> None:
    client = k8s_cluster.client
    path = f"/api/v1/namespaces/{k8s_namespace}/configmaps"
    owner = client.create(path, configmap("owner"))
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    client.create(path, configmap("dependent", ownerReferences=[reference]))
    client.create(path, configmap("bystander"))
    client.delete(f"{path}/owner", propagationPolicy="Background")
    k8s_cluster.wait_for(
        lambda: not client.exists(f"{path}/dependent"),
        "the garbage collector to delete the dependent",
    )
    assert client.exists(f"{path}/bystander")


def test_deleting_a_deployment_removes_its_replica_sets_and_pods(
    k8s_cluster: KubeCluster, k8s_namespace: str
) -> None:
    client = k8s_cluster.client
    apps = f"/apis/apps/v1/namespaces/{k8s_namespace}"
    client.create(f"{apps}/deployments", deployment("short", replicas=1))
    pods = f"/api/v1/namespaces/{k8s_namespace}/pods"
    k8s_cluster.wait_for(
        lambda: client.get(pods, labelSelector="app=short")["items"], "the Deployment's Pod"
    )
    client.delete(f"{apps}/deployments/short", propagationPolicy="Foreground")
    k8s_cluster.wait_for(
        lambda: (
            not client.get(f"{apps}/replicasets")["items"]
            and not client.get(pods, labelSelector="app=short")["items"]
        ),
        "ReplicaSets and Pods of the deleted Deployment to go",
        timeout=90,
    )
