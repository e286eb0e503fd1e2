"""Column lists and lookups shared by the route modules (no secrets selected)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from psycopg import AsyncConnection

from brokkr.broker.errors import not_found

AGENT = (
    "id, created_at, updated_at, deleted_at, name, cluster_name, status, last_heartbeat,"
    " k8s_reachable, k8s_api_latency_ms, k8s_reported_at"
)
GENERATOR = (
    "id, created_at, updated_at, deleted_at, name, description, is_active, is_system,"
    " last_active_at"
)
STACK = "id, created_at, updated_at, deleted_at, name, description, generator_id"
DEPLOYMENT_OBJECT = (
    "id, created_at, updated_at, deleted_at, sequence_id, stack_id, yaml_content,"
    " yaml_checksum, submitted_at, is_deletion_marker"
)
EVENT = (
    "id, created_at, updated_at, deleted_at, agent_id, deployment_object_id, event_type,"
    " status, message"
)

# Stacks an agent should run: explicit targets, stacks sharing one of its labels,
# stacks with one of its annotations (same key and value), limited to live stacks
# of generators the agent is registered with.
ASSOCIATED_STACK_IDS = """
SELECT s.id FROM stacks s
WHERE s.deleted_at IS NULL
  AND s.id IN (
        SELECT t.stack_id FROM agent_targets t WHERE t.agent_id = %(agent)s
        UNION
        SELECT sl.stack_id FROM stack_labels sl
          JOIN agent_labels al ON al.label = sl.label WHERE al.agent_id = %(agent)s
        UNION
        SELECT sa.stack_id FROM stack_annotations sa
          JOIN agent_annotations aa ON aa.key = sa.key AND aa.value = sa.value
         WHERE aa.agent_id = %(agent)s)
  AND EXISTS (SELECT 1 FROM agent_generator_registrations r
               WHERE r.agent_id = %(agent)s AND r.generator_id = s.generator_id)
"""


async def one(conn: AsyncConnection[dict], sql: str, params: Any = None) -> dict[str, Any] | None:
    """The first row of a query, or None."""
    cursor = await conn.execute(sql, params, prepare=True)
    return await cursor.fetchone()


async def many(conn: AsyncConnection[dict], sql: str, params: Any = None) -> list[dict[str, Any]]:
    """All rows of a query."""
    cursor = await conn.execute(sql, params, prepare=True)
    return await cursor.fetchall()


Lock = Literal["", "update", "share"]


async def live(
    conn: AsyncConnection[dict], kind: str, columns: str, row_id: UUID, *, lock: Lock = ""
) -> dict[str, Any]:
    """A non-deleted row of table `<kind>s`; 404 `<kind>_not_found` otherwise.

    Inside a transaction, `lock` holds the row until it ends: "update" (FOR UPDATE,
    the deleter) makes a concurrent deleter or writer wait, then see the row
    deleted; "share" (FOR SHARE, a writer of rows that belong to it) lets writers
    run together but makes a deleter wait for them, and them for a deleter.
    """
    suffix = {"": "", "update": " FOR UPDATE", "share": " FOR SHARE"}[lock]
    row = await one(
        conn,
        f"SELECT {columns} FROM {kind}s WHERE id = %s AND deleted_at IS NULL{suffix}",
        (row_id,),
    )
    if row is None:
        raise not_found(kind, row_id)
    return row


async def live_agent(conn: AsyncConnection[dict], agent_id: UUID) -> dict[str, Any]:
    """A non-deleted agent; 404 otherwise."""
    return await live(conn, "agent", AGENT, agent_id)


async def live_generator(conn: AsyncConnection[dict], generator_id: UUID) -> dict[str, Any]:
    """A non-deleted generator; 404 otherwise."""
    return await live(conn, "generator", GENERATOR, generator_id)


async def live_stack(
    conn: AsyncConnection[dict], stack_id: UUID, *, lock: Lock = ""
) -> dict[str, Any]:
    """A non-deleted stack; 404 otherwise."""
    return await live(conn, "stack", STACK, stack_id, lock=lock)
