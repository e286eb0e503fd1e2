"""Prometheus metrics: HTTP traffic by route and status, fleet, database and readiness.

Fleet gauges (agents by status, heartbeat ages, stacks, deployment objects) are
read from PostgreSQL when /metrics is scraped, with a short timeout, so every
replica reports the same numbers and no background task is needed. Every label
has a bounded set of values (route templates, known methods and statuses), so
10,000 agents cost the same handful of series as one. docs/observability.md lists
every family; a unit test keeps that list and this registry in step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

HEARTBEAT_BUCKETS = (15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
# Label values outside these sets are reported as "other" (clients choose methods,
# agents and admins choose statuses: neither may grow the number of series). An agent
# may store any status string, as in v1; only the label is bounded.
AGENT_STATUSES = ("ACTIVE", "INACTIVE")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
OTHER = "other"
_STATUS_LABEL = "CASE WHEN status IN ({}) THEN status ELSE '{}' END".format(
    ", ".join(f"'{status}'" for status in AGENT_STATUSES), OTHER
)

_FLEET = f"""
SELECT
  (SELECT coalesce(json_object_agg(status, n), '{{}}') FROM
     (SELECT {_STATUS_LABEL} AS status, count(*) AS n FROM agents WHERE deleted_at IS NULL
       GROUP BY 1) s)
     AS agents_by_status,
  (SELECT json_build_object(
     'never', count(*) FILTER (WHERE last_heartbeat IS NULL),
     'ever', count(*) FILTER (WHERE last_heartbeat IS NOT NULL),
     'max', max(extract(epoch FROM now() - last_heartbeat)),
     'buckets', json_build_array({
    ", ".join(
        f"count(*) FILTER (WHERE now() - last_heartbeat <= interval '{int(b)} seconds')"
        for b in HEARTBEAT_BUCKETS
    )
}))
     FROM agents WHERE deleted_at IS NULL) AS heartbeat,
  (SELECT count(*) FROM stacks WHERE deleted_at IS NULL) AS stacks,
  (SELECT count(*) FROM deployment_objects WHERE deleted_at IS NULL) AS deployment_objects
"""


class Metrics:
    """The broker's metric families in their own registry (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "brokkr_http_requests_total",
            "HTTP requests handled, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "brokkr_http_request_duration_seconds",
            "HTTP request latency, by method and route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.agents = Gauge(
            "brokkr_agents",
            "Live agents by status (ACTIVE, INACTIVE, other).",
            ["status"],
            registry=self.registry,
        )
        self.heartbeat_within = Gauge(
            "brokkr_agents_heartbeat_within_seconds",
            "Live agents whose last heartbeat is at most `le` seconds old "
            "(le=+Inf: every agent that ever sent one).",
            ["le"],
            registry=self.registry,
        )
        self.heartbeat_never = Gauge(
            "brokkr_agents_without_heartbeat",
            "Live agents that never sent a heartbeat.",
            registry=self.registry,
        )
        self.heartbeat_max = Gauge(
            "brokkr_agent_heartbeat_age_max_seconds",
            "Age of the oldest heartbeat among live agents.",
            registry=self.registry,
        )
        self.stacks = Gauge("brokkr_stacks", "Live stacks.", registry=self.registry)
        self.deployment_objects = Gauge(
            "brokkr_deployment_objects", "Live deployment objects.", registry=self.registry
        )
        self.scrape_errors = Counter(
            "brokkr_metrics_database_errors_total",
            "Scrapes whose fleet gauges could not be read from the database.",
            registry=self.registry,
        )
        self.database_up = Gauge(
            "brokkr_database_up",
            "1 if the database answered the readiness probe at this scrape, else 0.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "brokkr_ready",
            "1 if /readyz would answer 200 (database reachable, not draining), else 0.",
            registry=self.registry,
        )
        self.pool = PoolCollector()
        self.registry.register(self.pool)
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        series = self._series.get((method, route, status))
        if series is None:
            series = self._series_for(method, route, status)
        series[0].inc()
        series[1].observe(seconds)

    def _series_for(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        # prometheus_client's labels() validates and locks on every call; the
        # label values are bounded (see above), so their series are kept here.
        label = method if method in HTTP_METHODS else OTHER
        series = (
            self.requests.labels(label, route, str(status)),
            self.latency.labels(label, route),
        )
        if label != OTHER:  # other methods stay uncached: clients choose them
            self._series[(method, route, status)] = series
        return series

    def finished(  # noqa: PLR0917 - the request's outcome, positional on the hot path
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        request_id: str | None,
        error_logged: bool,
    ) -> None:
        """Count a finished request; log a 500 nobody logged yet (and every request at DEBUG)."""
        self.observe(method, route, status, seconds)
        if (status >= 500 and not error_logged) or log.isEnabledFor(logging.DEBUG):
            log.log(
                logging.WARNING if status >= 500 else logging.DEBUG,
                "%s %s -> %d",
                method,
                route,
                status,
                extra={
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "request_id": request_id,
                },
            )

    async def refresh(self, app_state: Any) -> None:
        """Update readiness, database and fleet gauges before a scrape renders."""
        self.pool.pool = app_state.pool
        health = app_state.health
        check = await health.database()
        self.database_up.set(1 if check.ok else 0)
        self.ready.set(1 if check.ok and not health.draining else 0)
        if not check.ok:
            # The fleet query would only wait out the same outage a second time.
            self.scrape_errors.inc()
            return
        await self.refresh_fleet(app_state.pool)

    async def refresh_fleet(self, pool: Any, timeout: float = 1.0) -> None:
        """Update the fleet gauges from the database (skipped on failure)."""
        try:
            async with asyncio.timeout(timeout), pool.connection(timeout=timeout) as conn:
                cursor = await conn.execute(_FLEET)
                row = await cursor.fetchone()
        except Exception as exc:  # metrics must still render
            log.warning("fleet metrics unavailable: %s", exc.__class__.__name__)
            self.scrape_errors.inc()
            return
        by_status = dict.fromkeys((*AGENT_STATUSES, OTHER), 0)
        for status, count in (row["agents_by_status"] or {}).items():
            by_status[status if status in AGENT_STATUSES else OTHER] += count
        for status, count in by_status.items():
            self.agents.labels(status).set(count)
        beat = row["heartbeat"]
        for bound, count in zip(HEARTBEAT_BUCKETS, beat["buckets"], strict=True):
            self.heartbeat_within.labels(f"{bound:g}").set(count)
        self.heartbeat_within.labels("+Inf").set(beat["ever"] or 0)
        self.heartbeat_never.set(beat["never"] or 0)
        self.heartbeat_max.set(beat["max"] or 0)
        self.stacks.set(row["stacks"])
        self.deployment_objects.set(row["deployment_objects"])


class PoolCollector(Collector):
    """The connection pool's own statistics, read at scrape time (psycopg_pool get_stats)."""

    def __init__(self) -> None:
        self.pool: Any = None

    def describe(self) -> list[Metric]:
        return list(self._families({}))

    def collect(self) -> list[Metric]:
        return list(self._families(self.pool.get_stats() if self.pool is not None else {}))

    @staticmethod
    def _families(stats: dict[str, int]) -> list[Metric]:
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        connections = GaugeMetricFamily(
            "brokkr_db_pool_connections",
            "Open pool connections, by state (used: lent to a request; idle).",
            labels=["state"],
        )
        connections.add_metric(["used"], max(0, size - idle))
        connections.add_metric(["idle"], idle)
        families: list[Metric] = [
            connections,
            GaugeMetricFamily(
                "brokkr_db_pool_max_connections",
                "Largest number of connections the pool may open.",
                stats.get("pool_max", 0),
            ),
            GaugeMetricFamily(
                "brokkr_db_pool_requests_waiting",
                "Requests waiting for a free pool connection right now.",
                stats.get("requests_waiting", 0),
            ),
        ]
        for name, key, text in (
            ("requests", "requests_num", "Connections requested from the pool."),
            ("request_errors", "requests_errors", "Requests that got no connection in time."),
            (
                "connection_errors",
                "connections_errors",
                "Failed attempts to connect to PostgreSQL.",
            ),
            ("connections_lost", "connections_lost", "Connections found broken and discarded."),
        ):
            families.append(CounterMetricFamily(f"brokkr_db_pool_{name}", text, stats.get(key, 0)))
        return families


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition."""
    metrics: Metrics = request.app.state.metrics
    await metrics.refresh(request.app.state)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every request and counts it by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.finished(
                scope["method"],
                scope.get("brokkr.route") or "unmatched",
                status,
                time.perf_counter() - start,
                scope.get("brokkr.request_id"),
                scope.get("brokkr.error_logged", False),
            )
