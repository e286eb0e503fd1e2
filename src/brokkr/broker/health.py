"""The health trio: /healthz (alive), /readyz (can serve), /health (details).

/readyz does one real database round trip bounded by `readiness_timeout` (at
most 1 s) and reuses the result for `readiness_cache_seconds` (at most 2 s), so
probes never pile load onto PostgreSQL. It answers 503 while shutting down.
A probe that meets a dead connection checks the whole pool and retries once, so
an idle broker is ready again as soon as PostgreSQL is back.
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

    def __init__(self, timeout: float, cache_seconds: float) -> None:
        self.started = time.monotonic()
        self.draining = False
        self.warnings: list[str] = []
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._last: DbCheck | None = None
        self._lock = asyncio.Lock()

    async def database(self, pool: Any) -> DbCheck:
        """The cached probe, refreshed when older than the cache period."""
        now = time.monotonic()
        if self._last and now - self._last.at < self.cache_seconds:
            return self._last
        async with self._lock:
            if self._last and time.monotonic() - self._last.at < self.cache_seconds:
                return self._last
            self._last = await self._probe(pool)
            return self._last

    async def _probe(self, pool: Any) -> DbCheck:
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    version = await self._schema_version(pool)
                except psycopg.OperationalError:
                    # The connection died, most likely with a database restart, and so
                    # did every other idle one: check them all (the pool replaces the
                    # dead ones) and try once more, so readiness follows the database
                    # instead of burning one dead connection per probe.
                    await asyncio.shield(check_soon(pool))
                    version = await self._schema_version(pool)
            latency = (time.monotonic() - start) * 1000
            return DbCheck(True, round(latency, 2), version, None, time.monotonic())
        except TimeoutError:
            return DbCheck(False, None, None, f"no answer within {self.timeout}s", time.monotonic())
        except Exception as exc:  # any failure means "not ready"
            return DbCheck(False, None, None, exc.__class__.__name__, time.monotonic())

    async def _schema_version(self, pool: Any) -> int:
        async with pool.connection(timeout=self.timeout) as conn:
            cursor = await conn.execute(
                "SELECT coalesce(max(version), 0) AS v FROM schema_migrations"
            )
            row = await cursor.fetchone()
        return int(row["v"])


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
    check = await state.database(request.app.state.pool)
    if not check.ok:
        return json_response(
            {"status": "unavailable", "reason": f"database unreachable: {check.error}"}, 503
        )
    return json_response({"status": "ready"})


async def health(request: Request) -> Response:
    """Details for humans and dashboards (shape documented in docs/broker.md)."""
    state = _state(request)
    check = await state.database(request.app.state.pool)
    if state.draining or not check.ok:
        status, code = "unavailable", 503
    elif state.warnings:
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
            "schema_version": check.schema_version,
            "warnings": state.warnings,
        },
        code,
    )
