"""Versioned schema migrations, applied once even when many replicas start at once.

Migrations are the numbered `NNNN_name.sql` files next to this module. `apply`
takes a transaction-scoped PostgreSQL advisory lock first, so concurrent callers
queue up; the first applies what is pending, the others find nothing left to do.
Every pending migration and its bookkeeping row commit in one transaction.

Compatibility policy (docs/upgrading.md): a migration keeps the schema usable by the
broker one minor release older (add tables, nullable or defaulted columns, indexes;
drop or rename only a release later), so `helm rollback` after an upgrade works. A
migration that cannot says so on a line of its own, `-- brokkr: breaks-older-brokers`;
it is recorded with `backward_compatible = false`, and an older broker that finds such
a migration it does not know refuses to start and says what to do (`check`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# Arbitrary constant that names "Brokkr schema migrations" among advisory locks.
LOCK_KEY = 0x6272_6F6B_6B72_0001
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_BREAKS_OLDER = re.compile(r"^--\s*brokkr:\s*breaks-older-brokers\s*$", re.MULTILINE)


class SchemaTooNewError(RuntimeError):
    """The database holds a migration from a newer broker that this broker cannot run on."""


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    sql: str

    @property
    def backward_compatible(self) -> bool:
        """False when the file declares that brokers older than it cannot use the schema."""
        return _BREAKS_OLDER.search(self.sql) is None


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


def apply(conninfo: str, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply pending migrations under the advisory lock; return those applied.

    Raises SchemaTooNewError (nothing applied) when a newer broker already applied a
    migration that breaks this one. `migrations` defaults to those shipped here.
    """
    known = available() if migrations is None else migrations
    applied: list[Migration] = []
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "ALTER TABLE schema_migrations"
            " ADD COLUMN IF NOT EXISTS backward_compatible boolean NOT NULL DEFAULT true"
        )
        _refuse_newer(conn, known)
        rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        done = {row[0] for row in rows}
        for migration in known:
            if migration.version in done:
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, backward_compatible)"
                " VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.backward_compatible),
            )
            applied.append(migration)
    return applied


def check(conninfo: str, migrations: list[Migration] | None = None) -> list[str]:
    """Without migrating: raise SchemaTooNewError if this broker cannot run on the
    schema; return warnings about newer, backward-compatible migrations it skips."""
    known = available() if migrations is None else migrations
    with psycopg.connect(conninfo) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        return _refuse_newer(conn, known)


def _refuse_newer(conn: psycopg.Connection[Any], known: list[Migration]) -> list[str]:
    latest = max((m.version for m in known), default=0)
    has_flag = conn.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_name = 'schema_migrations' AND column_name = 'backward_compatible'"
        "   AND table_schema = current_schema()"
    ).fetchone()
    if has_flag and has_flag[0]:
        query = (
            "SELECT version, name, backward_compatible FROM schema_migrations"
            " WHERE version > %s ORDER BY version"
        )
    else:  # written before the flag existed: every migration then was compatible
        query = "SELECT version, name, true FROM schema_migrations WHERE version > %s ORDER BY 1"
    newer = conn.execute(query, (latest,)).fetchall()
    breaking = [f"{v:04d}_{n}" for v, n, compatible in newer if not compatible]
    if breaking:
        raise SchemaTooNewError(
            f"the database schema was migrated by a newer Brokkr broker ({', '.join(breaking)}) "
            f"that older brokers cannot run on; this broker knows schema version {latest}. "
            "Run the newer broker version again (helm upgrade to it), or restore the database "
            "backup taken before the upgrade and then roll back (docs/upgrading.md)"
        )
    if not newer:
        return []
    names = ", ".join(f"{v:04d}_{n}" for v, n, _ in newer)
    warning = (
        f"database schema is newer than this broker (migrations {names} from a newer "
        f"broker; this one knows version {latest}); they keep older brokers working, "
        "so it runs on it (a rollback within one minor release, docs/upgrading.md)"
    )
    log.warning("%s", warning)
    return [warning]
