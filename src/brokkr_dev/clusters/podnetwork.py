"""Pod networking across the nodes of a kind cluster with workers.

Our node image carries one static bridge configuration (pod range 10.244.0.0/24),
which is all a single node needs. With several nodes every node would hand out the
same addresses and no node would know a route to another's pods. kind's own CNI
(kindnetd) fixes that with the range the controller-manager gives each node
(`spec.podCIDR`); its Go module is not on the proxy, so the same three steps are done
here, once the nodes are up, through `docker exec` on each node container:

1. the node's bridge configuration takes its own `spec.podCIDR`, without the bridge
   plugin's masquerade (which would hide a pod's address from the NetworkPolicies of
   pods on other nodes);
2. one masquerade rule instead, for pod traffic that leaves the cluster's pod range;
3. a route to every other node's pod range through that node's address.

Pods started before step 1 (CoreDNS, the storage provisioner) hold addresses from
the static range; `stale_pods` finds them, so the caller deletes them and their
controllers start them again with addresses of their node. kube-router (firewall
only) enforces NetworkPolicy on each node as before.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from brokkr_dev.clusters.flags import POD_CIDR

CONFLIST = "/etc/cni/net.d/10-brokkr-bridge.conflist"
# The bridge and the CNI network name of the node image's static configuration
# (containers/nodeimage/files/10-brokkr-bridge.conflist).
BRIDGE = "kube-bridge"
NETWORK = "brokkr"

Exec = Callable[..., str]  # exec(node, *command, input_text=None) -> stdout


@dataclass(frozen=True)
class Node:
    """One node as the pod network needs it."""

    name: str  # also the name of its container (kind names them alike)
    address: str  # InternalIP on the engine's network
    pod_cidr: str


def nodes_of(items: Sequence[dict[str, Any]]) -> list[Node]:
    """Node objects (the API's) as Nodes; a node without a pod range is an error."""
    found = []
    for item in items:
        name = item["metadata"]["name"]
        cidr = item.get("spec", {}).get("podCIDR")
        if not cidr:
            raise ValueError(
                f"node {name} has no spec.podCIDR: the controller-manager allocates none "
                "(kubeadm's networking.podSubnet unset?)"
            )
        addresses = item.get("status", {}).get("addresses") or []
        address = next((a["address"] for a in addresses if a["type"] == "InternalIP"), None)
        if address is None:
            raise ValueError(f"node {name} reports no InternalIP")
        found.append(Node(name, address, cidr))
    return sorted(found, key=lambda node: node.name)


def bridge_conflist(pod_cidr: str) -> str:
    """The node image's bridge configuration for one node's range, without masquerade."""
    conflist = {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isDefaultGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conflist, indent=2) + "\n"


def node_commands(
    node: Node, others: Sequence[Node], cluster_cidr: str = POD_CIDR
) -> list[list[str]]:
    """The commands that wire one node (its conflist is written separately)."""
    masquerade = ["-s", cluster_cidr, "!", "-d", cluster_cidr, "-j", "MASQUERADE"]
    commands = [
        ["sysctl", "-w", "net.ipv4.ip_forward=1"],
        # -C first: wiring twice adds the rule once.
        [
            "sh",
            "-c",
            "iptables -t nat -C POSTROUTING {0} 2>/dev/null || iptables -t nat -A POSTROUTING {0}".format(
                " ".join(masquerade)
            ),
        ],
    ]
    for other in others:
        if other.name != node.name:
            commands.append(["ip", "route", "replace", other.pod_cidr, "via", other.address])
    return commands


def wire(nodes: Sequence[Node], run: Exec) -> None:
    """Give every node its range, the masquerade rule and routes to the others."""
    for node in nodes:
        run(node.name, "sh", "-c", f"cat > {CONFLIST}", input_text=bridge_conflist(node.pod_cidr))
        for command in node_commands(node, nodes):
            run(node.name, *command)


def stale_pods(pods: Sequence[dict[str, Any]], nodes: Sequence[Node]) -> list[dict[str, Any]]:
    """Pods (not on the host network) whose address is outside their node's range."""
    ranges = {node.name: ipaddress.ip_network(node.pod_cidr) for node in nodes}
    stale = []
    for pod in pods:
        spec, status = pod.get("spec", {}), pod.get("status", {})
        if spec.get("hostNetwork") or not status.get("podIP"):
            continue
        node = spec.get("nodeName")
        if node in ranges and ipaddress.ip_address(status["podIP"]) not in ranges[node]:
            stale.append(pod)
    return stale
