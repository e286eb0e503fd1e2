"""Labels and annotations: one implementation serving both agents and stacks.

The tables are `<kind>_labels` and `<kind>_annotations`, keyed by `<kind>_id`;
error codes and messages name the kind ("agent_label_not_found", "the stack
already has label 'x'"). What differs per kind (who may read or write, how a
body is parsed) comes in through `Owner`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker.auth import Identity
from brokkr.broker.context import authed
from brokkr.broker.errors import conflict, not_found
from brokkr.broker.http import Handler, api_route, json_response, no_content, path_uuid, read_body
from brokkr.broker.queries import many, one

# Raises 403/404 when the caller may not act on this owner; the result is ignored.
Check = Callable[[AsyncConnection[dict], Identity, UUID], Awaitable[Any]]
# Parses a POST body for the owner in the path: the label, or (key, value).
LabelBody = Callable[[bytes, UUID], str]
AnnotationBody = Callable[[bytes, UUID], tuple[str, str]]


@dataclass(frozen=True)
class Owner:
    """Whose labels and annotations these are, and the rules that differ per kind."""

    kind: str  # "agent" or "stack"
    may_read: Check
    may_write: Check  # runs before the body is parsed
    label_body: LabelBody
    annotation_body: AnnotationBody
    # Runs after the body is parsed, before an insert (404 for a missing owner).
    before_insert: Callable[[AsyncConnection[dict], UUID], Awaitable[Any]] | None = None

    @property
    def column(self) -> str:
        return f"{self.kind}_id"


@dataclass(frozen=True)
class _Table:
    """`labels` (one column, "label") or `annotations` ("key, value", keyed by key)."""

    name: str  # "labels": the table is `<kind>_labels`
    item: str  # "label": in error codes and messages
    fields: str  # the columns after the owner id
    key: str  # the column a row is found (and sorted) by within an owner

    @property
    def values(self) -> int:
        return self.fields.count(",") + 1


_LABELS = _Table("labels", "label", "label", "label")
_ANNOTATIONS = _Table("annotations", "annotation", "key, value", "key")


def _list(owner: Owner, table: _Table) -> Handler:
    async def handler(request: Request) -> Response:
        owner_id = path_uuid(request)
        async with authed(request) as (conn, who):
            await owner.may_read(conn, who, owner_id)
            rows = await many(
                conn,
                f"SELECT id, {owner.column}, {table.fields} FROM {owner.kind}_{table.name}"
                f" WHERE {owner.column} = %s ORDER BY {table.key}",
                (owner_id,),
            )
        return json_response(rows)

    return handler


def _add(owner: Owner, table: _Table, body: Callable[[bytes, UUID], tuple[str, ...]]) -> Handler:
    placeholders = ", ".join(["%s"] * (table.values + 1))

    async def handler(request: Request) -> Response:
        owner_id = path_uuid(request)
        raw = await read_body(request)
        async with authed(request) as (conn, who):
            await owner.may_write(conn, who, owner_id)
            values = body(raw, owner_id)
            if owner.before_insert is not None:
                await owner.before_insert(conn, owner_id)
            try:
                row = await one(
                    conn,
                    f"INSERT INTO {owner.kind}_{table.name} ({owner.column}, {table.fields})"
                    f" VALUES ({placeholders}) RETURNING id, {owner.column}, {table.fields}",
                    (owner_id, *values),
                )
            except errors.UniqueViolation:
                raise conflict(
                    f"{table.item}_exists",
                    f"the {owner.kind} already has {table.item} {values[0]!r}",
                ) from None
        return json_response(row, 201)

    return handler


def _remove(owner: Owner, table: _Table) -> Handler:
    async def handler(request: Request) -> Response:
        owner_id = path_uuid(request)
        value = request.path_params[table.key]
        async with authed(request) as (conn, who):
            await owner.may_write(conn, who, owner_id)
            cursor = await conn.execute(
                f"DELETE FROM {owner.kind}_{table.name}"
                f" WHERE {owner.column} = %s AND {table.key} = %s",
                (owner_id, value),
            )
            if cursor.rowcount == 0:
                raise not_found(f"{owner.kind}_{table.item}", repr(value))
        return no_content()

    return handler


def _routes(
    owner: Owner, table: _Table, body: Callable[[bytes, UUID], tuple[str, ...]]
) -> list[Route]:
    path = f"/{owner.kind}s/{{id}}/{table.name}"
    named = f"{owner.kind}_{table.item}"
    return [
        api_route(path, _named(_list(owner, table), f"list_{named}s"), ["GET"]),
        api_route(path, _named(_add(owner, table, body), f"add_{named}"), ["POST"]),
        api_route(
            f"{path}/{{{table.key}:path}}",
            _named(_remove(owner, table), f"remove_{named}"),
            ["DELETE"],
        ),
    ]


def _named(handler: Handler, name: str) -> Handler:
    """Name a generated handler after its action and kind, for route names and logs."""
    handler.__name__ = handler.__qualname__ = name
    return handler


def routes(owner: Owner) -> list[Route]:
    """GET/POST `/<kind>s/{id}/labels|annotations` and DELETE of one label or key."""
    return [
        *_routes(owner, _LABELS, lambda raw, owner_id: (owner.label_body(raw, owner_id),)),
        *_routes(owner, _ANNOTATIONS, owner.annotation_body),
    ]
