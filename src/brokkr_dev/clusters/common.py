"""What every provider shares: errors, the status report and readiness checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from brokkr_dev.base.errors import AutomationError
from brokkr_dev.clusters.api import ClusterClient, wait_for
from brokkr_dev.clusters.layout import ClusterDir

DEFAULT_NAME = "dev"


class ClusterError(AutomationError):
    """A cluster could not be started, stopped or inspected; the message says why
    and what to do."""


def check_provider(directory: ClusterDir, provider: str) -> None:
    """Refuse to drive a cluster that another provider made (its recorded name)."""
    if directory.provider_file.exists():
        recorded = directory.provider_file.read_text().strip()
        if recorded != provider:
            raise ClusterError(
                f"cluster {directory.name} was made by the {recorded!r} provider; use "
                f"--provider {recorded}, or pick another --name"
            )


@dataclass
class ClusterStatus:
    """What `cluster.status` reports."""

    name: str
    provider: str
    kubeconfig: Path
    running: bool
    server: str | None = None
    version: str | None = None
    ready_nodes: list[str] = field(default_factory=list)
    processes: dict[str, str] = field(default_factory=dict)  # name -> "running pid N (RSS)"
    detail: str = ""

    def render(self) -> str:
        """A few human-readable lines."""
        state = "running" if self.running else "stopped"
        lines = [f"cluster {self.name} ({self.provider}): {state}"]
        if self.detail:
            lines.append(f"  {self.detail}")
        if self.server:
            lines.append(f"  API server {self.server} version {self.version or '?'}")
            lines.append(f"  ready nodes: {', '.join(self.ready_nodes) or 'none'}")
        lines.extend(f"  {name}: {state_}" for name, state_ in self.processes.items())
        lines.append(f"  kubeconfig: {self.kubeconfig}")
        return "\n".join(lines)


class Provider(Protocol):
    """The interface of `local` and `kind`."""

    name: str

    @property
    def kubeconfig(self) -> Path: ...

    def up(self) -> ClusterStatus: ...

    def down(self) -> None: ...

    def status(self) -> ClusterStatus: ...


def node_ready(node: dict[str, Any]) -> bool:
    """True when the Node's Ready condition is True."""
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_schedulable(node: dict[str, Any]) -> bool:
    """True when Pods can be placed on the node: Ready, not cordoned, no taint that
    repels Pods (a new Node carries `not-ready:NoSchedule` until it is lifted)."""
    spec = node.get("spec", {})
    taints = spec.get("taints") or []
    return (
        node_ready(node)
        and not spec.get("unschedulable")
        and not any(t.get("effect") in ("NoSchedule", "NoExecute") for t in taints)
    )


def ready_nodes(client: ClusterClient) -> list[str]:
    """Names of the nodes that report Ready and accept Pods."""
    nodes = client.get("/api/v1/nodes")["items"]
    return sorted(n["metadata"]["name"] for n in nodes if node_schedulable(n))


def server_version(client: ClusterClient) -> str | None:
    try:
        return str(client.get("/version")["gitVersion"])
    except Exception:
        return None


def wait_until_usable(client: ClusterClient, timeout: float) -> list[str]:
    """Wait for /readyz, a Ready node and the `default` ServiceAccount (without it,
    Pods in `default` are refused); returns the Ready nodes."""
    wait_for(client.healthy, timeout, "the API server to report ready")
    nodes = wait_for(lambda: ready_nodes(client), timeout, "a Ready node")
    wait_for(
        lambda: client.exists("/api/v1/namespaces/default/serviceaccounts/default"),
        timeout,
        "the default ServiceAccount",
    )
    return nodes
