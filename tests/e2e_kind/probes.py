"""Connection probes and value changes on the shared kind install, for the tests that
prove what a NetworkPolicy lets through and what a changed value does.

- `listener`: a pod in a namespace of its own, accepting TCP on some ports: an
  address outside every rule of our policies.
- `InPod`: TCP connections from inside a running pod of ours (`kubectl exec`, with
  the pod's own network identity, so its NetworkPolicy applies), once or until a
  changed policy takes effect.
- `connect_from_new_pod`: what a short-lived pod with chosen labels sees on some
  ports: unlabelled, no policy selects it (the control that a path is open).
- `changed_values`: `helm upgrade --reuse-values` of a shared release, undone by
  `helm rollback` whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brokkr_dev.base.localnet import wait_for as poll
from tests.e2e_kind.conftest import (
    NAMESPACE,
    Brokkr,
    Cluster,
    helm_wait,
    ready,
    restricted_namespace,
    restricted_spec,
    tcp_check,
)

POLICY_TIMEOUT = 60  # kube-router applies a changed NetworkPolicy within seconds
PROBE_LABEL = {"e2e.brokkr.dev/probe": "network"}  # on every probe pod, to see it gone
REFUSED = "refused or dropped"
ANSWER = re.compile(
    r"^(\d+) (ok|failed)", re.MULTILINE
)  # connect_from_new_pod's script  # what tcp_check and bash_tcp_check print on a failure


def revision(cluster: Cluster, release: str) -> int:
    done = cluster.helm("status", release, "--namespace", NAMESPACE, "--output", "json")
    return int(json.loads(done.stdout)["version"])


@contextlib.contextmanager
def changed_values(
    cluster: Cluster, release: str, chart: Path, *values: str | Path, settle: Callable[[], Any]
) -> Iterator[None]:
    """`helm upgrade` of a shared release with `values` (`--set ...`, `--values ...`) on
    top of the ones in use; afterwards, whatever happened, `helm rollback` to the
    revision before and `settle()` (wait until its pods are back)."""
    before = revision(cluster, release)
    try:
        cluster.helm("upgrade", release, chart, *helm_wait(), "--reuse-values", *values)
        yield
    finally:
        cluster.helm("rollback", release, str(before), *helm_wait())
        settle()


@contextlib.contextmanager
def listener(cluster: Cluster, image: str, ports: tuple[int, ...]) -> Iterator[str]:
    """A pod accepting TCP connections on `ports`, in a namespace of its own without
    NetworkPolicies (a pod may connect unless its own policy stops it); its IP. The
    namespace is deleted afterwards, without waiting."""
    namespace = f"outside-{secrets.token_hex(3)}"
    restricted_namespace(cluster, namespace)  # and its ServiceAccount, which pods need
    try:
        # Every socket listens before the first accept: Ready on one port means all.
        accept = (
            "import socket, threading\n"
            f"servers = [socket.create_server(('', port)) for port in {list(ports)}]\n"
            "def serve(server):\n"
            "    while True:\n"
            "        server.accept()[0].close()\n"
            "for server in servers:\n"
            "    threading.Thread(target=serve, args=(server,)).start()\n"
        )
        spec = restricted_spec(image, ["python", "-c", accept])
        spec["containers"][0]["readinessProbe"] = {
            "tcpSocket": {"port": ports[0]},
            "periodSeconds": 1,
        }
        path = f"/api/v1/namespaces/{namespace}/pods"
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "listener"}, "spec": spec}
        cluster.api.create(path, body)
        pod = poll(
            lambda: (p := cluster.api.get(f"{path}/listener")) and ready(p) and p,
            120,
            f"a Ready listener on ports {ports} in {namespace}",
            interval=0.5,
        )
        yield str(pod["status"]["podIP"])
    finally:
        cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def bash_tcp_check(host: str, port: int, timeout: float = 5.0) -> list[str]:
    """tcp_check for an image without Python (the PostgreSQL image has bash)."""
    script = (
        f"if timeout {timeout:g} bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>&1; "
        f"then echo connected; else echo '{REFUSED}: {host}:{port}'; exit 1; fi"
    )
    return ["bash", "-c", script]


@dataclass(frozen=True)
class InPod:
    """TCP connections tried from inside a running pod of the shared install
    (`kubectl exec`), with the pod's own network identity, so its NetworkPolicy
    applies."""

    cluster: Cluster
    pod: dict[str, Any]
    container: str

    def connect(self, host: str, port: int) -> str | None:
        """None when host:port accepted a connection, else what the pod said."""
        check = bash_tcp_check if self.container == "postgresql" else tcp_check
        done = self.cluster.kubectl(
            "exec",
            "--namespace",
            NAMESPACE,
            self.pod["metadata"]["name"],
            "--container",
            self.container,
            "--",
            *check(host, port),
            check=False,
        )
        return None if done.returncode == 0 else done.stdout + done.stderr

    def blocked(self, host: str, port: int, why: str) -> str:
        """Wait until a policy stops the pod reaching host:port; what the pod said."""
        said: str = poll(
            lambda: self.connect(host, port),
            POLICY_TIMEOUT,
            f"{why}: the {self.container} pod to be stopped reaching {host}:{port}",
        )
        assert REFUSED in said, said
        return said

    def reaches(self, host: str, port: int, why: str) -> None:
        """Wait until a policy lets the pod reach host:port."""
        poll(
            lambda: self.connect(host, port) is None,
            POLICY_TIMEOUT,
            f"{why}: the {self.container} pod to reach {host}:{port}",
        )


def connect_from(
    cluster: Cluster, pod: dict[str, Any], container: str, host: str, port: int
) -> str | None:
    """InPod(...).connect, for a pod looked up once."""
    return InPod(cluster, pod, container).connect(host, port)


def connect_from_new_pod(
    brokkr: Brokkr,
    host: str,
    ports: tuple[int, ...],
    labels: dict[str, str] | None = None,
    patience: float = 0,
) -> dict[int, bool]:
    """Whether a short-lived pod in the install's namespace, with `labels` besides
    PROBE_LABEL, connects to host on each port (no labels: no policy selects it).

    A policy that admits the pod by its labels learns its address only once the pod
    exists (kube-router adds it to the peer set within seconds), so a pod that should
    get through tries each port again for up to `patience` seconds; one that should
    be refused tries once."""
    script = (
        "import socket, time\n"
        f"deadline = time.monotonic() + {patience}\n"
        f"for port in {list(ports)}:\n"
        "    while True:\n"
        "        try:\n"
        f"            socket.create_connection(({host!r}, port), 5).close()\n"
        "            print(port, 'ok')\n"
        "            break\n"
        "        except OSError as exc:\n"
        "            if time.monotonic() >= deadline:\n"
        "                print(port, 'failed:', exc)\n"
        "                break\n"
        "            time.sleep(0.5)\n"
    )
    _, logs = brokkr.cluster.run_pod(
        NAMESPACE,
        f"probe-{secrets.token_hex(3)}",
        restricted_spec(brokkr.images.broker, ["python", "-c", script]),
        labels={**PROBE_LABEL, **(labels or {})},
    )
    seen = {int(port): said == "ok" for port, said in ANSWER.findall(logs)}
    assert set(seen) == set(ports), f"the probe pod said:\n{logs}"
    return seen


def probe_pods_gone(cluster: Cluster) -> None:
    probes = ",".join(f"{key}={value}" for key, value in PROBE_LABEL.items())
    poll(lambda: not cluster.pods(NAMESPACE, probes), 60, "the probe pods to be gone")
