"""Access rules shared by several route modules."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from brokkr.broker.auth import Identity
from brokkr.broker.errors import forbidden
from brokkr.broker.queries import Lock, live_stack


def require_admin_or_generator(who: Identity) -> None:
    """403 unless the caller is the admin or a generator."""
    if not (who.admin or who.generator):
        raise forbidden("only the admin or a generator may do this")


async def owned_stack(
    conn: AsyncConnection[dict], who: Identity, stack_id: UUID, *, lock: Lock = ""
) -> dict[str, Any]:
    """A live stack the caller may manage: admin, or the generator that owns it.

    `lock` takes the row lock (inside a transaction) until the transaction ends
    (`queries.live`).
    """
    require_admin_or_generator(who)
    stack = await live_stack(conn, stack_id, lock=lock)
    if who.generator and stack["generator_id"] != who.generator:
        raise forbidden("a generator may only manage its own stacks")
    return stack
