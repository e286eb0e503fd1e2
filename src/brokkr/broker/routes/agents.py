"""Agents: create, find, update, delete, heartbeat, PAK rotation, target state."""

from __future__ import annotations

from psycopg import errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker import pak, targetstate
from brokkr.broker.auth import authenticate, presented_pak, require_admin, require_admin_or_agent
from brokkr.broker.context import authed, db
from brokkr.broker.errors import ApiError, bad_request, conflict, forbidden, not_found
from brokkr.broker.http import (
    api_route,
    json_response,
    no_content,
    parse,
    parse_json,
    path_uuid,
    read_body,
    validate,
)
from brokkr.broker.queries import (
    AGENT,
    ASSOCIATED_STACK_IDS,
    STACK,
    live_agent,
    many,
    one,
)
from brokkr.broker.schemas import CreateAgentRequest, HeartbeatReport, UpdateAgent

_TAKEN = "an agent with this name already exists in this cluster"


async def list_agents(request: Request) -> Response:
    async with authed(request) as (conn, who):
        if who.admin:
            rows = await many(
                conn, f"SELECT {AGENT} FROM agents WHERE deleted_at IS NULL ORDER BY created_at"
            )
        elif who.generator:
            rows = await many(
                conn,
                f"SELECT {AGENT} FROM agents a WHERE a.deleted_at IS NULL AND EXISTS ("
                " SELECT 1 FROM agent_generator_registrations r"
                " WHERE r.agent_id = a.id AND r.generator_id = %s) ORDER BY a.created_at",
                (who.generator,),
            )
        else:
            raise forbidden("only the admin or a generator may list agents")
    return json_response(rows)


async def create_agent(request: Request) -> Response:
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        require_admin(who)
        body = parse(raw, CreateAgentRequest)
        wanted = set(body.generator_ids)
        if wanted:
            found = await many(
                conn,
                "SELECT id FROM generators WHERE id = ANY(%s) AND deleted_at IS NULL",
                (list(wanted),),
            )
            missing = wanted - {row["id"] for row in found}
            if missing:
                raise bad_request(
                    "invalid_generator_id",
                    "unknown generator_ids: " + ", ".join(sorted(map(str, missing))),
                    {"generator_ids": sorted(map(str, missing))},
                )
        new = pak.generate()
        async with conn.transaction():
            try:
                agent = await one(
                    conn,
                    f"INSERT INTO agents (name, cluster_name, pak_hash) VALUES (%s, %s, %s)"
                    f" RETURNING {AGENT}",
                    (body.name, body.cluster_name, new.hash),
                )
            except errors.UniqueViolation:
                raise conflict("agent_name_taken", _TAKEN) from None
            if agent is None:
                raise RuntimeError("INSERT ... RETURNING gave no row")
            for generator_id in wanted:
                await conn.execute(
                    "INSERT INTO agent_generator_registrations (agent_id, generator_id)"
                    " VALUES (%s, %s)",
                    (agent["id"], generator_id),
                )
    return json_response({"agent": agent, "initial_pak": new.pak}, 201)


async def search_agent(request: Request) -> Response:
    name = request.query_params.get("name")
    cluster = request.query_params.get("cluster_name")
    async with authed(request) as (conn, who):
        if not (who.admin or who.agent):
            raise forbidden("only the admin or an agent may look agents up")
        if not name or not cluster:
            raise bad_request(
                "invalid_query", "both query parameters `name` and `cluster_name` are required"
            )
        row = await one(
            conn,
            f"SELECT {AGENT} FROM agents WHERE name = %s AND cluster_name = %s"
            " AND deleted_at IS NULL",
            (name, cluster),
        )
        if row is None:
            raise not_found("agent")
        require_admin_or_agent(who, row["id"])
    return json_response(row)


async def get_agent(request: Request) -> Response:
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        row = await live_agent(conn, agent_id)
    return json_response(row)


async def update_agent(request: Request) -> Response:
    """Change name, cluster_name or status (for example ACTIVE / INACTIVE)."""
    agent_id = path_uuid(request)
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise bad_request("invalid_request", "the body must be a JSON object")
        body = validate(UpdateAgent, data)
        await live_agent(conn, agent_id)
        try:
            row = await one(
                conn,
                f"UPDATE agents SET name = coalesce(%s, name),"
                f" cluster_name = coalesce(%s, cluster_name), status = coalesce(%s, status),"
                f" updated_at = now() WHERE id = %s RETURNING {AGENT}",
                (body.name, body.cluster_name, body.status, agent_id),
            )
        except errors.UniqueViolation:
            raise conflict("agent_name_taken", _TAKEN) from None
    return json_response(row)


async def delete_agent(request: Request) -> Response:
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin(who)
        await live_agent(conn, agent_id)
        await conn.execute(
            "UPDATE agents SET deleted_at = now(), updated_at = now() WHERE id = %s", (agent_id,)
        )
    return no_content()


async def heartbeat(request: Request) -> Response:
    """Record that the agent is alive, with optional Kubernetes reachability.

    The hot path authenticates and updates in one statement (the row only
    matches the agent's own PAK hash), shared with the other heartbeats waiting
    (see heartbeats.py); anything else falls back to the normal authentication
    to answer 401 or 403.
    """
    agent_id = path_uuid(request)
    raw = await read_body(request)
    presented = presented_pak(request)
    digest = pak.hash_pak(presented) if pak.looks_like_pak(presented) else ""
    try:
        report = validate(HeartbeatReport, parse_json(raw, allow_empty=True) or {})
    except ApiError as invalid:
        async with authed(request) as (_, who):
            if not who.is_agent(agent_id):
                raise forbidden("only the agent itself may send its heartbeat") from None
        raise invalid from None
    writer = request.app.state.heartbeats
    if not await writer.record(agent_id, digest, report.k8s_reachable, report.k8s_api_latency_ms):
        async with db(request) as conn:
            who = await authenticate(conn, request)
        if not who.is_agent(agent_id):
            raise forbidden("only the agent itself may send its heartbeat")
        raise not_found("agent", agent_id)
    return no_content()


async def rotate_pak(request: Request) -> Response:
    """Replace the agent's PAK; the old one stops working at once."""
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        await live_agent(conn, agent_id)
        new = pak.generate()
        row = await one(
            conn,
            f"UPDATE agents SET pak_hash = %s, updated_at = now() WHERE id = %s RETURNING {AGENT}",
            (new.hash, agent_id),
        )
    return json_response({"agent": row, "pak": new.pak})


async def associated_stacks(request: Request) -> Response:
    agent_id = path_uuid(request)
    async with authed(request) as (conn, who):
        require_admin_or_agent(who, agent_id)
        await live_agent(conn, agent_id)
        rows = await many(
            conn,
            f"SELECT {STACK} FROM stacks WHERE id IN ({ASSOCIATED_STACK_IDS}) ORDER BY created_at",
            {"agent": agent_id},
        )
    return json_response(rows)


async def target_state(request: Request) -> Response:
    """The newest deployment object of each stack the agent should run.

    Incremental (default) leaves out objects the agent already reported an
    event for; `mode=full` returns all of them, which is what removals must be
    decided from.
    """
    agent_id = path_uuid(request)
    mode = request.query_params.get("mode", "incremental")
    if mode not in {"incremental", "full"}:
        raise bad_request("invalid_mode", f"mode must be 'incremental' or 'full', got {mode!r}")
    presented = presented_pak(request)
    digest = pak.hash_pak(presented) if pak.looks_like_pak(presented) else ""
    body = await request.app.state.target_states.own(agent_id, digest, mode == "full")
    if body is None:
        # Not this agent's own PAK: full authentication decides 401/403/404.
        async with db(request) as conn:
            who = await authenticate(conn, request)
            require_admin_or_agent(who, agent_id)
            params = {"agent": agent_id, "full": mode == "full", "admin": True, "hash": ""}
            row = await one(conn, targetstate.ONE, params)
            if row is None or not row["found"]:
                raise not_found("agent", agent_id)
            body = row["body"]
    return Response(body.encode(), media_type="application/json")


def routes() -> list[Route]:
    return [
        api_route("/agents", list_agents, ["GET"]),
        api_route("/agents", create_agent, ["POST"]),
        api_route("/agents/", search_agent, ["GET"]),
        api_route("/agents/{id}", get_agent, ["GET"]),
        api_route("/agents/{id}", update_agent, ["PUT"]),
        api_route("/agents/{id}", delete_agent, ["DELETE"]),
        api_route("/agents/{id}/heartbeat", heartbeat, ["POST"], own_auth=True),
        api_route("/agents/{id}/rotate-pak", rotate_pak, ["POST"]),
        api_route("/agents/{id}/stacks", associated_stacks, ["GET"]),
        api_route("/agents/{id}/target-state", target_state, ["GET"]),
    ]
