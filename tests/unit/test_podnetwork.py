"""How the pod networks of a kind cluster's nodes are joined (podnetwork): pure
decisions here; on real nodes, tests/e2e_kind/test_nodes.py."""

from __future__ import annotations

import json

import pytest

from brokkr_dev.clusters import podnetwork
from brokkr_dev.clusters.podnetwork import Node


def node_object(name: str, address: str, cidr: str | None) -> dict:
    spec = {"podCIDR": cidr} if cidr else {}
    addresses = [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": address}]
    return {"metadata": {"name": name}, "spec": spec, "status": {"addresses": addresses}}


NODES = [
    Node("c-control-plane", "172.18.0.2", "10.244.0.0/24"),
    Node("c-worker", "172.18.0.3", "10.244.1.0/24"),
    Node("c-worker2", "172.18.0.4", "10.244.2.0/24"),
]


def test_nodes_are_read_from_the_api_objects_by_name():
    items = [node_object(n.name, n.address, n.pod_cidr) for n in reversed(NODES)]
    assert podnetwork.nodes_of(items) == NODES


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (node_object("n", "172.18.0.2", None), "node n has no spec.podCIDR"),
        ({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.0.0/24"}}, "no InternalIP"),
    ],
)
def test_a_node_without_a_range_or_address_is_refused_by_name(item, message):
    with pytest.raises(ValueError, match=message):
        podnetwork.nodes_of([item])


def test_each_node_bridges_its_own_range_without_the_plugins_masquerade():
    conflist = json.loads(podnetwork.bridge_conflist("10.244.1.0/24"))
    bridge = conflist["plugins"][0]
    assert bridge["bridge"] == "kube-bridge" and conflist["name"] == "brokkr"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert bridge["ipMasq"] is False  # a masqueraded pod would hide from NetworkPolicies


def test_a_node_routes_to_every_other_range_and_masquerades_only_leaving_traffic():
    commands = podnetwork.node_commands(NODES[1], NODES)
    routes = [c for c in commands if c[:2] == ["ip", "route"]]
    assert routes == [
        ["ip", "route", "replace", "10.244.0.0/24", "via", "172.18.0.2"],
        ["ip", "route", "replace", "10.244.2.0/24", "via", "172.18.0.4"],
    ]
    (nat,) = [c for c in commands if c[0] == "sh"]
    assert "-s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE" in nat[2]
    assert "iptables -t nat -C POSTROUTING" in nat[2], "checked first: wired twice, added once"


def test_wire_writes_each_conflist_then_runs_the_node_commands():
    calls = []

    def run(node: str, *command: str, input_text: str | None = None) -> str:
        calls.append((node, command, input_text))
        return ""

    podnetwork.wire(NODES, run)
    writes = [(node, text) for node, command, text in calls if text is not None]
    assert [node for node, _ in writes] == [n.name for n in NODES]
    assert all(json.loads(text)["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] == n.pod_cidr
               for (_, text), n in zip(writes, NODES, strict=True))  # fmt: skip
    assert sum(1 for _, command, _ in calls if command[:2] == ("ip", "route")) == 6


def pod(name: str, node: str, ip: str | None, host_network: bool = False) -> dict:
    return {
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"nodeName": node, "hostNetwork": host_network},
        "status": {"podIP": ip} if ip else {},
    }


def test_stale_pods_are_those_outside_their_nodes_range():
    pods = [
        pod("coredns-a", "c-worker", "10.244.0.7"),  # the static range on a worker: stale
        pod("coredns-b", "c-control-plane", "10.244.0.8"),  # its own range: fine
        pod("kube-proxy", "c-worker", "172.18.0.3", host_network=True),
        pod("pending", "c-worker2", None),
        pod("moved", "c-worker2", "10.244.2.5"),
    ]
    assert [p["metadata"]["name"] for p in podnetwork.stale_pods(pods, NODES)] == ["coredns-a"]
