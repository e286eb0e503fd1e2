"""The agent's Prometheus metrics (served on the health port at /metrics).

Counters and histograms are updated by the reconcile loop; the gauges that mirror
the agent's state (connections, last poll, uptime) are read from `AgentState` at
scrape time. Every label has a fixed set of values, pre-created at zero so that
rate() and alert expressions see the series before the first event.
docs/observability.md lists every family; a unit test keeps both in step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

POLL_RESULTS = ("success", "error")
APPLY_RESULTS = ("success", "failure")
ERROR_SOURCES = ("broker", "kubernetes", "internal")
OTHER = "other"
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
APPLY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def bounded(value: str, known: tuple[str, ...]) -> str:
    """The value in lower case when known, else "other"."""
    value = value.lower()
    return value if value in known else OTHER


class StateCollector(Collector):
    """Gauges computed from the agent's state when Prometheus scrapes."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return self._families(dict.fromkeys(GAUGES, 0.0))

    def collect(self) -> Iterable[Metric]:
        return self._families(self.read())

    @staticmethod
    def _families(values: dict[str, float]) -> list[Metric]:
        return [GaugeMetricFamily(name, text, values[name]) for name, text in GAUGES.items()]


GAUGES = {
    "brokkr_agent_uptime_seconds": "Seconds since the agent started.",
    "brokkr_agent_kubernetes_connected": "1 if the last Kubernetes API probe succeeded.",
    "brokkr_agent_broker_connected": "1 if the last broker call succeeded.",
    "brokkr_agent_last_successful_poll_timestamp_seconds": (
        "Unix time of the last completed poll (0 before the first)."
    ),
    "brokkr_agent_last_heartbeat_timestamp_seconds": (
        "Unix time of the last heartbeat the broker accepted (0 before the first)."
    ),
}


class AgentMetrics:
    """The agent's metric families in their own registry (one per agent process)."""

    def __init__(self, read_state: Callable[[], dict[str, float]]) -> None:
        self.registry = CollectorRegistry()
        self.polls = Counter(
            "brokkr_agent_polls",
            "Reconcile cycles (heartbeat, fetch, apply, prune), by result (success, error).",
            ["result"],
            registry=self.registry,
        )
        self.poll_duration = Histogram(
            "brokkr_agent_poll_duration_seconds",
            "Duration of reconcile cycles.",
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self.applies = Counter(
            "brokkr_agent_applies",
            "Deployment objects reconciled, by result (success, failure, other).",
            ["result"],
            registry=self.registry,
        )
        self.apply_duration = Histogram(
            "brokkr_agent_apply_duration_seconds",
            "Duration of applying one deployment object.",
            buckets=APPLY_BUCKETS,
            registry=self.registry,
        )
        self.objects_applied = Counter(
            "brokkr_agent_applied_objects",
            "Kubernetes objects sent with server-side apply.",
            registry=self.registry,
        )
        self.objects_pruned = Counter(
            "brokkr_agent_pruned_objects",
            "Kubernetes objects deleted because they left the desired state.",
            registry=self.registry,
        )
        self.errors = Counter(
            "brokkr_agent_errors",
            "Failed reconcile cycles, by source (broker, kubernetes, internal).",
            ["source"],
            registry=self.registry,
        )
        for result in POLL_RESULTS:
            self.polls.labels(result)
        for result in (*APPLY_RESULTS, OTHER):
            self.applies.labels(result)
        for source in ERROR_SOURCES:
            self.errors.labels(source)
        self.registry.register(StateCollector(read_state))

    def poll(self, result: str, seconds: float) -> None:
        """One finished reconcile cycle."""
        self.polls.labels(bounded(result, POLL_RESULTS)).inc()
        self.poll_duration.observe(seconds)

    def error(self, source: str) -> None:
        """One failed cycle, by where the failure came from."""
        self.errors.labels(source if source in ERROR_SOURCES else "internal").inc()

    def applied(self, status: str, seconds: float, applied: int, deleted: int) -> None:
        """One deployment object reconciled (its outcome status, objects applied/deleted)."""
        self.applies.labels(bounded(status, APPLY_RESULTS)).inc()
        self.apply_duration.observe(seconds)
        self.objects_applied.inc(applied)
        self.objects_pruned.inc(deleted)

    def pruned(self, count: int) -> None:
        """Objects deleted by a prune pass."""
        self.objects_pruned.inc(count)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent); for tests and diagnostics."""
        found = self.registry.get_sample_value(name, labels)
        return found if found is not None else 0.0

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


def state_gauges(state: Any) -> dict[str, float]:
    """The gauge values from an AgentState (the caller holds its lock)."""
    return {
        "brokkr_agent_uptime_seconds": time.time() - state.started,
        "brokkr_agent_kubernetes_connected": float(bool(state.kube_connected)),
        "brokkr_agent_broker_connected": float(bool(state.broker_connected)),
        "brokkr_agent_last_successful_poll_timestamp_seconds": state.last_successful_poll or 0.0,
        "brokkr_agent_last_heartbeat_timestamp_seconds": state.last_heartbeat or 0.0,
    }
