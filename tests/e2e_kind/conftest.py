"""Both charts installed on a real kind cluster, once per session (marker `kind`).

`nox -s e2e-kind` runs these tests; `nox -s tests` deselects them. The cluster
comes from the `kind_cluster` fixture (tests/fixtures/kind.py: the engine, the
registry-free node image, the provisioner and NetworkPolicy enforcement). Here:

- `kind_images`: the broker, agent and PostgreSQL images for the node's
  architecture, built with podman as `nox -s images` builds them, loaded into the node;
- `brokkr`: a restricted namespace with the broker chart (bundled PostgreSQL from
  the Debian image, NetworkPolicies on) and the agent chart pointed at the broker's
  in-cluster Service with only a PAK; install-to-Ready times are recorded;
- helpers that run helm and kubectl against that cluster and short-lived probe pods;
- `kube_config`: pytest-helm-charts' option fixture, answered with the kind cluster's
  kubeconfig, so its `kube_cluster` fixture (a pykube client) and its waits for
  Deployments and StatefulSets work on whichever Kubernetes minor the session runs.

Every wait polls with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.base.process import stop_child
from brokkr_dev.charts import lint as charts
from brokkr_dev.clusters import KindProvider, e2e_kind
from brokkr_dev.clusters.api import ClusterClient
from brokkr_dev.containers import postgres_image
from brokkr_dev.containers.podman import podman
from brokkr_dev.local.broker_admin import BrokerAdmin
from tests.fixtures.kind import KindCluster, node_kubectl

BROKER_CHART = charts.CHARTS_DIR / "brokkr-broker"
AGENT_CHART = charts.CHARTS_DIR / "brokkr-agent"
NAMESPACE = "brokkr-e2e"
BROKER_RELEASE = "broker"
AGENT_RELEASE = "agent"
BROKER = "broker-brokkr-broker"  # the chart's full name for release "broker"
POSTGRESQL = f"{BROKER}-postgresql"
AGENT = f"{AGENT_RELEASE}-brokkr-agent"  # the agent chart's full name for release "agent"
DATA_PVC = f"data-{POSTGRESQL}-0"
AGENT_NAME = "kind-agent"
CLUSTER_NAME = "kind-e2e"
READY_TIMEOUT = 300
# The test that uninstalls the shared `brokkr` releases (test_charts_on_kind.py).
UNINSTALL_TEST = "test_uninstall_leaves_only_the_data_pvc"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the shared `brokkr` install that sort after the one that uninstalls it
    (their file's name comes later) move to just before it; nothing else moves."""
    at = next((i for i, item in enumerate(items) if item.name == UNINSTALL_TEST), None)
    if at is None:
        return
    late = [item for item in items[at + 1 :] if "brokkr" in getattr(item, "fixturenames", ())]
    if late:
        rest = [item for item in items if not any(item is moved for moved in late)]
        at = rest.index(items[at])
        items[:] = [*rest[:at], *late, *rest[at:]]


def tool(name: str) -> str:
    """A pinned CLI: helm, or the node's kubectl (tools.toml [kubernetes-node-1.NN])."""
    if name == "kubectl":
        return str(node_kubectl())
    return charts.tool(name)


@dataclass
class Cluster:
    """helm and kubectl against the kind cluster only, and a few API shortcuts."""

    kind: KindCluster

    @property
    def api(self) -> Any:
        return self.kind.client

    def run(
        self, program: str, *args: str | Path, timeout: float = READY_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [tool(program), *map(str, args)],
            env=self.kind.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{program} {' '.join(map(str, args))} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def helm(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, **kwargs)

    def kubectl(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kwargs)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/pods"
        return list(self.api.get(path, labelSelector=selector)["items"])

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        found = self.api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return {k: base64.b64decode(v).decode() for k, v in found["data"].items()}

    def run_pod(
        self,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        labels: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> tuple[str, str]:
        """Run a pod to completion; (phase, logs). The pod is deleted afterwards."""
        path = f"/api/v1/namespaces/{namespace}/pods"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"restartPolicy": "Never", **spec},
        }
        self.api.create(path, body)

        def finished() -> str | None:
            phase = self.api.get(f"{path}/{name}")["status"].get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        try:
            phase = poll(finished, timeout, f"pod {name} to finish")
            logs = self.api.request("GET", f"{path}/{name}/log").text
            return str(phase), logs
        finally:
            self.api.request("DELETE", f"{path}/{name}", gracePeriodSeconds=0)


def restricted_spec(image: str, command: list[str]) -> dict[str, Any]:
    """A pod spec the restricted Pod Security profile admits, running `command`."""
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "probe",
                "image": image,
                "imagePullPolicy": "Never",
                "command": command,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def tcp_check(host: str, port: int, timeout: float = 5.0) -> list[str]:
    """A command (for our Python images) that exits 0 when host:port accepts a TCP connection."""
    script = (
        "import socket, sys\n"
        f"try: socket.create_connection(({host!r}, {port}), {timeout}).close()\n"
        "except OSError as exc: print('refused or dropped:', exc); sys.exit(1)\n"
        "print('connected')\n"
    )
    return ["python", "-c", script]


@dataclass(frozen=True)
class KindImages:
    """References of the images loaded into the node, and chart values that use them."""

    broker: str
    agent: str
    postgresql: postgres_image.PostgresImage
    arch: str

    @staticmethod
    def values(reference: str) -> dict[str, str]:
        """image.* values for a `localhost/<repo>:<tag>` reference, never pulled."""
        registry, rest = reference.split("/", 1)
        repository, tag = rest.rsplit(":", 1)
        return {"registry": registry, "repository": repository, "tag": tag, "pullPolicy": "Never"}


def chart_default_image(chart: Path, *keys: str) -> str:
    """The image a chart's pods ask for with default values (registry/repository:tag)."""
    values = yaml.safe_load((chart / "values.yaml").read_text())
    for key in keys:
        values = values[key]
    app_version = yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"]
    return f"{values['registry']}/{values['repository']}:{values['tag'] or app_version}"


def also_as_chart_defaults(built: e2e_kind.KindImages) -> list[str]:
    """Tag the built images with the references the charts use by default (the
    guides install with defaults; nothing can be pulled here, and the default
    `IfNotPresent` finds them in the node). PostgreSQL is our Debian-built stand-in
    for the official image, under that image's name."""
    names = {
        built.broker: chart_default_image(BROKER_CHART, "image"),
        built.agent: chart_default_image(AGENT_CHART, "image"),
        built.postgresql.reference: chart_default_image(BROKER_CHART, "postgresql", "image"),
    }
    for reference, default in names.items():
        subprocess.run(podman("tag", reference, default), check=True, capture_output=True)
    return list(names.values())


@pytest.fixture(scope="session")
def kind_images(kind_cluster: KindCluster) -> KindImages:
    """Broker, agent and PostgreSQL images for the node's architecture, in the node,
    also under the charts' default references."""
    arch = e2e_kind.node_arch(kind_cluster.client)
    built = e2e_kind.images_for(arch)
    started = time.monotonic()
    references = [built.broker, built.agent, built.postgresql.reference]
    kind_cluster.load_images([*references, *also_as_chart_defaults(built)])
    e2e_kind.record("images_load_s", time.monotonic() - started)
    return KindImages(built.broker, built.agent, built.postgresql, arch)


@dataclass
class Brokkr:
    """Both releases, installed and Ready, with an admin client through a port-forward."""

    cluster: Cluster
    images: KindImages
    admin: BrokerAdmin
    agent_id: str
    agent_pak: str
    seconds: dict[str, float] = field(default_factory=dict)
    forward: PortForward | None = None

    def reconnect(self) -> None:
        """A new port-forward for `admin`: kubectl's ends with the broker pod it picked."""
        if self.forward is not None:
            self.forward.stop()
        self.forward = PortForward(self.cluster, NAMESPACE, BROKER, 3000)
        self.admin.api = self.forward.url + "/api/v1"


def broker_values(kind_images: KindImages) -> dict[str, Any]:
    return {
        "image": KindImages.values(kind_images.broker),
        "postgresql": {
            "image": kind_images.postgresql.chart_values(),
            "persistence": {"size": "1Gi"},
        },
        "networkPolicy": {"enabled": True},
    }


def agent_values(kind_images: KindImages, pak: str) -> dict[str, Any]:
    return {
        "image": KindImages.values(kind_images.agent),
        # Only the Service URL and a PAK: the agent finds the API server itself.
        "broker": {"url": f"http://{BROKER}.{NAMESPACE}.svc:3000", "port": 3000},
        "agent": {"name": AGENT_NAME, "clusterName": CLUSTER_NAME, "pollingInterval": 2},
        "pak": {"value": pak},
        "networkPolicy": {"enabled": True},
    }


def helm_wait(namespace: str = NAMESPACE) -> list[str]:
    """helm arguments for a release in `namespace` that waits until it is Ready."""
    return ["--namespace", namespace, "--wait", "--timeout", f"{READY_TIMEOUT}s"]


def write_values(directory: Path, name: str, values: dict[str, Any]) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


class PortForward:
    """`kubectl port-forward` to a Service on a free local port, stopped by its PID.

    kubectl prints a line for every connection it accepts. A thread reads them all
    (the last few are kept for error messages): an unread pipe fills after a few
    thousand connections, and kubectl then blocks before accepting the next one,
    so new connections hang while kept-alive ones still work.
    """

    def __init__(
        self, cluster: Cluster, namespace: str, service: str, port: int, kind: str = "service"
    ) -> None:
        self.local = free_port()
        self.process = subprocess.Popen(
            [
                tool("kubectl"),
                "port-forward",
                "--namespace",
                namespace,
                f"{kind}/{service}",
                f"{self.local}:{port}",
            ],
            env=cluster.kind.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()  # "Forwarding from 127.0.0.1:N -> 3000"
        if "Forwarding from" not in first:
            stop_child(self.process, timeout=10)
            raise AssertionError(f"kubectl port-forward did not start: {first}")
        self.output: collections.deque[str] = collections.deque(maxlen=10)
        self.connections = 0
        self.reader = threading.Thread(target=self._read, name="port-forward", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("Handling connection for"):
                self.connections += 1
            else:
                self.output.append(line.rstrip())

    def describe(self) -> str:
        """Whether kubectl still runs, how many connections it took, and its errors."""
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        errors = " | ".join(self.output) or "none"
        return f"kubectl port-forward {state}, {self.connections} connections; errors: {errors}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local}"

    def stop(self) -> None:
        stop_child(self.process, timeout=10)
        self.reader.join(timeout=10)


def restricted_namespace(cluster: Cluster, name: str) -> None:
    """A new namespace where PodSecurity admission enforces the restricted profile
    (one left over from an interrupted run is removed first)."""
    if cluster.api.exists(f"/api/v1/namespaces/{name}"):
        remove_namespace(cluster, name)
    cluster.api.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
    )
    poll(
        lambda: cluster.api.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        60,
        f"ServiceAccount default in {name}",
    )


@pytest.fixture(scope="module")
def kube_config(kind_cluster: KindCluster) -> str:
    """pytest-helm-charts reads its cluster from here (its `kube_cluster` fixture)."""
    return str(kind_cluster.kubeconfig)


@contextlib.contextmanager
def cluster_beside(provider: KindProvider, images: list[str], timing: str) -> Iterator[Cluster]:
    """Another kind cluster beside the session's, up with `images` loaded (the time it
    took recorded as `timing`); deleted afterwards unless it was running already."""
    reused = provider.exists() and provider.status().running
    started = time.monotonic()
    provider.up()
    provider.load_images(images)
    e2e_kind.record(timing, time.monotonic() - started)
    client = ClusterClient.from_kubeconfig(provider.kubeconfig)
    try:
        yield Cluster(KindCluster(provider.kubeconfig, client, None, kind=provider))
    finally:
        client.close()
        if not reused:
            provider.down()


@pytest.fixture(scope="session")
def cluster(kind_cluster: KindCluster) -> Cluster:
    return Cluster(kind_cluster)


@pytest.fixture(scope="session")
def brokkr(
    cluster: Cluster, kind_images: KindImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Brokkr]:
    """Install both charts into a restricted namespace and wait until every pod is Ready."""
    work = tmp_path_factory.mktemp("e2e-kind")
    restricted_namespace(cluster, NAMESPACE)
    wait = helm_wait()
    started = time.monotonic()
    cluster.helm(
        "install",
        BROKER_RELEASE,
        BROKER_CHART,
        *wait,
        "--values",
        write_values(work, "broker", broker_values(kind_images)),
    )
    broker_ready = time.monotonic() - started
    forward = PortForward(cluster, NAMESPACE, BROKER, 3000)
    try:
        admin_pak = cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"]
        admin = BrokerAdmin(forward.url, admin_pak)
        agent_id, agent_pak = admin.agent(AGENT_NAME, CLUSTER_NAME)
        agent_started = time.monotonic()
        cluster.helm(
            "install",
            AGENT_RELEASE,
            AGENT_CHART,
            *wait,
            "--values",
            write_values(work, "agent", agent_values(kind_images, agent_pak)),
        )
        agent_ready = time.monotonic() - agent_started
        seconds = {
            "broker_install_to_ready_s": broker_ready,
            "agent_install_to_ready_s": agent_ready,
            "both_install_to_ready_s": time.monotonic() - started,
        }
        for key, value in seconds.items():
            e2e_kind.record(key, value)
        installed = Brokkr(cluster, kind_images, admin, agent_id, agent_pak, seconds, forward)
        yield installed
        forward = installed.forward or forward  # a test may have reconnected
    finally:
        forward.stop()
        for release in (AGENT_RELEASE, BROKER_RELEASE):
            cluster.helm("uninstall", release, "--namespace", NAMESPACE, "--wait", check=False)
        remove_namespace(cluster, NAMESPACE)


def remove_namespace(cluster: Cluster, name: str) -> None:
    """Delete a namespace (and the data PVC in it) and wait until it is gone."""
    cluster.api.request("DELETE", f"/api/v1/namespaces/{name}")
    poll(
        lambda: not cluster.api.exists(f"/api/v1/namespaces/{name}"),
        180,
        f"namespace {name} to be deleted",
    )


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def selector(component: str, release: str = BROKER_RELEASE) -> str:
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"
