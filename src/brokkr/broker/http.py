"""Request and response helpers shared by the route modules."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker import bodies
from brokkr.broker.bodies import BodyLimits, check_params, require_json, validate
from brokkr.broker.context import authenticate_first, has_body, require_pak_shape
from brokkr.broker.errors import ApiError, bad_request

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(data: Any) -> bytes:
    """Compact JSON with UUIDs as strings and timestamps in RFC 3339 (UTC, Z)."""
    return json.dumps(data, default=_default, separators=(",", ":")).encode()


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(dumps(data), status_code=status, media_type="application/json")


def no_content() -> Response:
    """204 without a body."""
    return Response(status_code=204)


def error_response(error: ApiError) -> Response:
    """The JSON error body with the error's status."""
    response = json_response(error.body(), error.status)
    response.headers.update(error.headers)
    return response


API_PREFIX = "/api/v1"


def api_route(
    path: str,
    handler: Handler,
    methods: list[str],
    prefix: str = API_PREFIX,
    *,
    own_auth: bool = False,
) -> Route:
    """A route that records its full path template for metrics and logs.

    An API request that announces a body is authenticated before the handler can
    read it. A route whose own statement authenticates (`own_auth`: the grouped
    heartbeat) only gets the PAK's shape checked first, keeping its one round trip.
    """
    template = prefix + path
    guarded = prefix == API_PREFIX  # every API route needs a PAK; probes do not

    async def endpoint(request: Request) -> Response:
        request.scope["brokkr.route"] = template
        check_params(request)
        if guarded and has_body(request):
            if own_auth:
                require_pak_shape(request)
            else:
                await authenticate_first(request)
        return await handler(request)

    endpoint.__doc__ = handler.__doc__
    endpoint.__name__ = handler.__name__
    return Route(path, endpoint, methods=methods, name=f"{handler.__module__}.{handler.__name__}")


def path_uuid(request: Request, name: str = "id") -> UUID:
    """A UUID path parameter; 400 when it is not one."""
    raw = request.path_params[name]
    try:
        return UUID(raw)
    except ValueError:
        raise bad_request(
            "invalid_id", f"path parameter {name!r} must be a UUID, got {raw!r}"
        ) from None


def query_uuid(request: Request, name: str, what: str) -> UUID | None:
    """An optional UUID query parameter; 400 when it is present but not one (even empty)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise bad_request("invalid_query", f"{name} must be {what}, got {raw[:80]!r}") from None


async def read_body(request: Request) -> bytes:
    """The raw body of a JSON route (415, 413, 408 as `bodies.read_body` says)."""
    require_json(request)
    limits: BodyLimits = request.app.state.body_limits
    return await bodies.read_body(
        request, limit=limits.json_bytes, timeout=limits.read_timeout, setting=limits.json_setting
    )


def parse_json(raw: bytes, *, allow_empty: bool = False) -> Any:
    """A body decoded as JSON and screened; 400 naming the problem when refused."""
    return bodies.decode_json(raw, allow_empty=allow_empty)


def parse(raw: bytes, model: type[Model]) -> Model:
    """Decode and validate a JSON body in one step."""
    return validate(model, parse_json(raw))
