"""Schema migrations: applied exactly once, even by concurrent processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest

from brokkr.broker.db import migrate

pytestmark = pytest.mark.postgres


def migrate_process(database_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKKR")}
    env["BROKKR__DATABASE__URL"] = database_url
    return subprocess.Popen(
        [sys.executable, "-m", "brokkr.broker.cli", "migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
