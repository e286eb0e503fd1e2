"""Generators: the systems that own stacks and push deployment objects."""

from __future__ import annotations

from psycopg import errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker import pak
from brokkr.broker.auth import require_admin
from brokkr.broker.context import authed
from brokkr.broker.errors import bad_request, conflict, forbidden
from brokkr.broker.http import (
    api_route,
    json_response,
    no_content,
    parse,
    path_uuid,
    read_body,
)
from brokkr.broker.queries import GENERATOR, live_agent, live_generator, many, one
from brokkr.broker.schemas import AgentRegistrationBody, NewGenerator


async def list_generators(request: Request) -> Response:
    async with authed(request) as (conn, who):
        require_admin(who)
        rows = await many(
            conn, f"SELECT {GENERATOR} FROM generators WHERE deleted_at IS NULL ORDER BY created_at"
        )
    return json_response(rows)


async def create_generator(request: Request) -> Response:
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        require_admin(who)
        body = parse(raw, NewGenerator)
        new = pak.generate()
        try:
            row = await one(
                conn,
                f"INSERT INTO generators (name, description, pak_hash) VALUES (%s, %s, %s)"
                f" RETURNING {GENERATOR}",
                (body.name, body.description, new.hash),
            )
        except errors.UniqueViolation:
            raise conflict(
                "generator_name_taken", f"a generator named {body.name!r} already exists"
            ) from None
    return json_response({"generator": row, "pak": new.pak}, 201)


async def get_generator(request: Request) -> Response:
    generator_id = path_uuid(request)
    async with authed(request) as (conn, who):
        if not (who.admin or who.is_generator(generator_id)):
            raise forbidden("only the admin or the generator itself may read it")
        row = await live_generator(conn, generator_id)
    return json_response(row)


async def delete_generator(request: Request) -> Response:
    generator_id = path_uuid(request)
    async with authed(request) as (conn, who):
        if not (who.admin or who.is_generator(generator_id)):
            raise forbidden("only the admin or the generator itself may delete it")
        await live_generator(conn, generator_id)
        await conn.execute(
            "UPDATE generators SET deleted_at = now(), updated_at = now() WHERE id = %s",
            (generator_id,),
        )
    return no_content()


async def register_agent(request: Request) -> Response:
    """Register an agent with a generator: the agent opts in to its stacks."""
    generator_id = path_uuid(request)
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        if not (who.admin or who.agent):
            raise forbidden("only the admin or an agent may register with a generator")
        body = parse(raw or b"{}", AgentRegistrationBody)
        agent_id = body.agent_id
        if who.agent is not None:
            if agent_id is not None and agent_id != who.agent:
                raise forbidden("an agent may only register itself")
            agent_id = who.agent
        if agent_id is None:
            raise bad_request("agent_id_required", "agent_id is required when the admin registers")
        await live_generator(conn, generator_id)
        await live_agent(conn, agent_id)
        try:
            row = await one(
                conn,
                "INSERT INTO agent_generator_registrations (agent_id, generator_id)"
                " VALUES (%s, %s) RETURNING id, agent_id, generator_id, registered_at",
                (agent_id, generator_id),
            )
        except errors.UniqueViolation:
            raise conflict(
                "already_registered", "the agent is already registered with this generator"
            ) from None
    return json_response(row, 201)


def routes() -> list[Route]:
    return [
        api_route("/generators", list_generators, ["GET"]),
        api_route("/generators", create_generator, ["POST"]),
        api_route("/generators/{id}", get_generator, ["GET"]),
        api_route("/generators/{id}", delete_generator, ["DELETE"]),
        api_route("/generators/{id}/register", register_agent, ["POST"]),
    ]
