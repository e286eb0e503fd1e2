"""POST /auth/pak: tell a client which role its PAK has."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from brokkr.broker.context import authed
from brokkr.broker.http import api_route, json_response


async def verify_pak(request: Request) -> Response:
    async with authed(request) as (_, who):
        return json_response(
            {
                "admin": who.admin,
                "agent": str(who.agent) if who.agent else None,
                "generator": str(who.generator) if who.generator else None,
                "readonly": False,
            }
        )


def routes() -> list[Route]:
    return [api_route("/auth/pak", verify_pak, ["POST"])]
