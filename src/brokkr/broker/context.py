"""Per-request database access: a pooled connection, one transaction, 503 when down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import PoolTimeout
from starlette.requests import Request

from brokkr.broker.auth import Identity, authenticate
from brokkr.broker.errors import unavailable

log = logging.getLogger(__name__)


@asynccontextmanager
async def db(request: Request) -> AsyncIterator[AsyncConnection[dict]]:
    """A pooled connection in autocommit mode; wrap multi-row writes in a transaction.

    A pool timeout or a broken connection becomes 503: the pool drops broken
    connections and reconnects in the background, so the broker recovers by
    itself when PostgreSQL returns.
    """
    try:
        async with request.app.state.pool.connection() as conn:
            yield conn
    except PoolTimeout:
        raise unavailable("no database connection available in time; retry later") from None
    except psycopg.OperationalError as exc:
        log.warning("database error: %s", exc.__class__.__name__)
        _check_pool_soon(request)
        raise unavailable() from None


_checks: set[asyncio.Task[None]] = set()


def _check_pool_soon(request: Request) -> None:
    """Test every idle connection once, so connections that died with a database
    restart are replaced now instead of each failing one more request."""
    if _checks:
        return
    task = asyncio.get_running_loop().create_task(request.app.state.pool.check())
    _checks.add(task)
    task.add_done_callback(_checks.discard)


@asynccontextmanager
async def authed(request: Request) -> AsyncIterator[tuple[AsyncConnection[dict], Identity]]:
    """A connection plus the authenticated caller (401 before any other work)."""
    async with db(request) as conn:
        yield conn, await authenticate(conn, request)
