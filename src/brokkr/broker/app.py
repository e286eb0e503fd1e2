"""The ASGI application: routes, error bodies, metrics, health and the database lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from brokkr.broker.bodies import BodyLimits
from brokkr.broker.db.pool import make_pool
from brokkr.broker.db.probe import ProbeConnection
from brokkr.broker.errors import ApiError
from brokkr.broker.health import HealthState, health, healthz, readyz
from brokkr.broker.heartbeats import HeartbeatWriter
from brokkr.broker.hotpath import HotPath
from brokkr.broker.http import API_PREFIX, api_route, error_response, json_response
from brokkr.broker.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from brokkr.broker.openapi import openapi_endpoint
from brokkr.broker.request_id import RequestIdMiddleware
from brokkr.broker.routes import api_routes
from brokkr.broker.settings import Settings
from brokkr.broker.targetstate import TargetStateReader
from brokkr.broker.yaml_worker import YamlWorkers

log = logging.getLogger(__name__)


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
        raise exc
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException
        raise exc
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = {
        404: f"no such endpoint: {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return json_response(
        {"code": codes.get(exc.status_code, "http_error"), "message": message}, exc.status_code
    )


def create_app(settings: Settings, warnings: list[str] | None = None) -> Starlette:
    """Build the broker app; the database must already be migrated and bootstrapped."""
    pool = make_pool(settings.database)
    metrics = Metrics()
    yaml_workers = YamlWorkers(settings.broker.yaml_workers, settings.broker.yaml_cpu_seconds)
    readiness_timeout = settings.broker.readiness_timeout
    health_state = HealthState(
        ProbeConnection(settings.database, readiness_timeout),
        pool,
        readiness_timeout,
        settings.broker.readiness_cache_seconds,
    )
    health_state.warnings.extend(warnings or [])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=False)
        log.info("database pool opened for %s", settings.database.describe())
        try:
            yield
        finally:
            yaml_workers.close()
            await health_state.close()
            await pool.close()
            log.info("database pool and readiness connection closed")

    plain = [
        api_route("/healthz", healthz, ["GET"], prefix=""),
        api_route("/readyz", readyz, ["GET"], prefix=""),
        api_route("/health", health, ["GET"], prefix=""),
        api_route("/metrics", metrics_endpoint, ["GET"], prefix=""),
        api_route("/docs/openapi.json", openapi_endpoint, ["GET"], prefix=""),
    ]
    app = Starlette(
        # the API first: health and metrics are a few requests a minute
        routes=[Mount(API_PREFIX, routes=api_routes()), *plain],
        # The polling routes first (they do request ids and metrics themselves);
        # Metrics outside RequestId, so it counts the 500s that RequestIdMiddleware answers.
        middleware=[
            Middleware(HotPath, metrics=metrics),
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(RequestIdMiddleware),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.pool = pool
    app.state.heartbeats = HeartbeatWriter(pool)
    app.state.target_states = TargetStateReader(pool)
    app.state.metrics = metrics
    app.state.body_limits = BodyLimits(
        json_bytes=settings.broker.max_json_body_bytes,
        yaml_bytes=settings.broker.max_body_bytes,
        read_timeout=settings.broker.body_read_timeout,
    )
    app.state.yaml_workers = yaml_workers
    app.state.health = health_state
    return app
