"""Request and response helpers shared by the route modules."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
    return json_response(error.body(), error.status)


API_PREFIX = "/api/v1"


def api_route(path: str, handler: Handler, methods: list[str], prefix: str = API_PREFIX) -> Route:
    """A route that records its full path template for metrics and logs."""
    template = prefix + path

    async def endpoint(request: Request) -> Response:
        request.scope["brokkr.route"] = template
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


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the configured limit."""
    limit: int = request.app.state.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"request body exceeds the limit of {limit} bytes (BROKKR__BROKER__MAX_BODY_BYTES)",
        {"max_bytes": limit},
    )


def parse_json(raw: bytes, *, allow_empty: bool = False) -> Any:
    """A body parsed as JSON; 400 naming the problem when it is not valid JSON."""
    if not raw.strip():
        if allow_empty:
            return None
        raise bad_request("invalid_json", "a JSON request body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("invalid_json", f"request body is not valid JSON: {exc}") from None


def validate(model: type[Model], data: Any) -> Model:
    """Validate parsed JSON against a request model; 400 listing each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(body)",
                "problem": err["msg"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise bad_request(
            "invalid_request", f"invalid request body: {summary}", {"errors": problems}
        ) from None


def parse(raw: bytes, model: type[Model]) -> Model:
    """Parse and validate a JSON body in one step."""
    return validate(model, parse_json(raw))
