"""The readiness probe's own connection to PostgreSQL, outside the request pool.

Readiness asks whether the database answers, not whether the pool has a free
connection: under a load spike every pool connection is busy while PostgreSQL is
fine, and a probe that queued behind the requests would take busy replicas out of
the Service and push their load onto the others. So each broker process keeps one
more connection, used by the probe alone (callers serialise its use).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from psycopg import AsyncConnection

from brokkr.broker.settings import DatabaseSettings

SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"


class ProbeConnection:
    """One long-lived autocommit connection, opened on first use and again whenever
    it is closed or broken. Any failure closes it, so the next call starts afresh.

    The caller bounds each call (`asyncio.timeout`). Connecting stops cleanly when
    cancelled; a query does not (psycopg then cancels it on the server and waits up
    to seconds for that), so the query runs in a task of its own that the caller
    can leave behind: the task closes its connection when it ends.
    """

    def __init__(self, settings: DatabaseSettings, timeout: float) -> None:
        self._conninfo = settings.conninfo()
        # The server stops a probe query stuck behind a lock on its own, too.
        self._options = f"-c statement_timeout={max(1, round(timeout * 1000))}"
        # libpq takes whole seconds (and at least 2): the caller's bound is the real one.
        self._connect_timeout = max(1, math.ceil(timeout))
        self._conn: AsyncConnection[Any] | None = None
        self._left_behind: set[asyncio.Task[int]] = set()

    @property
    def connected(self) -> bool:
        """Whether a connection is open that the last call found working."""
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    async def schema_version(self) -> int:
        """One round trip: the schema version (connects first when needed)."""
        conn = self._conn
        if conn is None or not self.connected:
            conn = self._conn = await AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                options=self._options,
                application_name="brokkr-broker-readiness",
            )
        query = asyncio.get_running_loop().create_task(_schema_version(conn))
        try:
            return await asyncio.shield(query)
        except BaseException:
            # Failed, or the caller gave up (timeout, shutdown): this connection is done.
            self._conn = None
            if not query.done():
                query.cancel()
                self._left_behind.add(query)
                query.add_done_callback(self._left_behind.discard)
            raise

    async def close(self) -> None:
        """Close the connection and stop any query left behind (at shutdown)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
        for query in self._left_behind:
            query.cancel()  # a second cancel: psycopg closes instead of waiting
        await asyncio.gather(*self._left_behind, return_exceptions=True)


async def _schema_version(conn: AsyncConnection[Any]) -> int:
    """The probe's query; closes the connection when it fails or is cancelled."""
    try:
        cursor = await conn.execute(SCHEMA_VERSION)
        row = await cursor.fetchone()
    except BaseException:
        await conn.close()
        raise
    return int(row[0]) if row else 0
