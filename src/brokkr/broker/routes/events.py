"""Agent events: what an agent reports after acting on a deployment object."""

from __future__ import annotations

from psycopg import errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker.auth import require_admin, require_admin_or_agent
from brokkr.broker.context import authed
from brokkr.broker.errors import bad_request, not_found
from brokkr.broker.http import api_route, json_response, parse, path_uuid, query_uuid, read_body
from brokkr.broker.queries import EVENT, live, live_agent, many, one
from brokkr.broker.schemas import NewAgentEvent


async def list_for_agent(request: Request) -> Response:
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        rows = await many(
            conn,
            f"SELECT {EVENT} FROM agent_events WHERE agent_id = %s AND deleted_at IS NULL"
            " ORDER BY created_at",
            (agent_id,),
        )
    return json_response(rows)


async def create_for_agent(request: Request) -> Response:
    agent_id = path_uuid(request)
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        body = parse(raw, NewAgentEvent)
        if body.agent_id != agent_id:
            raise bad_request(
                "agent_id_mismatch", f"body agent_id {body.agent_id} differs from the path's"
            )
        await live_agent(conn, agent_id)
        try:
            row = await one(
                conn,
                "INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status,"
                f" message) VALUES (%s, %s, %s, %s, %s) RETURNING {EVENT}",
                (agent_id, body.deployment_object_id, body.event_type, body.status, body.message),
            )
        except errors.ForeignKeyViolation:
            raise not_found("deployment_object", body.deployment_object_id) from None
    return json_response(row, 201)


async def list_all(request: Request) -> Response:
    """All events; `pak_id` narrows to one generator's stacks."""
    generator_id = query_uuid(request, "pak_id", "a generator UUID")
    async with authed(request) as (conn, who):
        require_admin(who)
        if generator_id:
            rows = await many(
                conn,
                f"SELECT {', '.join('e.' + c.strip() for c in EVENT.split(','))}"
                " FROM agent_events e JOIN deployment_objects d ON d.id = e.deployment_object_id"
                " JOIN stacks s ON s.id = d.stack_id"
                " WHERE s.generator_id = %s AND e.deleted_at IS NULL ORDER BY e.created_at",
                (generator_id,),
            )
        else:
            rows = await many(
                conn,
                f"SELECT {EVENT} FROM agent_events WHERE deleted_at IS NULL ORDER BY created_at",
            )
    return json_response(rows)


async def get_one(request: Request) -> Response:
    event_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin(who)
        row = await live(conn, "agent_event", EVENT, event_id)
    return json_response(row)


def routes() -> list[Route]:
    return [
        api_route("/agents/{id}/events", list_for_agent, ["GET"]),
        api_route("/agents/{id}/events", create_for_agent, ["POST"]),
        api_route("/agent-events", list_all, ["GET"]),
        api_route("/agent-events/{id}", get_one, ["GET"]),
    ]
