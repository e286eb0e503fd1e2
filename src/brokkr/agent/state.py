"""What the agent knows about itself, shared by the loop (writer) and the health server (reader)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from brokkr import __version__


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class Metrics:
    """Counters and duration summaries rendered in the Prometheus text format."""

    _HELP: ClassVar[dict[str, tuple[str, str]]] = {
        "brokkr_agent_polls_total": ("counter", "Reconcile cycles, by result (success, error)."),
        "brokkr_agent_applies_total": (
            "counter",
            "Deployment objects applied, by result (success, failure).",
        ),
        "brokkr_agent_pruned_objects_total": (
            "counter",
            "Objects deleted because they left the desired state.",
        ),
        "brokkr_agent_errors_total": (
            "counter",
            "Errors, by source (broker, kubernetes, internal).",
        ),
        "brokkr_agent_poll_duration_seconds": ("summary", "Duration of reconcile cycles."),
        "brokkr_agent_apply_duration_seconds": (
            "summary",
            "Duration of applying one deployment object.",
        ),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._summaries: dict[str, list[float]] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0.0) + amount

    def observe(self, name: str, seconds: float) -> None:
        with self._lock:
            total = self._summaries.setdefault(name, [0.0, 0.0])
            total[0] += seconds
            total[1] += 1

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        lines: list[str] = []
        with self._lock:
            counters = dict(self._counters)
            summaries = {k: list(v) for k, v in self._summaries.items()}
        for name, (kind, help_text) in self._HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            if kind == "summary":
                total, count = summaries.get(name, [0.0, 0.0])
                lines += [f"{name}_sum {total:.6f}", f"{name}_count {int(count)}"]
                continue
            series = [(labels, v) for (n, labels), v in counters.items() if n == name]
            for labels, value in sorted(series) or [((), 0.0)]:
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")
        for name, (help_text, value) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


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
        self.metrics = Metrics()

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

    def metrics_text(self) -> str:
        with self.lock:
            up = {
                "brokkr_agent_uptime_seconds": (
                    "Seconds since the agent started.",
                    time.time() - self.started,
                ),
                "brokkr_agent_kubernetes_connected": (
                    "1 if the last Kubernetes API probe succeeded.",
                    float(bool(self.kube_connected)),
                ),
                "brokkr_agent_broker_connected": (
                    "1 if the last broker call succeeded.",
                    float(bool(self.broker_connected)),
                ),
            }
        return self.metrics.render(up)
