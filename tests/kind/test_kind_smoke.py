"""A real kind cluster runs real pods: probes, Service routing, DNS, NetworkPolicy.

Uses the debootstrap Python base image (podman), loaded into the node the way the
e2e tests load Brokkr's images, so no registry is involved.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from brokkr_dev.base import toolchain
from brokkr_dev.containers import baseimages
from tests.fixtures.kind import KindCluster

pytestmark = pytest.mark.kind

PORT = 8080
FETCH = (
    "import sys, urllib.request\n"
    "try:\n"
    "    urllib.request.urlopen(sys.argv[1], timeout=3).read()\n"
    "except OSError as exc:\n"
    "    sys.exit(f'unreachable: {exc}')\n"
)
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def python_image(kind_cluster: KindCluster) -> str:
    image = baseimages.ensure(baseimages.for_arch(toolchain.host_platform()[1]))
    kind_cluster.load_images([image])
    return image


@pytest.fixture
def namespace(kind_cluster: KindCluster) -> Iterator[str]:
    name = f"smoke-{secrets.token_hex(3)}"
    kind_cluster.kubectl("create", "namespace", name)
    kind_cluster.kubectl(
        "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"
    )
    yield name
    kind_cluster.kubectl("delete", "namespace", name, "--wait=false")


def pod(name: str, image: str, labels: dict[str, str], command: list[str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": name,
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": RESTRICTED,
                    "readinessProbe": {"exec": {"command": ["true"]}},
                }
            ]
        },
    }


def apply(cluster: KindCluster, namespace: str, *objects: dict) -> None:
    document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", check=False, input_text=document)
    assert result.returncode == 0, result.stderr


def fetch(cluster: KindCluster, namespace: str, client: str, url: str) -> bool:
    result = cluster.kubectl(
        "exec", "-n", namespace, client, "--", "python3", "-c", FETCH, url, check=False
    )
    return result.returncode == 0


def test_pods_run_services_route_and_network_policy_is_enforced(
    kind_cluster: KindCluster, python_image: str, namespace: str
) -> None:
    server = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": python_image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-m", "http.server", str(PORT)],
                            "workingDir": "/tmp",
                            "securityContext": RESTRICTED,
                            "readinessProbe": {"httpGet": {"path": "/", "port": PORT}},
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": PORT, "targetPort": PORT}]},
    }
    sleep = ["python3", "-c", "import time; time.sleep(10**6)"]
    apply(
        kind_cluster,
        namespace,
        server,
        service,
        pod("allowed", python_image, {"access": "web"}, sleep),
        pod("stranger", python_image, {"access": "none"}, sleep),
    )
    # The kubelet's real HTTP readiness probe must pass for the Deployment to be ready.
    wait = kind_cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Available",
        "deployment/web",
        "--timeout=180s",
        check=False,
        timeout=200,
    )
    assert wait.returncode == 0, wait.stderr
    for name in ("allowed", "stranger"):
        ready = kind_cluster.kubectl(
            "wait",
            "-n",
            namespace,
            "--for=condition=Ready",
            f"pod/{name}",
            "--timeout=120s",
            check=False,
            timeout=140,
        )
        assert ready.returncode == 0, ready.stderr

    url = f"http://web.{namespace}.svc.cluster.local:{PORT}/"
    # Cluster DNS and kube-proxy: both clients reach the Service by name.
    for client in ("allowed", "stranger"):
        kind_cluster.wait_for(
            lambda client=client: fetch(kind_cluster, namespace, client, url),
            f"{client} to reach {url}",
            timeout=90,
        )

    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web-only-from-allowed"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"access": "web"}}}]}],
        },
    }
    apply(kind_cluster, namespace, policy)
    kind_cluster.wait_for(
        lambda: not fetch(kind_cluster, namespace, "stranger", url),
        "the NetworkPolicy to block the pod without the allowed label",
        timeout=90,
    )
    assert fetch(kind_cluster, namespace, "allowed", url), "the allowed pod lost access"
