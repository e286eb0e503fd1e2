"""Chart tests on a real Kubernetes API (the local provider: real apiserver + kwok).

kwok fakes the pods (no container runs), so `helm install --wait` completes on
kwok's Ready status; what is real is the API server: admission (PodSecurity),
RBAC objects, helm's lookup of existing Secrets, garbage collection.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from brokkr_dev.charts import lint as charts
from tests.charts.render import AGENT, BROKER

pytestmark = [pytest.mark.charts, pytest.mark.k8s, pytest.mark.slow]
HELM_TIMEOUT = 240


def helm(cluster: Any, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm 3 against the test cluster only; fail with helm's output."""
    done = subprocess.run(
        [charts.tool("helm"), *[str(a) for a in args]],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"helm {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}"
    )
    return done


def secret_data(cluster: Any, namespace: str, name: str) -> dict[str, str]:
    secret = cluster.client.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_admin_pak_survives_helm_upgrade(k8s_cluster, k8s_namespace):
    dev = BROKER.scenario("development")
    common = [
        "--namespace",
        k8s_namespace,
        "-f",
        dev,
        "--set",
        "postgresql.persistence.enabled=false",
    ]
    helm(k8s_cluster, "install", "brokkr", BROKER.path, *common)
    before = secret_data(k8s_cluster, k8s_namespace, "brokkr-brokkr-broker-admin")
    db_before = secret_data(k8s_cluster, k8s_namespace, "brokkr-brokkr-broker-postgresql")
    assert re.fullmatch(r"brokkr_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}", before["pak"])
    assert before["pak-hash"] == hashlib.sha256(before["pak"].split("_")[2].encode()).hexdigest()

    helm(k8s_cluster, "upgrade", "brokkr", BROKER.path, *common, "--set", "broker.log.level=info")
    after = secret_data(k8s_cluster, k8s_namespace, "brokkr-brokkr-broker-admin")
    assert after == before
    assert secret_data(k8s_cluster, k8s_namespace, "brokkr-brokkr-broker-postgresql") == db_before
    config = k8s_cluster.client.get(
        f"/api/v1/namespaces/{k8s_namespace}/configmaps/brokkr-brokkr-broker"
    )
    assert config["data"]["BROKKR__LOG__LEVEL"] == "info"  # the upgrade did apply


def test_an_existing_admin_secret_with_the_public_pak_is_refused(k8s_cluster, k8s_namespace):
    public_hash = "4c697273df3d764cba950bb5c04368097685f09259f5bd880d892cf1ff9f4cdd"
    k8s_cluster.client.create(
        f"/api/v1/namespaces/{k8s_namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "weak"},
            "stringData": {"pak-hash": public_hash},
        },
    )
    done = subprocess.run(
        [
            charts.tool("helm"),
            "install",
            "brokkr",
            str(BROKER.path),
            "--namespace",
            k8s_namespace,
            "--set",
            "admin.pak.existingSecret=weak",
        ],
        env=k8s_cluster.env,
        capture_output=True,
        text=True,
        timeout=HELM_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert "publicly known test PAK" in done.stderr


def _pods_of(manifests: str) -> list[dict[str, Any]]:
    """A Pod object for every pod template in the rendered manifests.

    A StatefulSet's claim templates become PVC volumes, as its controller does.
    """
    pods = []
    for doc in yaml.safe_load_all(manifests):
        if doc and doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            name = doc["metadata"]["name"]
            template = doc["spec"]["template"]
            spec = dict(template["spec"])
            claims = doc["spec"].get("volumeClaimTemplates", [])
            spec["volumes"] = [
                *spec.get("volumes", []),
                *(
                    {
                        "name": c["metadata"]["name"],
                        "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-{name}-0"},
                    }
                    for c in claims
                ),
            ]
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "labels": template["metadata"]["labels"]},
                    "spec": spec,
                }
            )
        elif doc and doc["kind"] == "Pod":  # `helm test` pods
            pods.append(doc)
    return pods


def _service_accounts(manifests: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifests) if d and d["kind"] == "ServiceAccount"]


@pytest.fixture
def restricted_namespace(k8s_cluster, k8s_namespace):
    """The test namespace with PodSecurity enforce=restricted (latest)."""
    k8s_cluster.client.patch(
        f"/api/v1/namespaces/{k8s_namespace}",
        {
            "metadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }
            }
        },
    )
    return k8s_namespace


def _dry_run_pod(cluster: Any, namespace: str, pod: dict[str, Any]) -> Any:
    return cluster.client.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod, dryRun="All")


def test_podsecurity_admission_is_enforcing(k8s_cluster, restricted_namespace):
    """The control: a root, privileged pod is refused, so the next test means something."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    response = _dry_run_pod(k8s_cluster, restricted_namespace, pod)
    assert response.status_code == 403, response.text
    assert 'violates PodSecurity "restricted:latest"' in response.json()["message"]


@pytest.mark.parametrize("scenario", charts.SCENARIOS)
@pytest.mark.parametrize("chart", [BROKER, AGENT], ids=lambda c: c.name)
def test_every_scenario_pod_is_admitted_as_restricted(
    k8s_cluster, restricted_namespace, chart, scenario
):
    manifests = charts.render(chart, [chart.scenario(scenario)], namespace=restricted_namespace)
    for account in _service_accounts(manifests):  # the ServiceAccount admission wants them
        k8s_cluster.client.create(
            f"/api/v1/namespaces/{restricted_namespace}/serviceaccounts", account
        )
    pods = _pods_of(manifests)
    assert pods
    for pod in pods:
        response = _dry_run_pod(k8s_cluster, restricted_namespace, pod)
        assert response.status_code == 201, f"{pod['metadata']['name']}: {response.text}"
        assert not response.headers.get("Warning"), response.headers.get("Warning")


PVC = "data-brokkr-brokkr-broker-postgresql-0"  # the StatefulSet's claim for pod 0


def _data_volume(cluster: Any, namespace: str) -> str:
    """A PersistentVolume reserved for the bundled PostgreSQL's claim (no provisioner here)."""
    name = f"{namespace}-data"
    cluster.client.create(
        "/api/v1/persistentvolumes",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/tmp/{name}"},
                "claimRef": {"namespace": namespace, "name": PVC},
            },
        },
    )
    return name


def _bind(cluster: Any, namespace: str, volume: str) -> None:
    """Bind the chart's claim to the volume, as the PV controller would.

    The local cluster runs no persistentvolume-binder controller; where one runs, it
    does the same (the claimRef reserves the volume) and these patches change nothing.
    """
    claim = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{PVC}"
    cluster.wait_for(
        lambda: cluster.client.exists(claim), f"the StatefulSet to create {PVC}", timeout=60
    )
    cluster.client.patch(
        claim,
        {
            "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"volumeName": volume},
        },
    )
    cluster.client.patch(
        f"{claim}/status",
        {
            "status": {
                "phase": "Bound",
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "1Gi"},
            }
        },
    )
    cluster.client.patch(
        f"/api/v1/persistentvolumes/{volume}/status", {"status": {"phase": "Bound"}}
    )


def _remove(cluster: Any, path: str) -> None:
    """Delete an object, dropping the protection finalizers no controller here removes."""
    if cluster.client.exists(path):
        cluster.client.patch(path, {"metadata": {"finalizers": None}})
        cluster.client.request("DELETE", path)


LEFTOVER_KINDS = {
    "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
    "statefulsets": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "replicasets": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "pods": "/api/v1/namespaces/{ns}/pods",
    "services": "/api/v1/namespaces/{ns}/services",
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
    "secrets": "/api/v1/namespaces/{ns}/secrets",
    "serviceaccounts": "/api/v1/namespaces/{ns}/serviceaccounts",
    "roles": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "rolebindings": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "persistentvolumeclaims": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
}
# What a namespace holds by itself, and what the test created (not the charts).
NOT_FROM_CHARTS = {
    "configmaps/kube-root-ca.crt",
    "serviceaccounts/default",
    "secrets/brokkr-agent-pak",
}


def _leftovers(cluster: Any, namespace: str) -> set[str]:
    found = set()
    for kind, path in LEFTOVER_KINDS.items():
        for item in cluster.client.get(path.format(ns=namespace))["items"]:
            found.add(f"{kind}/{item['metadata']['name']}")
    for kind in ("clusterroles", "clusterrolebindings"):
        listing = cluster.client.get(
            f"/apis/rbac.authorization.k8s.io/v1/{kind}",
            labelSelector="app.kubernetes.io/instance=brokkr-agent",
        )
        found |= {
            f"{kind}/{i['metadata']['name']}"
            for i in listing["items"]
            if i["metadata"]["name"].startswith(f"{namespace}-")
        }
    return found - NOT_FROM_CHARTS


def _helm_in_background(cluster: Any, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [charts.tool("helm"), *[str(a) for a in args]],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_install_wait_then_uninstall_leaves_only_the_data_pvc(k8s_cluster, k8s_namespace):
    volume = _data_volume(k8s_cluster, k8s_namespace)
    ns = ["--namespace", k8s_namespace]
    try:
        install = _helm_in_background(
            k8s_cluster,
            "install",
            "brokkr",
            BROKER.path,
            *ns,
            "-f",
            BROKER.scenario("development"),
            "--set",
            "postgresql.persistence.storageClass=-",
            "--wait",
            "--timeout",
            "180s",
        )
        try:
            _bind(k8s_cluster, k8s_namespace, volume)
            output, _ = install.communicate(timeout=HELM_TIMEOUT)
        finally:
            if install.poll() is None:
                install.kill()
                install.wait()
        assert install.returncode == 0, f"helm install --wait of the broker failed:\n{output}"
        k8s_cluster.client.create(
            f"/api/v1/namespaces/{k8s_namespace}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "brokkr-agent-pak"},
                "stringData": {"pak": "brokkr_Test1234_abcdefghijklmnopqrstuvwx"},
            },
        )
        # Cluster-scoped names carry the namespace, so parallel runs cannot collide.
        helm(
            k8s_cluster,
            "install",
            "brokkr-agent",
            AGENT.path,
            *ns,
            "-f",
            AGENT.scenario("development"),
            "--set",
            f"fullnameOverride={k8s_namespace}-agent",
            "--wait",
            "--timeout",
            "180s",
        )
        status = k8s_cluster.client.get(
            f"/apis/apps/v1/namespaces/{k8s_namespace}/statefulsets/brokkr-brokkr-broker-postgresql"
        )
        assert status["status"].get("readyReplicas") == 1
        agent = k8s_cluster.client.get(
            f"/apis/apps/v1/namespaces/{k8s_namespace}/deployments/{k8s_namespace}-agent"
        )
        assert agent["status"].get("readyReplicas") == 1

        helm(k8s_cluster, "uninstall", "brokkr-agent", *ns, "--wait", "--timeout", "120s")
        helm(k8s_cluster, "uninstall", "brokkr", *ns, "--wait", "--timeout", "120s")
        expected = {f"persistentvolumeclaims/{PVC}"}
        try:  # garbage collection (ReplicaSets, Pods) finishes after helm returns
            k8s_cluster.wait_for(
                lambda: _leftovers(k8s_cluster, k8s_namespace) == expected,
                f"only the data PVC left in {k8s_namespace}",
                timeout=60,
            )
        except TimeoutError:
            assert _leftovers(k8s_cluster, k8s_namespace) == expected
    finally:
        _remove(k8s_cluster, f"/api/v1/namespaces/{k8s_namespace}/persistentvolumeclaims/{PVC}")
        _remove(k8s_cluster, f"/api/v1/persistentvolumes/{volume}")
