"""Stacks: named sets of Kubernetes objects owned by a generator, with labels/annotations."""

from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection, errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker.access import owned_stack, require_admin_or_generator
from brokkr.broker.auth import Identity
from brokkr.broker.context import authed
from brokkr.broker.errors import bad_request, conflict, forbidden, not_found
from brokkr.broker.http import (
    api_route,
    json_response,
    no_content,
    parse,
    parse_json,
    path_uuid,
    query_uuid,
    read_body,
    validate,
)
from brokkr.broker.queries import STACK, live_generator, live_stack, many, one
from brokkr.broker.routes import labels
from brokkr.broker.routes.deployment_objects import insert_deployment_object
from brokkr.broker.schemas import NewStack, NewStackAnnotation, NewStackLabel, UpdateStack

_TAKEN = "a stack named {!r} already exists"


async def list_stacks(request: Request) -> Response:
    wanted = query_uuid(request, "pak_id", "a generator UUID")
    async with authed(request) as (conn, who):
        require_admin_or_generator(who)
        owner: UUID | None = who.generator
        if who.admin and wanted:
            owner = wanted
        if owner is None:
            rows = await many(
                conn, f"SELECT {STACK} FROM stacks WHERE deleted_at IS NULL ORDER BY created_at"
            )
        else:
            rows = await many(
                conn,
                f"SELECT {STACK} FROM stacks WHERE deleted_at IS NULL AND generator_id = %s"
                " ORDER BY created_at",
                (owner,),
            )
    return json_response(rows)


async def create_stack(request: Request) -> Response:
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        require_admin_or_generator(who)
        body = parse(raw, NewStack)
        if who.generator and body.generator_id != who.generator:
            raise forbidden("a generator may only create stacks for itself")
        await live_generator(conn, body.generator_id)
        try:
            row = await one(
                conn,
                f"INSERT INTO stacks (name, description, generator_id) VALUES (%s, %s, %s)"
                f" RETURNING {STACK}",
                (body.name, body.description, body.generator_id),
            )
        except errors.UniqueViolation:
            raise conflict("stack_name_taken", _TAKEN.format(body.name)) from None
    return json_response(row, 201)


async def get_stack(request: Request) -> Response:
    stack_id = path_uuid(request)
    async with authed(request) as (conn, who):
        stack = await owned_stack(conn, who, stack_id)
    return json_response(stack)


async def update_stack(request: Request) -> Response:
    stack_id = path_uuid(request)
    raw = await read_body(request)
    async with authed(request) as (conn, who):
        stack = await owned_stack(conn, who, stack_id)
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise bad_request("invalid_request", "the body must be a JSON object (a Stack)")
        if "generator_id" in data and str(data["generator_id"]) != str(stack["generator_id"]):
            raise bad_request("generator_change", "a stack cannot move to another generator")
        body = validate(UpdateStack, data)
        try:
            row = await one(
                conn,
                f"UPDATE stacks SET name = coalesce(%s, name),"
                f" description = coalesce(%s, description), updated_at = now()"
                f" WHERE id = %s AND deleted_at IS NULL RETURNING {STACK}",
                (body.name, body.description, stack_id),
            )
        except errors.UniqueViolation:
            raise conflict("stack_name_taken", _TAKEN.format(body.name)) from None
        if row is None:  # deleted since the check above
            raise not_found("stack", stack_id)
    return json_response(row)


async def delete_stack(request: Request) -> Response:
    """Soft-delete the stack and record a deletion marker as its final state.

    The live-stack check locks the row (FOR UPDATE) in the same transaction as
    the writes: of concurrent DELETEs one wins, the others then find the stack
    deleted and answer 404, so there is exactly one deletion marker.
    """
    stack_id = path_uuid(request)
    async with authed(request) as (conn, who), conn.transaction():
        await owned_stack(conn, who, stack_id, lock="update")
        await insert_deployment_object(conn, stack_id, "", deletion_marker=True)
        await conn.execute(
            "UPDATE stacks SET deleted_at = now(), updated_at = now() WHERE id = %s",
            (stack_id,),
        )
    return no_content()


async def _readable_stack(conn: AsyncConnection[dict], who: Identity, stack_id: UUID) -> None:
    if who.agent:
        await live_stack(conn, stack_id)
    else:
        await owned_stack(conn, who, stack_id)


def _label_body(raw: bytes, stack_id: UUID) -> str:
    """The body is a bare JSON string, for example "production"."""
    label = parse_json(raw)
    if isinstance(label, dict):
        label = label.get("label")
    return validate(NewStackLabel, {"label": label}).label


def _annotation_body(raw: bytes, stack_id: UUID) -> tuple[str, str]:
    body = parse(raw, NewStackAnnotation)
    if body.stack_id != stack_id:
        raise bad_request(
            "stack_id_mismatch", f"body stack_id {body.stack_id} differs from the path's"
        )
    return body.key, body.value


# The owning generator (or the admin) writes; agents may also read.
STACK_TAGS = labels.Owner(
    kind="stack",
    may_read=_readable_stack,
    may_write=owned_stack,
    label_body=_label_body,
    annotation_body=_annotation_body,
)


def routes() -> list[Route]:
    return [
        api_route("/stacks", list_stacks, ["GET"]),
        api_route("/stacks", create_stack, ["POST"]),
        api_route("/stacks/{id}", get_stack, ["GET"]),
        api_route("/stacks/{id}", update_stack, ["PUT"]),
        api_route("/stacks/{id}", delete_stack, ["DELETE"]),
        *labels.routes(STACK_TAGS),
    ]
