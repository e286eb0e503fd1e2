"""The async connection pool and the mapping of database failures to 503."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from brokkr.broker.settings import DatabaseSettings
from brokkr.common import telemetry

log = logging.getLogger(__name__)


def make_pool(settings: DatabaseSettings) -> AsyncConnectionPool[AsyncConnection[dict]]:
    """A pool that is not yet open; rows come back as dicts.

    The pool keeps trying to (re)connect in the background, so the broker starts
    and recovers without a restart when PostgreSQL is down and comes back.

    psycopg_pool retries a lost connection with a delay that doubles until its
    `reconnect_timeout` (5 minutes by default) and then gives the slot up: after
    an outage of half a minute, the next attempt could come a minute after the
    database returned. Here each series of attempts lasts twice
    `reconnect_max_delay`, so no pause grows beyond about that, and a series
    that gives up starts the next one at once (`_try_again`).
    """
    # UTC sessions: timestamps leave PostgreSQL and Python in the same form.
    options = f"-c statement_timeout={settings.statement_timeout_ms} -c TimeZone=UTC"
    traced: dict[str, Any] = {}
    if telemetry.enabled():
        from brokkr.broker.tracing import TracedCursor  # noqa: PLC0415

        traced["cursor_factory"] = TracedCursor
    return AsyncConnectionPool(
        settings.conninfo(),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        open=False,
        name="brokkr",
        reconnect_timeout=2 * settings.reconnect_max_delay,
        reconnect_failed=_try_again,
        kwargs={
            "row_factory": dict_row,
            # Each statement commits by itself (no COMMIT round trip per request);
            # handlers that write several rows open an explicit transaction.
            "autocommit": True,
            "connect_timeout": settings.connect_timeout,
            "options": options,
            "application_name": "brokkr-broker",
            **traced,
        },
    )


async def _try_again(pool: AsyncConnectionPool[Any]) -> None:
    """A series of reconnect attempts gave up: start a new one unless the pool closed.

    `check` lets the pool grow back towards `min_size` (one new series, at most one
    at a time) without waiting for a request to ask for a connection.
    """
    if pool.closed:
        return
    log.warning("database still unreachable; retrying")
    await pool.check()


_checks: dict[int, asyncio.Task[None]] = {}


def check_soon(pool: AsyncConnectionPool[Any]) -> asyncio.Task[None]:
    """Test every idle connection once (`pool.check()`), at most one run per pool.

    After a database restart every idle connection is dead; checking them all at
    once replaces them now, instead of each failing one more request or probe.
    The run is a task of its own: a caller that gives up waiting (a timeout)
    cannot cancel it halfway, when it holds the idle connections outside the pool.
    """
    running = _checks.get(id(pool))
    if running is not None and not running.done():
        return running
    task = asyncio.get_running_loop().create_task(pool.check())
    _checks[id(pool)] = task
    task.add_done_callback(lambda done: _checks.pop(id(pool), None))
    return task
