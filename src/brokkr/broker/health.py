"""The health trio: /healthz (alive), /readyz (can serve), /health (details).

/readyz does one real database round trip bounded by `readiness_timeout` (at
most 1 s) and reuses the result for `readiness_cache_seconds` (at most 2 s), so
probes never pile load onto PostgreSQL. It answers 503 while shutting down.

The round trip goes over a connection of its own (`ProbeConnection`), not the
request pool: a pool that is exhausted by a load spike says nothing about the
database, and a replica that is busy must stay in the Service. /health reports
the pool instead (`saturated` while requests wait for a connection). A probe that
finds its connection dead (a database restart) makes the pool check its idle
connections too, so the request path recovers as soon as the database is back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import Response

import brokkr
from brokkr.broker.db.pool import check_soon
from brokkr.broker.db.probe import ProbeConnection
from brokkr.broker.http import json_response


@dataclass
class DbCheck:
    """One database probe result."""

    ok: bool
    latency_ms: float | None
    schema_version: int | None
    error: str | None
    at: float


class HealthState:
    """Process-wide health facts: start time, draining flag, warnings, cached probe."""

    def __init__(
        self, probe: ProbeConnection, pool: Any, timeout: float, cache_seconds: float
    ) -> None:
        self.started = time.monotonic()
        self.draining = False
        self.warnings: list[str] = []
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.pool = pool
        self._probe_connection = probe
        self._last: DbCheck | None = None
        # One probe at a time: the probe connection serves one query at once.
        self._lock = asyncio.Lock()

    async def database(self) -> DbCheck:
        """The cached probe, refreshed when older than the cache period."""
        now = time.monotonic()
        if self._last and now - self._last.at < self.cache_seconds:
            return self._last
        async with self._lock:
            if self._last and time.monotonic() - self._last.at < self.cache_seconds:
                return self._last
            self._last = await self._probe()
            return self._last

    async def close(self) -> None:
        """Close the probe connection (at shutdown, after the last request)."""
        async with self._lock:
            await self._probe_connection.close()

    async def _probe(self) -> DbCheck:
        start = time.monotonic()
        probe = self._probe_connection
        try:
            async with asyncio.timeout(self.timeout):
                reused = probe.connected
                try:
                    version = await probe.schema_version()
                except psycopg.OperationalError:
                    if not reused:
                        raise  # a new connection failed: the database is unreachable
                    # The connection died, most likely with a database restart, and so
                    # did the pool's idle ones: have the pool check them all now (in a
                    # task of its own), then try once more over a new connection.
                    check_soon(self.pool)
                    version = await probe.schema_version()
            latency = (time.monotonic() - start) * 1000
            return DbCheck(True, round(latency, 2), version, None, time.monotonic())
        except TimeoutError:
            return DbCheck(False, None, None, f"no answer within {self.timeout}s", time.monotonic())
        except Exception as exc:  # any failure means "not ready"
            return DbCheck(False, None, None, exc.__class__.__name__, time.monotonic())

    def pool_state(self) -> dict[str, Any]:
        """The request pool's occupancy; `saturated` while requests wait for a connection."""
        stats = self.pool.get_stats()
        waiting = stats.get("requests_waiting", 0)
        return {
            "status": "saturated" if waiting else "ok",
            "size": stats.get("pool_size", 0),
            "max": stats.get("pool_max", 0),
            "available": stats.get("pool_available", 0),
            "waiting": waiting,
        }


def _state(request: Request) -> HealthState:
    return request.app.state.health


async def healthz(request: Request) -> Response:
    """Alive: no dependency checks."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready to serve: not draining and the database answers."""
    state = _state(request)
    if state.draining:
        return json_response({"status": "unavailable", "reason": "shutting down"}, 503)
    check = await state.database()
    if not check.ok:
        return json_response(
            {"status": "unavailable", "reason": f"database unreachable: {check.error}"}, 503
        )
    return json_response({"status": "ready"})


async def health(request: Request) -> Response:
    """Details for humans and dashboards (shape documented in docs/broker.md)."""
    state = _state(request)
    check = await state.database()
    pool = state.pool_state()
    if state.draining or not check.ok:
        status, code = "unavailable", 503
    elif state.warnings or pool["status"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    database: dict[str, Any] = {
        "status": "ok" if check.ok else "unreachable",
        "latency_ms": check.latency_ms,
    }
    if check.error:
        database["error"] = check.error
    return json_response(
        {
            "status": status,
            "version": brokkr.__version__,
            "uptime_seconds": round(time.monotonic() - state.started, 3),
            "timestamp": datetime.now(UTC),
            "draining": state.draining,
            "database": database,
            "pool": pool,
            "schema_version": check.schema_version,
            "warnings": state.warnings,
        },
        code,
    )
