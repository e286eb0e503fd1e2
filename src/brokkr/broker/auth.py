"""Who is calling: resolve the PAK in the Authorization header to a role.

The header carries the raw PAK or `Bearer <PAK>`. The PAK's hash is looked up
among the admin role, live agents and live generators in one query; the
stored hash is then compared in constant time before it is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from psycopg import AsyncConnection
from starlette.requests import Request

from brokkr.broker import pak
from brokkr.broker.errors import forbidden, unauthorized

_LOOKUP = """
SELECT 'admin' AS role, NULL::uuid AS id, pak_hash FROM admin_role WHERE pak_hash = %(h)s
UNION ALL
SELECT 'agent', id, pak_hash FROM agents WHERE pak_hash = %(h)s AND deleted_at IS NULL
UNION ALL
SELECT 'generator', id, pak_hash FROM generators WHERE pak_hash = %(h)s AND deleted_at IS NULL
LIMIT 1
"""


@dataclass(frozen=True)
class Identity:
    """The authenticated caller: admin, one agent, or one generator."""

    admin: bool = False
    agent: UUID | None = None
    generator: UUID | None = None

    def is_agent(self, agent_id: UUID) -> bool:
        return self.agent == agent_id

    def is_generator(self, generator_id: UUID) -> bool:
        return self.generator == generator_id


def pak_in_header(value: str) -> str:
    """The PAK in an Authorization header value (raw or `Bearer <PAK>`); "" when none."""
    value = value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


def presented_pak(request: Request) -> str:
    """The PAK from the Authorization header; 401 when absent or malformed."""
    header = pak_in_header(request.headers.get("authorization", ""))
    if not header:
        raise unauthorized()
    return header


# Where a request's Identity is kept once resolved (before its body is read).
IDENTITY_KEY = "brokkr.identity"


async def authenticate(conn: AsyncConnection[dict], request: Request) -> Identity:
    """Resolve the caller's role; 401 for a missing, malformed or unknown PAK."""
    known = request.scope.get(IDENTITY_KEY)
    if isinstance(known, Identity):
        return known
    presented = presented_pak(request)
    try:
        digest = pak.hash_pak(presented)
    except pak.InvalidPak:
        raise unauthorized("the Authorization header does not hold a Brokkr PAK") from None
    cursor = await conn.execute(_LOOKUP, {"h": digest}, prepare=True)
    row = await cursor.fetchone()
    if row is None or not pak.matches(presented, row["pak_hash"]):
        raise unauthorized("unknown or revoked PAK")
    if row["role"] == "admin":
        return Identity(admin=True)
    if row["role"] == "agent":
        return Identity(agent=row["id"])
    return Identity(generator=row["id"])


def require_admin(identity: Identity) -> None:
    """403 unless the caller is the admin."""
    if not identity.admin:
        raise forbidden("this endpoint requires the admin PAK")


def require_admin_or_agent(identity: Identity, agent_id: UUID) -> None:
    """403 unless the caller is the admin or this very agent."""
    if not (identity.admin or identity.is_agent(agent_id)):
        raise forbidden("only the admin or the agent itself may do this")
