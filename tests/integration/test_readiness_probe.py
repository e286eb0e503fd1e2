"""The readiness probe's own connection: long-lived, bounded by its caller, renewed
after a failure, closed at shutdown (the broker process tests are in test_process.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import psycopg
import pytest

from brokkr.broker.db import migrate
from brokkr.broker.db.probe import ProbeConnection
from brokkr.broker.settings import DatabaseSettings
from brokkr_dev.base.localnet import wait_for
from tests.integration.broker import in_process

pytestmark = pytest.mark.postgres

APPLICATION_NAME = "brokkr-broker-readiness"


def probe_backends(database_url: str) -> list[int]:
    """Server processes of readiness connections to this test's database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchall()
    return sorted(row[0] for row in rows)


def test_probe_keeps_one_connection_gives_up_in_time_and_reconnects(database_url: str):
    async def scenario() -> None:
        probe = ProbeConnection(DatabaseSettings(url=database_url), timeout=1.0)
        try:
            assert await probe.schema_version() == migrate.latest_version()
            first = probe_backends(database_url)
            assert len(first) == 1
            await probe.schema_version()
            assert probe_backends(database_url) == first  # the same connection, kept

            # The server stops answering (its process for this connection is frozen):
            # the caller's bound holds. psycopg's own way out of a cancelled query
            # (a cancel request, then up to 5 s for its answer) runs in the background.
            os.kill(first[0], signal.SIGSTOP)
            try:
                start = time.monotonic()
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await probe.schema_version()
                waited = time.monotonic() - start
            finally:
                os.kill(first[0], signal.SIGCONT)
            assert waited < 0.3 + 0.5, waited
            assert not probe.connected

            # The next call opens a new connection.
            assert await probe.schema_version() == migrate.latest_version()
            assert probe.connected
        finally:
            await probe.close()
        assert not probe.connected

    asyncio.run(scenario())
    # The connection given up on and the last one are both closed.
    wait_for(lambda: probe_backends(database_url) == [], 10, "the probe connections to close")


def test_unreachable_database_fails_the_probe_within_its_bound(database_url: str):
    async def scenario() -> float:
        # A port where nothing listens: a refused connection is an OperationalError.
        url = database_url.rsplit(":", 1)[0] + ":1/nowhere"
        probe = ProbeConnection(DatabaseSettings(url=url), timeout=1.0)
        start = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            async with asyncio.timeout(1.0):
                await probe.schema_version()
        await probe.close()
        return time.monotonic() - start

    assert asyncio.run(scenario()) < 1.0


def test_the_app_opens_one_readiness_connection_and_closes_it_at_shutdown(database_url: str):
    with in_process(database_url) as api:
        for _ in range(3):
            assert api.client.get("/readyz").json() == {"status": "ready"}
        assert len(probe_backends(database_url)) == 1
    wait_for(lambda: probe_backends(database_url) == [], 10, "the readiness connection to close")
