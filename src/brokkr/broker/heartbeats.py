"""Heartbeats written in groups: one UPDATE (and one commit) for all that are waiting.

Each heartbeat still reaches the database before its 204 is sent (see
grouping.py). The statement checks each agent's PAK hash as the single-row
UPDATE did, so the outcome of every heartbeat is unchanged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from brokkr.broker.context import pooled
from brokkr.broker.grouping import Grouped, array_literal

# `report` says whether the agent sent Kubernetes reachability; without one the
# stored report stays as it was.
_GROUP = """
UPDATE agents a SET last_heartbeat = now(),
       k8s_reachable = CASE WHEN b.report THEN b.reachable ELSE a.k8s_reachable END,
       k8s_api_latency_ms = CASE WHEN b.report THEN b.latency ELSE a.k8s_api_latency_ms END,
       k8s_reported_at = CASE WHEN b.report THEN now() ELSE a.k8s_reported_at END
  FROM unnest(%s::uuid[], %s::text[], %s::bool[], %s::bool[], %s::int[])
       AS b(id, hash, report, reachable, latency)
 WHERE a.id = b.id AND a.pak_hash = b.hash AND a.deleted_at IS NULL
RETURNING a.id, a.pak_hash
"""


@dataclass(frozen=True)
class Beat:
    """One heartbeat: the agent, the hash of the PAK presented, the optional report."""

    agent: UUID
    digest: str
    reachable: bool | None
    latency_ms: int | None


class HeartbeatWriter:
    """Records heartbeats, grouped."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._groups: Grouped[Beat, bool] = Grouped(self._write, key=lambda beat: beat.agent)

    async def record(
        self, agent: UUID, digest: str, reachable: bool | None, latency_ms: int | None
    ) -> bool:
        """Record one heartbeat; True when the agent is live and `digest` is its PAK hash.

        Raises what the database access raises (503 when it is unavailable).
        """
        return await self._groups.submit(Beat(agent, digest, reachable, latency_ms))

    async def _write(self, beats: list[Beat]) -> list[bool]:
        params = (
            array_literal(b.agent for b in beats),
            array_literal(b.digest for b in beats),
            array_literal(b.reachable is not None for b in beats),
            array_literal(b.reachable for b in beats),
            array_literal(b.latency_ms if b.reachable is not None else None for b in beats),
        )
        async with pooled(self._pool) as conn:
            cursor = await conn.execute(_GROUP, params, prepare=True)
            stored = {row["id"]: row["pak_hash"] for row in await cursor.fetchall()}
        return [
            b.agent in stored and hmac.compare_digest(stored[b.agent].lower(), b.digest)
            for b in beats
        ]
