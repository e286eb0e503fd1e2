"""The agents' two polling routes as plain ASGI, in front of the middleware stack.

Heartbeats and target-state polls are nearly all of the traffic. Through the
full stack each one crosses five middleware layers, the router and Starlette's
Request/Response objects; here the same work is done once: request id, metrics
and the 5xx log line as `RequestIdMiddleware` and `MetricsMiddleware` do them,
the path, query, media type and body checks as the routes do them, and the
answer sent as two ASGI messages with the same headers.

Only the common case is answered here: a well-formed request with an agent PAK
that the grouped statement accepts. Anything else (no or malformed PAK, another
caller's PAK, an unknown agent, an invalid body, unexpected query parameters)
goes to the full stack, which answers it exactly as before (the body read here
is handed on), so every error answer keeps one implementation.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brokkr.broker import pak
from brokkr.broker.auth import pak_in_header
from brokkr.broker.bodies import (
    UTF8_CHARSETS,
    BodyLimits,
    body_timeout,
    decode_json,
    is_json,
    media_type,
    too_large,
    validate,
)
from brokkr.broker.errors import ApiError
from brokkr.broker.http import API_PREFIX, error_response
from brokkr.broker.metrics import Metrics
from brokkr.broker.request_id import (
    HEADER,
    LOGGED_KEY,
    SCOPE_KEY,
    answer_unexpected,
    request_id_for,
    tagged_headers,
)
from brokkr.broker.schemas import HeartbeatReport

_AGENTS = f"{API_PREFIX}/agents/"
_HEADER = HEADER.encode()
_UUID_LENGTH = 36
_HEARTBEAT = "/heartbeat"
_TARGET_STATE = "/target-state"
HEARTBEAT_ROUTE = f"{API_PREFIX}/agents/{{id}}/heartbeat"
TARGET_STATE_ROUTE = f"{API_PREFIX}/agents/{{id}}/target-state"
# The query strings the target-state route answers here (anything else: full stack).
_MODES = {b"": False, b"mode=incremental": False, b"mode=full": True}


def hot_route(method: str, path: str) -> str | None:
    """The route template when this request is a heartbeat or target-state poll."""
    if not (
        len(path) > len(_AGENTS) + _UUID_LENGTH
        and path.startswith(_AGENTS)
        and path[len(_AGENTS) + _UUID_LENGTH] == "/"
    ):
        return None
    tail = path[len(_AGENTS) + _UUID_LENGTH :]
    if tail == _HEARTBEAT and method == "POST":
        return HEARTBEAT_ROUTE
    if tail == _TARGET_STATE and method == "GET":
        return TARGET_STATE_ROUTE
    return None


# Status, headers (without the request id) and body of an answer.
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class _Declined(Exception):
    """The full stack must answer this request (with the body read so far)."""

    def __init__(self, body: bytes | None = None) -> None:
        self.body = body


class HotPath:
    """ASGI middleware answering heartbeats and target-state polls directly."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = hot_route(scope["method"], scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        await self._answer(scope, receive, send, route)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, route: str) -> None:
        start = time.perf_counter()
        scope["brokkr.route"] = route  # span names and metrics by route template, as routed
        request_id = request_id_for(scope)
        status = 500
        started = False

        async def tagged(message: Message) -> None:  # for the error answers
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message = tagged_headers(message, request_id)
            await send(message)

        try:
            if route == HEARTBEAT_ROUTE:
                status, headers, body = await self._heartbeat(scope, receive)
            else:
                status, headers, body = await self._target_state(scope)
            headers.append((_HEADER, request_id.encode()))
            started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except _Declined as declined:
            await self.app(scope, _replay(declined.body, receive), send)
            return
        except ApiError as error:  # 408/413 while reading the body, 503
            scope[SCOPE_KEY] = request_id
            await error_response(error)(scope, receive, tagged)
        except Exception:
            scope[SCOPE_KEY] = request_id
            scope["brokkr.route"] = route
            await answer_unexpected(scope, send, request_id, started)
        self.metrics.finished(
            scope["method"],
            route,
            status,
            time.perf_counter() - start,
            request_id,
            scope.get(LOGGED_KEY, False),
        )

    async def _heartbeat(self, scope: Scope, receive: Receive) -> _Answer:
        agent, digest, headers = _agent_and_digest(scope)
        if scope["query_string"]:
            raise _Declined
        declared = headers.get(b"content-type")
        if declared is not None and declared.strip() and not _plain_json(declared):
            raise _Declined  # the full stack answers 415 or 400 as it would
        state = scope["app"].state
        raw = await _read_body(receive, headers, state.body_limits)
        report = _report(raw)
        accepted = await state.heartbeats.record(
            agent, digest, report.k8s_reachable, report.k8s_api_latency_ms
        )
        if not accepted:
            raise _Declined(raw)
        return 204, [], b""

    async def _target_state(self, scope: Scope) -> _Answer:
        full = _MODES.get(scope["query_string"])
        if full is None:
            raise _Declined
        agent, digest, _ = _agent_and_digest(scope)
        body = await scope["app"].state.target_states.own(agent, digest, full)
        if body is None:
            raise _Declined
        encoded = body.encode()
        headers = [
            (b"content-length", str(len(encoded)).encode()),
            (b"content-type", b"application/json"),
        ]
        return 200, headers, encoded


# Validated heartbeat bodies by their bytes. Agents send a handful of distinct
# bodies (reachable or not, a latency in milliseconds), so decoding and validating
# each one again is wasted work; the check is a pure function of the bytes. Only
# short bodies are kept, and at most _REPORTS_KEPT of them (cleared when full), so
# a client cannot grow it: at most 256 KiB.
_REPORTS: dict[bytes, HeartbeatReport] = {}
_REPORTS_KEPT = 1024
_REPORT_BYTES_KEPT = 256


def _report(raw: bytes) -> HeartbeatReport:
    """The validated heartbeat report in `raw`; _Declined (with the body) when invalid."""
    report = _REPORTS.get(raw)
    if report is not None:
        return report
    try:
        report = validate(HeartbeatReport, decode_json(raw, allow_empty=True) or {})
    except ApiError:
        raise _Declined(raw) from None
    if len(raw) <= _REPORT_BYTES_KEPT:
        if len(_REPORTS) >= _REPORTS_KEPT:
            _REPORTS.clear()
        _REPORTS[raw] = report
    return report


def _plain_json(declared: bytes) -> bool:
    """A JSON media type in UTF-8 (any other charset, or no media type, is declined)."""
    parsed = media_type(declared.decode("latin-1"))
    charset = parsed.params.get("charset", "utf-8") if parsed else ""
    return parsed is not None and is_json(parsed) and charset.lower() in UTF8_CHARSETS


def _agent_and_digest(scope: Scope) -> tuple[UUID, str, dict[bytes, bytes]]:
    """The agent id in the path and the hash of the agent PAK presented, or _Declined."""
    headers = dict(reversed(scope["headers"]))  # the first of repeated headers, as Starlette
    presented = pak_in_header(headers.get(b"authorization", b"").decode("latin-1"))
    if not pak.looks_like_pak(presented):
        raise _Declined
    raw_id = scope["path"][len(_AGENTS) : len(_AGENTS) + _UUID_LENGTH]
    try:
        agent = UUID(raw_id)
    except ValueError:
        raise _Declined from None
    return agent, pak.hash_pak(presented), headers


async def _read_body(receive: Receive, headers: dict[bytes, bytes], limits: BodyLimits) -> bytes:
    """The body under the JSON limit and read timeout, as `bodies.read_body` reads it."""
    declared = headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > limits.json_bytes:
        raise _Declined  # the full stack answers 413 before reading
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(limits.read_timeout):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise ClientDisconnect  # as Request.stream() raises it
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limits.json_bytes:
                    raise too_large(limits.json_bytes, limits.json_setting)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise body_timeout(limits.read_timeout) from None
    return b"".join(chunks)


def _replay(body: bytes | None, receive: Receive) -> Receive:
    """`receive` for the full stack: the body already read first, then the client's."""
    if body is None:
        return receive
    pending: list[Any] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        if pending:
            message: Message = pending.pop()
            return message
        return await receive()

    return replayed
