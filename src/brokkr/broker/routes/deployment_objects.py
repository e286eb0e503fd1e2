"""Deployment objects: immutable, versioned snapshots of a stack's multi-document YAML."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker import bodies
from brokkr.broker.access import owned_stack
from brokkr.broker.bodies import BodyLimits, is_json, is_yaml, unsupported_media_type
from brokkr.broker.context import authed
from brokkr.broker.errors import bad_request, forbidden
from brokkr.broker.http import api_route, json_response, path_uuid
from brokkr.broker.queries import ASSOCIATED_STACK_IDS, DEPLOYMENT_OBJECT, live, many, one
from brokkr.broker.yaml_worker import YamlWorkers


async def insert_deployment_object(
    conn: AsyncConnection[dict], stack_id: UUID, content: str, *, deletion_marker: bool
) -> dict[str, Any]:
    """Append a new snapshot with its SHA-256 checksum and the next global sequence."""
    checksum = hashlib.sha256(content.encode()).hexdigest()
    row = await one(
        conn,
        "INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum,"
        f" is_deletion_marker) VALUES (%s, %s, %s, %s) RETURNING {DEPLOYMENT_OBJECT}",
        (stack_id, content, checksum, deletion_marker),
    )
    if row is None:
        raise RuntimeError("INSERT ... RETURNING gave no row")
    return row


def _flag(raw: str | None) -> bool:
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no", ""}:
        return False
    raise bad_request("invalid_query", f"deletion_marker must be true or false, got {raw!r}")


async def create(request: Request) -> Response:
    """Accept JSON {yaml_content, is_deletion_marker} or a raw YAML body.

    The body is decoded and its YAML checked in a worker process
    (`yaml_worker`), with no database connection held meanwhile.
    """
    stack_id = path_uuid(request)
    wanted = "application/json or application/yaml"
    declared = bodies.declared_type(request, wanted)
    if declared is not None and not (is_json(declared) or is_yaml(declared)):
        raise unsupported_media_type(request.headers["content-type"], wanted)
    limits: BodyLimits = request.app.state.body_limits
    raw = await bodies.read_body(
        request, limit=limits.yaml_bytes, timeout=limits.read_timeout, setting=limits.yaml_setting
    )
    # Without a Content-Type, a body that looks like a JSON object is read as JSON.
    as_json = raw.lstrip()[:1] == b"{" if declared is None else is_json(declared)
    marker = False if as_json else _flag(request.query_params.get("deletion_marker"))
    async with authed(request) as (conn, who):
        await owned_stack(conn, who, stack_id)
    workers: YamlWorkers = request.app.state.yaml_workers
    content, marker = await workers.examine(raw, as_json=as_json, marker=marker)
    # The stack row is held (FOR SHARE) until the insert commits: a DELETE of the
    # stack waits for it, or, when the DELETE came first, this finds it deleted
    # (404). No object is ever written after its stack's deletion marker.
    async with authed(request) as (conn, who), conn.transaction():
        await owned_stack(conn, who, stack_id, lock="share")
        row = await insert_deployment_object(conn, stack_id, content, deletion_marker=marker)
    return json_response(row, 201)


async def list_for_stack(request: Request) -> Response:
    stack_id = path_uuid(request)
    async with authed(request) as (conn, who):
        await owned_stack(conn, who, stack_id)
        rows = await many(
            conn,
            f"SELECT {DEPLOYMENT_OBJECT} FROM deployment_objects"
            " WHERE stack_id = %s AND deleted_at IS NULL ORDER BY sequence_id",
            (stack_id,),
        )
    return json_response(rows)


async def get_one(request: Request) -> Response:
    """Admin, the generator owning the stack, or an agent the stack is meant for."""
    object_id = path_uuid(request)
    async with authed(request) as (conn, who):
        row = await live(conn, "deployment_object", DEPLOYMENT_OBJECT, object_id)
        if who.generator:
            owner = await one(
                conn, "SELECT generator_id FROM stacks WHERE id = %s", (row["stack_id"],)
            )
            if owner is None or owner["generator_id"] != who.generator:
                raise forbidden("this deployment object belongs to another generator's stack")
        elif who.agent:
            allowed = await one(
                conn,
                f"SELECT 1 AS ok WHERE %(stack)s IN ({ASSOCIATED_STACK_IDS})",
                {"stack": row["stack_id"], "agent": who.agent},
            )
            if allowed is None:
                raise forbidden("this deployment object's stack is not targeted at this agent")
    return json_response(row)


def routes() -> list[Route]:
    return [
        api_route("/stacks/{id}/deployment-objects", list_for_stack, ["GET"]),
        api_route("/stacks/{id}/deployment-objects", create, ["POST"]),
        api_route("/deployment-objects/{id}", get_one, ["GET"]),
    ]
