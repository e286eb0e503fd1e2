"""Admin bootstrap, fail-closed.

- A configured hash equal to the publicly known default is refused unless
  `allow_insecure_default_pak` is set (then it is accepted with a loud warning).
- A configured hash is stored as the admin role (configuration wins).
- With no configured hash and none stored yet (first start), a fresh admin PAK
  is minted, its hash stored, and the PAK written to `admin_pak_file` with mode
  0600. The PAK itself is never logged.
- The system generator `admin-generator` exists (created once; see
  `ensure_admin_generator`).
Runs under the migration advisory lock, so replicas starting together mint once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg

from brokkr.broker import pak
from brokkr.broker.db.migrate import LOCK_KEY
from brokkr.broker.settings import BrokerSettings

log = logging.getLogger(__name__)

INSECURE_WARNING = (
    "the admin PAK is the publicly known default; anyone can administer this broker "
    "(BROKKR__BROKER__ALLOW_INSECURE_DEFAULT_PAK=true is for development only)"
)


class BootstrapError(RuntimeError):
    """The broker must not start; the message says how to fix the configuration."""


def write_secret_file(path: Path, content: str) -> None:
    """Write `content` to `path` with mode 0600, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (content + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def store_admin_hash(conn: psycopg.Connection, digest: str) -> None:
    """Make `digest` the admin PAK hash."""
    conn.execute(
        "INSERT INTO admin_role (id, pak_hash) VALUES (1, %s)"
        " ON CONFLICT (id) DO UPDATE SET pak_hash = EXCLUDED.pak_hash, updated_at = now()",
        (digest,),
    )


ADMIN_GENERATOR = "admin-generator"
# Not a SHA-256 hex digest, so no PAK ever authenticates as this generator: the
# admin PAK acts for it (as in Brokkr v1, where it is "linked to the admin PAK").
_NO_PAK = "!system"


def ensure_admin_generator(conn: psycopg.Connection) -> bool:
    """Create the system generator `admin-generator` unless it was ever created.

    Brokkr v1 clients look it up by name and create stacks for it with the admin
    PAK. It is created once per database (also on the first start after an
    upgrade); an admin who deletes it keeps it deleted. The partial unique index
    on live names makes a second live row impossible even without the lock.
    Returns True when this call created it.
    """
    cursor = conn.execute(
        "INSERT INTO generators (name, description, pak_hash, is_system)"
        " SELECT %(name)s, 'Linked to Admin PAK', %(hash)s, true"
        " WHERE NOT EXISTS (SELECT 1 FROM generators WHERE name = %(name)s AND is_system)"
        " ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING",
        {"name": ADMIN_GENERATOR, "hash": _NO_PAK},
    )
    return cursor.rowcount == 1


def ensure_admin(conninfo: str, settings: BrokerSettings) -> list[str]:
    """Apply the admin rules above; return warnings to show in logs and /health."""
    configured = settings.pak_hash.get_secret_value().strip().lower() if settings.pak_hash else None
    if configured is not None and not pak.is_valid_hash(configured):
        raise BootstrapError(
            "BROKKR__BROKER__PAK_HASH must be 64 hex characters (the SHA-256 of the PAK's "
            "last part); create one with `brokkr-broker generate-pak`"
        )
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        row = conn.execute("SELECT pak_hash FROM admin_role WHERE id = 1").fetchone()
        stored = row[0] if row else None
        effective = configured or stored
        if effective == pak.PUBLIC_DEFAULT_HASH:
            if not settings.allow_insecure_default_pak:
                raise BootstrapError(
                    "refusing to start: the admin PAK hash is the publicly known default. "
                    "Set BROKKR__BROKER__PAK_HASH to the hash of your own PAK "
                    "(`brokkr-broker generate-pak`), run `brokkr-broker rotate-admin`, or, "
                    "for local development only, BROKKR__BROKER__ALLOW_INSECURE_DEFAULT_PAK=true"
                )
            log.warning(INSECURE_WARNING)
        if configured is not None:
            if configured != stored:
                store_admin_hash(conn, configured)
                log.info("admin PAK hash set from configuration")
        elif stored is None:
            if not settings.admin_pak_file:
                raise BootstrapError(
                    "no admin PAK is configured: set BROKKR__BROKER__PAK_HASH, or set "
                    "BROKKR__BROKER__ADMIN_PAK_FILE to a path where the broker writes a "
                    "freshly minted admin PAK on first start"
                )
            minted = pak.generate()
            write_secret_file(Path(settings.admin_pak_file), minted.pak)
            store_admin_hash(conn, minted.hash)
            log.warning(
                "minted a new admin PAK and wrote it to %s (mode 0600); store it safely",
                settings.admin_pak_file,
            )
        if ensure_admin_generator(conn):
            log.info("created the system generator %s", ADMIN_GENERATOR)
    return [INSECURE_WARNING] if effective == pak.PUBLIC_DEFAULT_HASH else []
