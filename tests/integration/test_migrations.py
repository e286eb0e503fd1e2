"""Schema migrations: applied exactly once, even by concurrent processes."""

from __future__ import annotations

import subprocess
import time

import psycopg
import pytest

from brokkr.broker.db import migrate
from brokkr_dev.local.services import LocalBroker

pytestmark = pytest.mark.postgres


def migrate_process(database_url: str) -> subprocess.Popen[str]:
    return LocalBroker({"database": {"url": database_url}}).spawn(
        "migrate", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def waiting_for_lock(conn: psycopg.Connection, count: int) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return row is not None and row[0] >= count


def test_two_processes_migrate_once(empty_database_url: str):
    with psycopg.connect(empty_database_url, autocommit=True) as holder:
        # Hold the migration lock so both processes are provably queued behind it.
        holder.execute("SELECT pg_advisory_lock(%s)", (migrate.LOCK_KEY,))
        first, second = migrate_process(empty_database_url), migrate_process(empty_database_url)
        deadline = time.monotonic() + 30
        while not waiting_for_lock(holder, 2):
            assert time.monotonic() < deadline, "both migrate processes should wait on the lock"
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s)", (migrate.LOCK_KEY,))
        outputs = [p.communicate(timeout=60)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    applied = [out.count("applied 0001_core") for out in outputs]
    assert sorted(applied) == [0, 1], outputs
    with psycopg.connect(empty_database_url) as conn:
        rows = conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY 1").fetchall()
    assert rows == [(migrate.latest_version(), 1)]


def test_migrate_is_idempotent(empty_database_url: str):
    assert [m.version for m in migrate.apply(empty_database_url)] == [1]
    assert migrate.apply(empty_database_url) == []


# --- compatibility policy (docs/upgrading.md) ----------------------------------------


def newer(version: int, sql: str) -> migrate.Migration:
    """A migration as a newer broker ships it."""
    return migrate.Migration(version, "from_a_newer_broker", sql)


def serve_process(database_url: str) -> subprocess.CompletedProcess[str]:
    broker = LocalBroker({"database": {"url": database_url, "startup_wait": 0}})
    return broker.run_to_exit(timeout=60)


def test_a_compatible_newer_schema_is_run_on_with_a_warning(empty_database_url: str):
    additive = newer(2, "ALTER TABLE agents ADD COLUMN nickname text;")
    assert additive.backward_compatible
    applied = migrate.apply(empty_database_url, [*migrate.available(), additive])
    assert [m.version for m in applied] == [1, 2]
    # this broker knows only 0001: a rollback to it runs, and says why
    (warning,) = migrate.check(empty_database_url)
    assert "0002_from_a_newer_broker" in warning and "keep older brokers working" in warning
    assert migrate.apply(empty_database_url) == []


def test_a_breaking_newer_schema_stops_the_older_broker_with_what_to_do(empty_database_url: str):
    breaking = newer(
        2, "-- brokkr: breaks-older-brokers\nALTER TABLE agents DROP COLUMN k8s_api_latency_ms;\n"
    )
    assert not breaking.backward_compatible
    migrate.apply(empty_database_url, [*migrate.available(), breaking])
    with psycopg.connect(empty_database_url) as conn:
        flags = conn.execute(
            "SELECT version, backward_compatible FROM schema_migrations ORDER BY 1"
        ).fetchall()
    assert flags == [(1, True), (2, False)]
    with pytest.raises(migrate.SchemaTooNewError, match="0002_from_a_newer_broker"):
        migrate.check(empty_database_url)
    with pytest.raises(migrate.SchemaTooNewError):
        migrate.apply(empty_database_url)
    started = serve_process(empty_database_url)
    assert started.returncode == 1, started.stderr
    assert "error: the database schema was migrated by a newer Brokkr broker" in started.stderr
    assert "Run the newer broker version again" in started.stderr
    assert "docs/upgrading.md" in started.stderr and "Traceback" not in started.stderr
