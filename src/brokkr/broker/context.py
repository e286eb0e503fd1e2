"""Per-request database access: a pooled connection, one transaction, 503 when down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request

from brokkr.broker import pak
from brokkr.broker.auth import IDENTITY_KEY, Identity, authenticate, presented_pak
from brokkr.broker.db.pool import check_soon
from brokkr.broker.errors import ApiError, unauthorized, unavailable

log = logging.getLogger(__name__)


def db(request: Request) -> AbstractAsyncContextManager[AsyncConnection[dict]]:
    """A pooled connection in autocommit mode; wrap multi-row writes in a transaction.

    A pool timeout or a broken connection becomes 503: the pool drops broken
    connections and reconnects in the background, so the broker recovers by
    itself when PostgreSQL returns.
    """
    return pooled(request.app.state.pool)


@asynccontextmanager
async def pooled(pool: AsyncConnectionPool[Any]) -> AsyncIterator[AsyncConnection[dict]]:
    """A connection from `pool`, with the failures mapped to 503 as `db` describes."""
    try:
        async with pool.connection() as conn:
            yield conn
    except PoolTimeout:
        raise unavailable("no database connection available in time; retry later") from None
    except psycopg.OperationalError as exc:
        log.warning("database error: %s", exc.__class__.__name__)
        check_soon(pool)
        raise unavailable() from None


@asynccontextmanager
async def authed(request: Request) -> AsyncIterator[tuple[AsyncConnection[dict], Identity]]:
    """A connection plus the authenticated caller (401 before any other work)."""
    async with db(request) as conn:
        yield conn, await authenticate(conn, request)


def has_body(request: Request) -> bool:
    """The request announces a body (a non-zero Content-Length, or chunked)."""
    headers = request.headers
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


async def authenticate_first(request: Request) -> None:
    """Resolve the caller before any byte of the body is read, and keep the result.

    An unknown client cannot make the broker buffer a body (up to MAX_BODY_BYTES
    for BODY_READ_TIMEOUT seconds): it gets 401 at once, and the connection closes,
    since the body it announced was never read.
    """
    try:
        async with db(request) as conn:
            request.scope[IDENTITY_KEY] = await authenticate(conn, request)
    except ApiError as exc:
        exc.headers["Connection"] = "close"
        raise


def require_pak_shape(request: Request) -> None:
    """The check before the body for routes that authenticate inside their own
    statement (the heartbeat): no database round trip, so only a missing or
    malformed PAK is refused here; an unknown one is refused after the body."""
    try:
        if not pak.looks_like_pak(presented_pak(request)):
            raise unauthorized("the Authorization header does not hold a Brokkr PAK")
    except ApiError as exc:
        exc.headers["Connection"] = "close"
        raise
