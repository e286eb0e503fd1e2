"""Request bodies: the one place that reads, decodes and validates them.

Every route that takes a body goes through `read_body` (size limit, read timeout,
media type) and `decode_json` + `validate` (or the YAML worker for deployment
objects, which runs `decode_json` in its own process). Whatever PostgreSQL or
Python would choke on later is refused here with a 400 that names the field:

- strings holding NUL (PostgreSQL text cannot store it) or a lone UTF-16
  surrogate (not encodable as UTF-8);
- integers longer than `MAX_INT_DIGITS` digits and the non-standard constants
  NaN / Infinity;
- nesting deeper than `MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from brokkr.broker.errors import ApiError, bad_request

Model = TypeVar("Model", bound=BaseModel)

# Our bodies nest at most three levels; 32 leaves room for clients that send
# whole objects back. Python's own decoder stops near 1000 with RecursionError.
MAX_JSON_DEPTH = 32
# A signed 64-bit integer has at most 19 digits.
MAX_INT_DIGITS = 20
# How many field problems a 400 lists (a list of 10,000 bad items lists 10).
MAX_REPORTED_ERRORS = 10

_NUL = "\x00"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class BodyLimits:
    """The configured bounds (BrokerSettings), kept on `app.state.body_limits`."""

    json_bytes: int  # every JSON route except deployment objects
    yaml_bytes: int  # deployment objects (JSON or raw YAML)
    read_timeout: float  # seconds for the whole body to arrive
    json_setting: str = "BROKKR__BROKER__MAX_JSON_BODY_BYTES"
    yaml_setting: str = "BROKKR__BROKER__MAX_BODY_BYTES"


class _Rejected:
    """A decoded value the API refuses; the walk reports it with its field path."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _int(text: str) -> int | _Rejected:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Rejected(f"integer with {digits} digits (at most {MAX_INT_DIGITS} are allowed)")
    return int(text)


def _float(text: str) -> float | _Rejected:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Rejected(f"number {text[:40]} is out of range")
    return value


def _constant(name: str) -> _Rejected:
    return _Rejected(f"{name} is not a JSON number")


def _field(path: list[str | int]) -> str:
    return ".".join(str(p) for p in path) or "(body)"


def _string_problem(text: str) -> str | None:
    if _NUL in text:
        return "contains the NUL character (\\u0000), which cannot be stored"
    if _SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate (for example \\ud800), which is not valid Unicode"
    return None


def check_tree(data: Any) -> None:
    """400 naming the first field that holds a refused value or nests too deep."""
    stack: list[tuple[Any, list[str | int]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        problem = None
        if isinstance(value, str):
            problem = _string_problem(value)
        elif isinstance(value, _Rejected):
            problem = value.problem
        elif isinstance(value, dict | list):
            if len(path) >= MAX_JSON_DEPTH:
                raise _too_deep(path)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (key_problem := _string_problem(key)):
                    raise _bad_value([*path, key], f"key {key_problem}")
                stack.append((item, [*path, key]))
        if problem:
            raise _bad_value(path, problem)


def _bad_value(path: list[str | int], problem: str) -> ApiError:
    field = _field(path)
    return bad_request(
        "invalid_value",
        f"invalid request body: {field}: {problem}",
        {"errors": [{"field": field, "problem": problem}]},
    )


def _too_deep(path: list[str | int] | None = None) -> ApiError:
    where = f" at {_field(path)}" if path else ""
    return bad_request(
        "nesting_too_deep",
        f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels{where}",
        {"max_depth": MAX_JSON_DEPTH},
    )


def check_params(request: Request) -> None:
    """400 when a path or query parameter holds NUL (PostgreSQL text cannot)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and _NUL in value:
            raise bad_request("invalid_path", f"path parameter {name!r} contains NUL (%00)")
    for name, value in request.query_params.multi_items():
        if _NUL in name or _NUL in value:
            raise bad_request("invalid_query", f"query parameter {name!r} contains NUL (%00)")


def decode_json(raw: bytes, *, allow_empty: bool = False) -> Any:
    """Parse and screen a JSON body; 400 naming the problem when it is refused."""
    if not raw.strip():
        if allow_empty:
            return None
        raise bad_request("invalid_json", "a JSON request body is required")
    try:
        data = json.loads(raw, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise _too_deep() from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("invalid_json", f"request body is not valid JSON: {exc}") from None
    except ValueError as exc:  # any other conversion limit of the decoder
        raise bad_request("invalid_json", f"request body is not valid JSON: {exc}") from None
    check_tree(data)
    return data


def validate(model: type[Model], data: Any) -> Model:
    """Validate decoded JSON against a request model; 400 listing the bad fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or "(body)",
                "problem": err["msg"],
            }
            for err in exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_ERRORS]
        ]
        more = exc.error_count() - len(problems)
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        if more > 0:
            summary += f" (and {more} more)"
        raise bad_request(
            "invalid_request", f"invalid request body: {summary}", {"errors": problems}
        ) from None


@dataclass(frozen=True)
class MediaType:
    """A parsed Content-Type: lowercase type and subtype, parameters by lowercase name."""

    type: str
    subtype: str
    params: dict[str, str]

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"


# RFC 9110 token characters: what a type, subtype or parameter name is made of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
UTF8_CHARSETS = {"utf-8", "utf8", "us-ascii"}


def media_type(declared: str) -> MediaType | None:
    """`type/subtype *(; name=value)` parsed; None when it is not a media type."""
    essence, *raw_params = declared.split(";")
    kind, slash, subtype = essence.strip().partition("/")
    if not (slash and _TOKEN.fullmatch(kind) and _TOKEN.fullmatch(subtype)):
        return None
    params: dict[str, str] = {}
    for raw in raw_params:
        if not raw.strip():
            continue
        name, equals, value = raw.strip().partition("=")
        if not (equals and _TOKEN.fullmatch(name.strip())):
            return None
        params[name.strip().lower()] = value.strip().strip('"')
    return MediaType(kind.lower(), subtype.lower(), params)


def is_json(parsed: MediaType) -> bool:
    """application/json or any application/*+json type."""
    return parsed.essence == "application/json" or (
        parsed.type == "application" and parsed.subtype.endswith("+json")
    )


def is_yaml(parsed: MediaType) -> bool:
    """A YAML type (application/yaml, text/yaml, their x- forms, */*+yaml) or text/plain."""
    return (
        parsed.essence in _YAML_TYPES
        or parsed.essence == "text/plain"
        or (parsed.type == "application" and parsed.subtype.endswith("+yaml"))
    )


def declared_type(request: Request, wanted: str) -> MediaType | None:
    """The request's parsed Content-Type (None when absent); 415 when it is not one,
    or when it names a charset other than UTF-8 (bodies are read as UTF-8)."""
    declared = request.headers.get("content-type")
    if declared is None or not declared.strip():
        return None
    parsed = media_type(declared)
    if parsed is None:
        raise unsupported_media_type(declared, wanted, "it is not a media type")
    charset = parsed.params.get("charset")
    if charset is not None and charset.lower() not in UTF8_CHARSETS:
        raise unsupported_media_type(declared, wanted, f"charset {charset[:40]!r} is not UTF-8")
    return parsed


def require_json(request: Request) -> None:
    """415 when the request declares a media type that is not JSON.

    A request without Content-Type is read as JSON (curl -d and older clients).
    """
    parsed = declared_type(request, "application/json")
    if parsed is not None and not is_json(parsed):
        raise unsupported_media_type(request.headers["content-type"], "application/json")


def unsupported_media_type(declared: str, wanted: str, why: str = "") -> ApiError:
    reason = f" ({why})" if why else ""
    return ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {declared[:100]!r} is not supported here{reason}; send {wanted}",
        {"content_type": declared[:100]},
    )


async def read_body(request: Request, *, limit: int, timeout: float, setting: str) -> bytes:
    """The raw body: 413 past `limit` bytes, 408 when it does not arrive in `timeout` s.

    The 408 answer closes the connection (the rest of the body never came).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, setting)
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit, setting)
                chunks.append(chunk)
    except TimeoutError:
        raise body_timeout(timeout) from None
    return b"".join(chunks)


def body_timeout(timeout: float) -> ApiError:
    """408 for a body that did not arrive in time; the answer closes the connection."""
    return ApiError(
        408,
        "request_timeout",
        f"the request body did not arrive within {timeout:g} s (BROKKR__BROKER__BODY_READ_TIMEOUT)",
        {"timeout_seconds": timeout},
        headers={"Connection": "close"},
    )


def too_large(limit: int, setting: str) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"request body exceeds the limit of {limit} bytes for this endpoint ({setting})",
        {"max_bytes": limit},
    )
