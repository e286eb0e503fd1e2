"""The kind nodes' registry hosts files (brokkr_dev.clusters.noderegistries)."""

from __future__ import annotations

import json
import tomllib

import pytest

from brokkr_dev.clusters import noderegistries

HOST = "172.18.0.1:40123"


def test_a_plain_http_mirror_is_its_own_server_for_pulls() -> None:
    hosts = tomllib.loads(noderegistries.hosts_toml(HOST))
    assert hosts["server"] == f"http://{HOST}"
    assert hosts["host"] == {f"http://{HOST}": {"capabilities": ["pull", "resolve"]}}
    assert noderegistries.hosts_path(HOST) == f"/etc/containerd/certs.d/{HOST}/hosts.toml"


def test_the_gateway_is_the_nodes_ipv4_one() -> None:
    networks = {
        "kind": {"Gateway": "172.18.0.1", "IPv6Gateway": "fc00:f853:ccd:e793::1"},
    }
    assert noderegistries.gateway_ipv4(json.dumps(networks)) == "172.18.0.1"
    only_v6 = {"kind": {"Gateway": "fc00:f853:ccd:e793::1"}}
    with pytest.raises(ValueError, match="no IPv4 network gateway"):
        noderegistries.gateway_ipv4(json.dumps(only_v6))
    with pytest.raises(ValueError, match="no network list"):
        noderegistries.gateway_ipv4("Error: no such object")


class Nodes:
    """Files of node containers, changed by the commands `trust` and `forget` run."""

    def __init__(self, config: str) -> None:
        self.files = {"/etc/containerd/config.toml": config}

    def run(self, node: str, *command: str, input_text: str | None = None) -> str:
        match command:
            case ("cat", path):
                return self.files[path]
            case ("mkdir", "-p", _):
                return ""
            case ("tee", path):
                self.files[path] = input_text or ""
                return input_text or ""
            case ("rm", "-rf", directory):
                self.files = {p: t for p, t in self.files.items() if not p.startswith(directory)}
                return ""
        raise AssertionError(f"unexpected command on {node}: {command}")


def test_trust_writes_the_hosts_file_and_forget_removes_it() -> None:
    nodes = Nodes("[plugins]\n" + noderegistries.CONTAINERD_PATCH)
    noderegistries.trust(["n1"], HOST, nodes.run)
    assert nodes.files[noderegistries.hosts_path(HOST)] == noderegistries.hosts_toml(HOST)
    noderegistries.forget(["n1"], HOST, nodes.run)
    assert noderegistries.hosts_path(HOST) not in nodes.files


def test_a_cluster_whose_containerd_ignores_hosts_files_is_refused_with_the_fix() -> None:
    nodes = Nodes('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n')
    with pytest.raises(ValueError, match="delete the cluster and run again"):
        noderegistries.trust(["n1"], HOST, nodes.run)
    assert noderegistries.hosts_path(HOST) not in nodes.files
