"""The async connection pool and the mapping of database failures to 503."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from brokkr.broker.settings import DatabaseSettings


def make_pool(settings: DatabaseSettings) -> AsyncConnectionPool[AsyncConnection[dict]]:
    """A pool that is not yet open; rows come back as dicts.

    The pool keeps trying to (re)connect in the background, so the broker starts
    and recovers without a restart when PostgreSQL is down and comes back.
    """
    # UTC sessions: timestamps leave PostgreSQL and Python in the same form.
    options = f"-c statement_timeout={settings.statement_timeout_ms} -c TimeZone=UTC"
    return AsyncConnectionPool(
        settings.conninfo(),
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout,
        open=False,
        name="brokkr",
        kwargs={
            "row_factory": dict_row,
            # Each statement commits by itself (no COMMIT round trip per request);
            # handlers that write several rows open an explicit transaction.
            "autocommit": True,
            "connect_timeout": settings.connect_timeout,
            "options": options,
            "application_name": "brokkr-broker",
        },
    )
