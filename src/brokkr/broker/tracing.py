"""The broker's spans: one per HTTP request, one per database statement inside it.

Used only when tracing is on (`brokkr.common.telemetry.setup`): `server.serve` wraps
the app in `TracingApp` and `db.pool.make_pool` gives connections `TracedCursor`.
Off, neither is in the request path at all.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncCursor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brokkr.common import telemetry

# Headers that carry W3C trace context in; everything else is left unread.
_TRACE_HEADERS = (b"traceparent", b"tracestate", b"baggage")


class TracingApp:
    """ASGI wrapper: a server span per HTTP request, the caller's trace continued."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carried = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _TRACE_HEADERS
        }
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with telemetry.span(
            method, "server", attributes, parent=telemetry.extract(carried)
        ) as span:
            try:
                await self.app(scope, receive, record_status)
            finally:
                # The route template (set by api_route) keeps span names low-cardinality.
                route = scope.get("brokkr.route")
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

                    span.set_status(Status(StatusCode.ERROR))


class TracedCursor(AsyncCursor[Any]):
    """A cursor whose statements are client spans (db.system.name postgresql)."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        with telemetry.span(*_describe(query, self)):
            return await super().execute(query, params, **kwargs)

    async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        with telemetry.span(*_describe(query, self)):
            await super().executemany(query, params_seq, **kwargs)


def _describe(
    query: Any, cursor: AsyncCursor[Any]
) -> tuple[str, telemetry.SpanKind, dict[str, Any]]:
    """Span name (the statement's verb), kind and attributes; parameters are never recorded."""
    text = query if isinstance(query, str) else query.as_string(cursor.connection)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    verb = text.split(None, 1)[0].upper() if text.strip() else "SQL"
    return verb, "client", {"db.system.name": "postgresql", "db.query.text": text}
