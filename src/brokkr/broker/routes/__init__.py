"""The v1 API routes, one module per area; `api_routes()` collects them."""

from __future__ import annotations

from starlette.routing import Route

from brokkr.broker.routes import (
    agents,
    auth,
    deployment_objects,
    events,
    generators,
    stacks,
    targeting,
)


def api_routes() -> list[Route]:
    """Every v1 route, paths relative to /api/v1."""
    return [
        *auth.routes(),
        *generators.routes(),
        *agents.routes(),
        *targeting.routes(),
        *stacks.routes(),
        *deployment_objects.routes(),
        *events.routes(),
    ]
