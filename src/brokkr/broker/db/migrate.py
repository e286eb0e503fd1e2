"""Versioned schema migrations, applied once even when many replicas start at once.

Migrations are the numbered `NNNN_name.sql` files next to this module. `apply`
takes a transaction-scoped PostgreSQL advisory lock first, so concurrent callers
queue up; the first applies what is pending, the others find nothing left to do.
Every pending migration and its bookkeeping row commit in one transaction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

log = logging.getLogger(__name__)

# Arbitrary constant that names "Brokkr schema migrations" among advisory locks.
LOCK_KEY = 0x6272_6F6B_6B72_0001
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """All migrations shipped with this version, in order."""
    found = []
    for entry in resources.files("brokkr.broker.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def latest_version() -> int:
    """The schema version this code expects."""
    return available()[-1].version


def apply(conninfo: str) -> list[Migration]:
    """Apply pending migrations under the advisory lock; return those applied."""
    applied: list[Migration] = []
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        done = {row[0] for row in rows}
        for migration in available():
            if migration.version in done:
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration)
    return applied
