"""What the agent knows about itself, shared by the loop (writer) and the health server (reader)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from brokkr import __version__
from brokkr.agent.metrics import AgentMetrics, state_gauges


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class AgentState:
    """Mutable status; every field is written under the lock and read via `snapshot()`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.time()
        self.phase = "starting"  # starting -> running; "stopping" on SIGTERM
        self.agent: dict[str, Any] = {}
        self.kube_connected: bool | None = None
        self.kube_latency_ms: int | None = None
        self.kube_error: str | None = None
        self.broker_connected: bool | None = None
        self.broker_error: str | None = None
        self.last_heartbeat: float | None = None
        self.last_successful_poll: float | None = None
        self.last_reconcile: dict[str, Any] | None = None
        self.metrics = AgentMetrics(self._gauges)

    def update(self, **fields: Any) -> None:
        with self.lock:
            for name, value in fields.items():
                if not hasattr(self, name):
                    raise AttributeError(name)
                setattr(self, name, value)

    def status(self) -> str:
        """healthy, degraded (a dependency is failing or the agent is not ACTIVE), starting, stopping."""
        if self.phase != "running":
            return self.phase
        if self.kube_connected is False or self.broker_connected is False:
            return "degraded"
        if self.agent.get("status") not in (None, "ACTIVE"):
            return "degraded"
        return "healthy"

    def snapshot(self) -> dict[str, Any]:
        """The /health JSON document (see docs/agent.md)."""
        now = time.time()
        with self.lock:
            return {
                "status": self.status(),
                "version": __version__,
                "uptime_seconds": round(now - self.started, 3),
                "timestamp": _iso(now),
                "agent": {
                    "id": self.agent.get("id"),
                    "name": self.agent.get("name"),
                    "cluster_name": self.agent.get("cluster_name"),
                    "status": self.agent.get("status"),
                },
                "kubernetes": {
                    "connected": self.kube_connected,
                    "latency_ms": self.kube_latency_ms,
                    "error": self.kube_error,
                },
                "broker": {
                    "connected": self.broker_connected,
                    "last_heartbeat": _iso(self.last_heartbeat),
                    "last_successful_poll": _iso(self.last_successful_poll),
                    "error": self.broker_error,
                },
                "last_reconcile": dict(self.last_reconcile) if self.last_reconcile else None,
            }

    def _gauges(self) -> dict[str, float]:
        with self.lock:
            return state_gauges(self)

    def metrics_text(self) -> bytes:
        """The /metrics body (Prometheus text format)."""
        return self.metrics.render()
