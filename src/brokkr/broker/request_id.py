"""Request ids, and the one place an unexpected error becomes a logged 500.

Every answer carries an `X-Request-ID` header: the client's own when it sent a
well-formed one, otherwise a fresh one. An exception no handler turned into an
API error is logged once, with its traceback and that id, and answered with
500 `internal_error` whose `details.request_id` is the same id, so a report
from a client leads straight to the log line. The exception is not re-raised,
so neither Starlette nor uvicorn log it a second time.
"""

from __future__ import annotations

import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brokkr.broker.http import dumps

log = logging.getLogger(__name__)

HEADER = "x-request-id"
SCOPE_KEY = "brokkr.request_id"
LOGGED_KEY = "brokkr.error_logged"
_HEADER_BYTES = HEADER.encode()
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _HEADER_BYTES:
            text = value.decode("latin-1")
            return text if _ACCEPTED.match(text) else None
    return None


def request_id_for(scope: Scope) -> str:
    """The client's well-formed id, else a fresh one."""
    return _incoming(scope) or uuid.uuid4().hex


def tagged_headers(message: Message, request_id: str) -> Message:
    """A response start message with the request id header (replacing any other)."""
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_BYTES]
    headers.append((_HEADER_BYTES, request_id.encode()))
    return {**message, "headers": headers}


async def answer_unexpected(scope: Scope, send: Send, request_id: str, started: bool) -> None:
    """Log the exception being handled once, with its id, and answer 500 when still possible."""
    scope[LOGGED_KEY] = True
    log.exception(
        "unhandled error on %s %s",
        scope.get("method"),
        scope.get("brokkr.route") or scope.get("path"),
        extra={"request_id": request_id},
    )
    if started:  # too late for an error body; the client sees a cut answer
        return
    body = dumps(
        {
            "code": "internal_error",
            "message": f"internal server error (request id {request_id})",
            "details": {"request_id": request_id},
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (_HEADER_BYTES, request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Tags each HTTP request with an id and answers unexpected errors with 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        scope[SCOPE_KEY] = request_id
        started = False

        async def tagged(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = tagged_headers(message, request_id)
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        except Exception:
            await answer_unexpected(scope, send, request_id, started)
