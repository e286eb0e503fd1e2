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


async def list_labels(request: Request) -> Response:
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        rows = await many(
            conn,
            "SELECT id, agent_id, label FROM agent_labels WHERE agent_id = %s ORDER BY label",
            (agent_id,),
        )
    return json_response(rows)


async def add_label(request: Request) -> Response:
    agent_id = path_uuid(request)
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        require_admin(who)
        body = parse(raw, NewAgentLabel)
        _same_agent(agent_id, body.agent_id)
        await live_agent(conn, agent_id)
        try:
            row = await one(
                conn,
                "INSERT INTO agent_labels (agent_id, label) VALUES (%s, %s)"
                " RETURNING id, agent_id, label",
                (agent_id, body.label),
            )
        except errors.UniqueViolation:
            raise conflict("label_exists", f"the agent already has label {body.label!r}") from None
    return json_response(row, 201)


async def remove_label(request: Request) -> Response:
    agent_id = path_uuid(request)
    label = request.path_params["label"]
    async with authed(request) as (conn, who):
        require_admin(who)
        cursor = await conn.execute(
            "DELETE FROM agent_labels WHERE agent_id = %s AND label = %s", (agent_id, label)
        )
        if cursor.rowcount == 0:
            raise not_found("agent_label", repr(label))
    return no_content()


async def list_annotations(request: Request) -> Response:
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        rows = await many(
            conn,
            "SELECT id, agent_id, key, value FROM agent_annotations WHERE agent_id = %s"
            " ORDER BY key",
            (agent_id,),
        )
    return json_response(rows)


async def add_annotation(request: Request) -> Response:
    agent_id = path_uuid(request)
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        require_admin(who)
        body = parse(raw, NewAgentAnnotation)
        _same_agent(agent_id, body.agent_id)
        await live_agent(conn, agent_id)
        try:
            row = await one(
                conn,
                "INSERT INTO agent_annotations (agent_id, key, value) VALUES (%s, %s, %s)"
                " RETURNING id, agent_id, key, value",
                (agent_id, body.key, body.value),
            )
        except errors.UniqueViolation:
            raise conflict(
                "annotation_exists", f"the agent already has annotation {body.key!r}"
            ) from None
    return json_response(row, 201)


async def remove_annotation(request: Request) -> Response:
    agent_id = path_uuid(request)
    key = request.path_params["key"]
    async with authed(request) as (conn, who):
        require_admin(who)
        cursor = await conn.execute(
            "DELETE FROM agent_annotations WHERE agent_id = %s AND key = %s", (agent_id, key)
        )
        if cursor.rowcount == 0:
            raise not_found("agent_annotation", repr(key))
    return no_content()


def routes() -> list[Route]:
    return [
        api_route("/agents/{id}/targets", list_targets, ["GET"]),
        api_route("/agents/{id}/targets", add_target, ["POST"]),
        api_route("/agents/{id}/targets/{stack_id}", remove_target, ["DELETE"]),
        api_route("/agents/{id}/labels", list_labels, ["GET"]),
        api_route("/agents/{id}/labels", add_label, ["POST"]),
        api_route("/agents/{id}/labels/{label:path}", remove_label, ["DELETE"]),
        api_route("/agents/{id}/annotations", list_annotations, ["GET"]),
        api_route("/agents/{id}/annotations", add_annotation, ["POST"]),
        api_route("/agents/{id}/annotations/{key:path}", remove_annotation, ["DELETE"]),
    ]
