"""Registries the kind nodes' containerd pulls from, as a site's mirror would be set up.

containerd reads one `hosts.toml` per registry host under `HOSTS_DIR` at each pull
(no restart) once its CRI config names that directory, which `CONTAINERD_PATCH` does
when kind creates the nodes. A plain-HTTP registry (a test's mirror) must be listed
there: containerd otherwise speaks HTTPS to every host but localhost. The nodes reach
the machine at their Docker network's gateway, so a mirror for them listens there.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

HOSTS_DIR = "/etc/containerd/certs.d"
# kind's `containerdConfigPatches` entry (containerd config version 2, as kind's is).
CONTAINERD_PATCH = (
    f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{HOSTS_DIR}"\n'
)

# docker exec on one node: (node, command...) with optional stdin -> stdout
NodeRun = Callable[..., str]


def hosts_toml(host: str) -> str:
    """containerd's hosts file for `host` (HOST:PORT) served over plain HTTP."""
    url = f"http://{host}"
    return f'server = "{url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'


def hosts_path(host: str) -> str:
    return f"{HOSTS_DIR}/{host}/hosts.toml"


def gateway_ipv4(networks_json: str) -> str:
    """The IPv4 gateway of a node container's network, from `docker inspect --format
    '{{json .NetworkSettings.Networks}}'`: the address the node reaches the machine at."""
    try:
        networks = json.loads(networks_json)
    except ValueError as exc:
        raise ValueError(f"docker inspect gave no network list: {networks_json[:200]!r}") from exc
    for network in (networks or {}).values():
        gateway = (network or {}).get("Gateway") or ""
        if gateway and isinstance(ipaddress.ip_address(gateway), ipaddress.IPv4Address):
            return gateway
    raise ValueError(f"the node has no IPv4 network gateway: {networks_json[:200]!r}")


def trust(nodes: list[str], host: str, run: NodeRun) -> None:
    """Let every node pull from the plain-HTTP registry at `host`."""
    for node in nodes:
        config = run(node, "cat", "/etc/containerd/config.toml")
        if not any("config_path" in line and HOSTS_DIR in line for line in config.splitlines()):
            raise ValueError(
                f"node {node}'s containerd does not read {HOSTS_DIR}: the cluster was created "
                "before kind's config named it; delete the cluster and run again"
            )
        run(node, "mkdir", "-p", f"{HOSTS_DIR}/{host}")
        run(node, "tee", hosts_path(host), input_text=hosts_toml(host))


def forget(nodes: list[str], host: str, run: NodeRun) -> None:
    """Undo `trust` (the node keeps the images it pulled)."""
    for node in nodes:
        run(node, "rm", "-rf", f"{HOSTS_DIR}/{host}")
