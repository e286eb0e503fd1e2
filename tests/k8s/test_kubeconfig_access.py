"""Kubeconfigs the hand-written clients could not use, against the real API server.

An `exec` credential plugin (what EKS, GKE and AKS kubeconfigs use) and a cluster
`proxy-url` through a local HTTP CONNECT proxy, for both the agent's client and the
automation's (both on lightkube, see docs/agent.md).
"""

from __future__ import annotations

import json
import select
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from brokkr.agent.kube import KubeClient as AgentKube
from brokkr.agent.kube import KubeError, from_kubeconfig
from brokkr_dev.base.localnet import free_port
from brokkr_dev.clusters.api import ClusterClient, KubeUnreachable
from tests.fixtures.kube import KubeCluster
from tests.k8s.test_security import service_account_token

WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def username(client: ClusterClient) -> str:
    """Who the API server says the client is (any authenticated user may ask)."""
    return str(client.create(WHOAMI, REVIEW)["status"]["userInfo"]["username"])


def edited_kubeconfig(k8s: KubeCluster, target: Path, **changes: dict[str, Any]) -> Path:
    """The admin kubeconfig with its one cluster and user entries updated by `changes`."""
    document = yaml.safe_load(k8s.kubeconfig.read_text())
    context = next(c for c in document["contexts"] if c["name"] == document["current-context"])
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in document[section]:
            if entry["name"] == context["context"][key]:
                if section == "users" and "user" in changes:
                    entry["user"] = changes["user"]
                elif section == "clusters" and "cluster" in changes:
                    entry["cluster"].update(changes["cluster"])
    target.write_text(yaml.safe_dump(document))
    target.chmod(0o600)
    return target


def exec_plugin(tmp_path: Path, token: str, exit_code: int = 0) -> tuple[dict[str, Any], Path]:
    """A user entry whose credential comes from a script printing an ExecCredential.

    Each run appends a line to the returned file, so tests can see the plugin ran.
    """
    runs = tmp_path / "plugin-runs"
    script = tmp_path / "credential-plugin.py"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": token},
    }
    script.write_text(
        "import sys\n"
        f"open({str(runs)!r}, 'a').write('run\\n')\n"
        f"if {exit_code}:\n"
        "    sys.stderr.write('credential plugin: not logged in; run `cloud login`\\n')\n"
        f"    sys.exit({exit_code})\n"
        f"print({json.dumps(credential)!r})\n"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(script)],
            "interactiveMode": "Never",
        }
    }
    return user, runs


def test_exec_plugin_credentials_reach_the_api_server(
    k8s_cluster: KubeCluster, k8s_namespace: str, tmp_path: Path
) -> None:
    token = service_account_token(k8s_cluster, k8s_namespace, "plugin-user")
    user, runs = exec_plugin(tmp_path, token)
    config = edited_kubeconfig(k8s_cluster, tmp_path / "exec.kubeconfig", user=user)
    expected = f"system:serviceaccount:{k8s_namespace}:plugin-user"

    automation = ClusterClient.from_kubeconfig(config)
    try:
        assert username(automation) == expected
        assert username(automation) == expected
    finally:
        automation.close()
    # The token is kept between requests: one plugin run for two requests.
    assert runs.read_text().count("run") == 1

    agent = AgentKube(from_kubeconfig(config), timeout=10)
    try:
        review = agent.request("POST", WHOAMI, body=REVIEW).json()
        assert review["status"]["userInfo"]["username"] == expected
        # The identity has no RBAC: a refusal is a permanent error, not retried.
        with pytest.raises(KubeError) as refused:
            agent.request("GET", f"/api/v1/namespaces/{k8s_namespace}/secrets")
        assert refused.value.status == 403 and not refused.value.transient
    finally:
        agent.close()


def test_a_failing_exec_plugin_is_a_clear_error(k8s_cluster: KubeCluster, tmp_path: Path) -> None:
    user, runs = exec_plugin(tmp_path, "unused", exit_code=3)
    config = edited_kubeconfig(k8s_cluster, tmp_path / "broken.kubeconfig", user=user)
    agent = AgentKube(from_kubeconfig(config), timeout=10)
    try:
        with pytest.raises(KubeError, match=r"returned 3: credential plugin: not logged in"):
            agent.version()
    finally:
        agent.close()
    assert runs.read_text().count("run") == 1


class ConnectProxy(socketserver.ThreadingTCPServer):
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that records each tunnel's target."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.targets: list[str] = []
        super().__init__(("127.0.0.1", free_port()), _Tunnel)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Tunnel(socketserver.StreamRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # headers
        if len(request_line) < 2 or request_line[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, _, port = request_line[1].rpartition(":")
        self.server.targets.append(request_line[1])
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            client = self.connection
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    return
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)


@pytest.fixture
def connect_proxy() -> Iterator[ConnectProxy]:
    proxy = ConnectProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_proxy_url_tunnels_requests_through_the_proxy(
    k8s_cluster: KubeCluster, connect_proxy: ConnectProxy, tmp_path: Path
) -> None:
    server = k8s_cluster.client.server.removeprefix("https://")
    config = edited_kubeconfig(
        k8s_cluster, tmp_path / "proxy.kubeconfig", cluster={"proxy-url": connect_proxy.url}
    )

    automation = ClusterClient.from_kubeconfig(config)
    try:
        assert automation.get("/api/v1/namespaces/default")["metadata"]["name"] == "default"
    finally:
        automation.close()
    assert connect_proxy.targets == [server]

    agent = AgentKube(from_kubeconfig(config), timeout=10)
    try:
        assert agent.version()["major"] == "1"
    finally:
        agent.close()
    assert connect_proxy.targets == [server, server]


def test_a_dead_proxy_url_fails_instead_of_going_direct(
    k8s_cluster: KubeCluster, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = edited_kubeconfig(
        k8s_cluster, tmp_path / "dead.kubeconfig", cluster={"proxy-url": dead}
    )
    automation = ClusterClient.from_kubeconfig(config, timeout=5)
    try:
        with pytest.raises(KubeUnreachable):
            automation.get("/version")
    finally:
        automation.close()
    agent = AgentKube(from_kubeconfig(config), timeout=5, attempts=1)
    try:
        with pytest.raises(KubeError) as unreachable:
            agent.version()
        assert unreachable.value.transient and "no answer" in str(unreachable.value)
    finally:
        agent.close()
