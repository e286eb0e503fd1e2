"""Which stacks an agent runs: explicit targets, agent labels, agent annotations."""

from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection, errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker.auth import Identity, require_admin, require_admin_or_agent
from brokkr.broker.context import authed
from brokkr.broker.errors import bad_request, conflict, forbidden, not_found
from brokkr.broker.http import api_route, json_response, no_content, parse, path_uuid, read_body
from brokkr.broker.queries import live_agent, live_stack, many, one
from brokkr.broker.routes import labels
from brokkr.broker.schemas import NewAgentAnnotation, NewAgentLabel, NewAgentTarget


def _same_agent(path_id: UUID, body_id: UUID) -> None:
    if path_id != body_id:
        raise bad_request(
            "agent_id_mismatch", f"body agent_id {body_id} differs from the path's {path_id}"
        )


async def _authorize_target_change(
    conn: AsyncConnection[dict], who: Identity, agent_id: UUID, stack_id: UUID
) -> None:
    """Admin or the generator owning the stack; the agent must be registered with it."""
    if not (who.admin or who.generator):
        raise forbidden("only the admin or the stack's generator may change targets")
    stack = await live_stack(conn, stack_id)
    if who.generator and stack["generator_id"] != who.generator:
        raise forbidden("a generator may only target its own stacks", "target_generator_mismatch")
    await live_agent(conn, agent_id)
    registered = await one(
        conn,
        "SELECT 1 AS ok FROM agent_generator_registrations"
        " WHERE agent_id = %s AND generator_id = %s",
        (agent_id, stack["generator_id"]),
    )
    if registered is None:
        raise forbidden(
            "the agent is not registered with the stack's generator; register it first"
            " (POST /api/v1/generators/{id}/register)",
            "agent_not_registered",
        )


async def list_targets(request: Request) -> Response:
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        rows = await many(
            conn,
            "SELECT id, agent_id, stack_id FROM agent_targets WHERE agent_id = %s",
            (agent_id,),
        )
    return json_response(rows)


async def add_target(request: Request) -> Response:
    agent_id = path_uuid(request)
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        if not (who.admin or who.generator):
            raise forbidden("only the admin or the stack's generator may change targets")
        body = parse(raw, NewAgentTarget)
        _same_agent(agent_id, body.agent_id)
        await _authorize_target_change(conn, who, agent_id, body.stack_id)
        try:
            row = await one(
                conn,
                "INSERT INTO agent_targets (agent_id, stack_id) VALUES (%s, %s)"
                " RETURNING id, agent_id, stack_id",
                (agent_id, body.stack_id),
            )
        except errors.UniqueViolation:
            raise conflict("target_exists", "the agent already targets this stack") from None
    return json_response(row, 201)


async def remove_target(request: Request) -> Response:
    agent_id = path_uuid(request)
    stack_id = path_uuid(request, "stack_id")
    async with authed(request) as (conn, who):
        await _authorize_target_change(conn, who, agent_id, stack_id)
        cursor = await conn.execute(
            "DELETE FROM agent_targets WHERE agent_id = %s AND stack_id = %s", (agent_id, stack_id)
        )
        if cursor.rowcount == 0:
            raise not_found("agent_target")
    return no_content()


async def _admin_only(conn: AsyncConnection[dict], who: Identity, agent_id: UUID) -> None:
    require_admin(who)


async def _admin_or_agent(conn: AsyncConnection[dict], who: Identity, agent_id: UUID) -> None:
    require_admin_or_agent(who, agent_id)


def _label_body(raw: bytes, agent_id: UUID) -> str:
    body = parse(raw, NewAgentLabel)
    _same_agent(agent_id, body.agent_id)
    return body.label


def _annotation_body(raw: bytes, agent_id: UUID) -> tuple[str, str]:
    body = parse(raw, NewAgentAnnotation)
    _same_agent(agent_id, body.agent_id)
    return body.key, body.value


# Only the admin writes agent labels and annotations; the agent reads its own.
AGENT_TAGS = labels.Owner(
    kind="agent",
    may_read=_admin_or_agent,
    may_write=_admin_only,
    label_body=_label_body,
    annotation_body=_annotation_body,
    before_insert=live_agent,
)


def routes() -> list[Route]:
    return [
        api_route("/agents/{id}/targets", list_targets, ["GET"]),
        api_route("/agents/{id}/targets", add_target, ["POST"]),
        api_route("/agents/{id}/targets/{stack_id}", remove_target, ["DELETE"]),
        *labels.routes(AGENT_TAGS),
    ]
