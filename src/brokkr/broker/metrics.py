"""Prometheus metrics: HTTP traffic by route and status, plus fleet gauges.

Fleet gauges (agents by status, heartbeat ages, stacks, deployment objects) are
read from PostgreSQL when /metrics is scraped, with a short timeout, so every
replica reports the same numbers and no background task is needed.
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
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

HEARTBEAT_BUCKETS = (15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
# An agent may store any status string (as in v1); the metric label keeps only
# these and counts every other value as "other", so label values stay bounded.
KNOWN_STATUSES = ("ACTIVE", "INACTIVE")
_STATUS_LABEL = "CASE WHEN status IN ({}) THEN status ELSE 'other' END".format(
    ", ".join(f"'{status}'" for status in KNOWN_STATUSES)
)

_FLEET = f"""
SELECT
  (SELECT coalesce(json_object_agg(status, n), '{{}}') FROM
     (SELECT {_STATUS_LABEL} AS status, count(*) AS n FROM agents WHERE deleted_at IS NULL
       GROUP BY 1) s)
     AS agents_by_status,
  (SELECT json_build_object(
     'never', count(*) FILTER (WHERE last_heartbeat IS NULL),
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
            "brokkr_agents", "Live agents by status.", ["status"], registry=self.registry
        )
        self.heartbeat_within = Gauge(
            "brokkr_agents_heartbeat_within_seconds",
            "Live agents whose last heartbeat is at most `le` seconds old.",
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

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

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
        self.agents.clear()
        for status, count in (row["agents_by_status"] or {}).items():
            self.agents.labels(status).set(count)
        beat = row["heartbeat"]
        for bound, count in zip(HEARTBEAT_BUCKETS, beat["buckets"], strict=True):
            self.heartbeat_within.labels(f"{bound:g}").set(count)
        self.heartbeat_never.set(beat["never"] or 0)
        self.heartbeat_max.set(beat["max"] or 0)
        self.stacks.set(row["stacks"])
        self.deployment_objects.set(row["deployment_objects"])


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition."""
    metrics: Metrics = request.app.state.metrics
    await metrics.refresh_fleet(request.app.state.pool)
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
            route = scope.get("brokkr.route") or "unmatched"
            seconds = time.perf_counter() - start
            self.metrics.observe(scope["method"], route, status, seconds)
            # A 500 from an exception was logged with its traceback already.
            logged = scope.get("brokkr.error_logged", False)
            if (status >= 500 and not logged) or log.isEnabledFor(logging.DEBUG):
                log.log(
                    logging.WARNING if status >= 500 else logging.DEBUG,
                    "%s %s -> %d",
                    scope["method"],
                    route,
                    status,
                    extra={
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "request_id": scope.get("brokkr.request_id"),
                    },
                )
