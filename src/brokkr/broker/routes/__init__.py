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

# The agents' polling routes, matched first: every request walks the list in order
# until a path matches, and these two are nearly all of the traffic.
HOT_PATHS = ("/agents/{id}/heartbeat", "/agents/{id}/target-state")


def api_routes() -> list[Route]:
    """Every v1 route, paths relative to /api/v1 (no two paths overlap, so order
    decides only how soon a route is found)."""
    routes = [
        *auth.routes(),
        *generators.routes(),
        *agents.routes(),
        *targeting.routes(),
        *stacks.routes(),
        *deployment_objects.routes(),
        *events.routes(),
    ]
    return sorted(routes, key=lambda route: route.path not in HOT_PATHS)
