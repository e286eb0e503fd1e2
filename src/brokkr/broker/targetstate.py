"""The target-state poll's statement: one agent's, and many agents' at once.

PostgreSQL renders the whole answer as JSON text, and the same statement checks
that the caller's PAK hash belongs to this agent (or that the caller is the
admin), so the hottest poll is one round trip and no row decoding in Python.
Polls of several agents that wait together share one statement (grouping.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from brokkr.broker.context import pooled
from brokkr.broker.grouping import Grouped, array_literal
from brokkr.broker.queries import ASSOCIATED_STACK_IDS, DEPLOYMENT_OBJECT


def _ts(column: str) -> str:
    """SQL rendering a timestamptz as RFC 3339 UTC, as the Python encoder does."""
    return (
        f"CASE WHEN {column} IS NULL THEN NULL ELSE "
        f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') END"
    )


def _statement(agent: str, caller_may: str, full: str) -> str:
    """One agent's answer (`found`, `body`) from SQL expressions for its parameters."""
    stacks = ASSOCIATED_STACK_IDS.replace("%(agent)s", agent)
    return f"""
WITH me AS (
    SELECT id FROM agents
     WHERE id = {agent} AND deleted_at IS NULL AND ({caller_may})),
latest AS (
    SELECT DISTINCT ON (d.stack_id) {DEPLOYMENT_OBJECT}
      FROM deployment_objects d
     WHERE EXISTS (SELECT 1 FROM me)
       AND d.deleted_at IS NULL AND d.stack_id IN ({stacks})
     ORDER BY d.stack_id, d.sequence_id DESC)
SELECT (SELECT count(*) FROM me) AS found,
       coalesce(json_agg(json_build_object(
           'id', l.id, 'created_at', {_ts("l.created_at")},
           'updated_at', {_ts("l.updated_at")}, 'deleted_at', {_ts("l.deleted_at")},
           'sequence_id', l.sequence_id, 'stack_id', l.stack_id,
           'yaml_content', l.yaml_content, 'yaml_checksum', l.yaml_checksum,
           'submitted_at', {_ts("l.submitted_at")},
           'is_deletion_marker', l.is_deletion_marker) ORDER BY l.sequence_id), '[]')::text
         AS body
  FROM latest l
 WHERE {full} OR NOT EXISTS (
       SELECT 1 FROM agent_events e
        WHERE e.agent_id = {agent} AND e.deployment_object_id = l.id
          AND e.deleted_at IS NULL)
"""


# One agent: parameters agent, admin (skip the PAK check), hash, full.
ONE = _statement("%(agent)s", "%(admin)s OR pak_hash = %(hash)s", "%(full)s")

# Many agents, each with its own PAK hash and mode; one row per agent, in order.
_GROUP = f"""
SELECT t.found, t.body
  FROM unnest(%s::uuid[], %s::text[], %s::bool[]) WITH ORDINALITY AS q(agent, hash, whole, n)
 CROSS JOIN LATERAL ({_statement("q.agent", "pak_hash = q.hash", "q.whole")}) t
 ORDER BY q.n
"""


@dataclass(frozen=True)
class Poll:
    """One agent's poll with the hash of the PAK it presented."""

    agent: UUID
    digest: str
    full: bool


class TargetStateReader:
    """Answers agents' own target-state polls, grouped."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._groups: Grouped[Poll, str | None] = Grouped(self._read)

    async def own(self, agent: UUID, digest: str, full: bool) -> str | None:
        """The JSON body when `digest` is the live agent's PAK hash, else None."""
        return await self._groups.submit(Poll(agent, digest, full))

    async def _read(self, polls: list[Poll]) -> list[str | None]:
        params = (
            array_literal(p.agent for p in polls),
            array_literal(p.digest for p in polls),
            array_literal(p.full for p in polls),
        )
        async with pooled(self._pool) as conn:
            cursor = await conn.execute(_GROUP, params, prepare=True)
            rows = await cursor.fetchall()
        return [row["body"] if row["found"] else None for row in rows]
