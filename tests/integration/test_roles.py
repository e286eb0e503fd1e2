"""The role matrix: which PAK may call which endpoint (403 for the others)."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.broker import in_process
from tests.integration.test_core_flow import CONFIGMAP, make_agent, make_generator, make_stack

pytestmark = pytest.mark.postgres

ROLES = ("admin", "agent", "other_agent", "generator", "other_generator")


@pytest.fixture(scope="module")
def world(postgres_server):
    """One database shared by the matrix: generator G owns stack S, targeted at agent A."""
    name = "roles_matrix"
    postgres_server.psql(f"CREATE DATABASE {name} TEMPLATE brokkr_template")
    with in_process(postgres_server.dsn(name)) as api:
        g, g_pak = make_generator(api, "g")
        _, h_pak = make_generator(api, "h")
        a, a_pak = make_agent(api, "a", generators=[g])
        _, b_pak = make_agent(api, "b")
        s = make_stack(api, g, g_pak)
        d = api.post(
            f"/stacks/{s}/deployment-objects", json={"yaml_content": CONFIGMAP}, pak=g_pak
        ).json()["id"]
        api.post(f"/agents/{a}/targets", json={"agent_id": a, "stack_id": s}, pak=g_pak)
        e = api.post(
            f"/agents/{a}/events",
            pak=a_pak,
            json={"agent_id": a, "deployment_object_id": d, "event_type": "DEPLOY", "status": "OK"},
        ).json()["id"]
        paks = {
            "admin": "admin",
            "agent": a_pak,
            "other_agent": b_pak,
            "generator": g_pak,
            "other_generator": h_pak,
        }
        yield api, paks, {"g": g, "a": a, "s": s, "d": d, "e": e, "missing": uuid.uuid4()}
    postgres_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# (method, path template, allowed roles); apart from targets, the role is checked
# before the body is validated, so an empty body suffices for the 403 check.
MATRIX = [
    ("GET", "/generators", {"admin"}),
    ("POST", "/generators", {"admin"}),
    ("GET", "/generators/{g}", {"admin", "generator"}),
    ("POST", "/generators/{g}/register", {"admin", "agent", "other_agent"}),
    ("GET", "/agents", {"admin", "generator", "other_generator"}),
    ("POST", "/agents", {"admin"}),
    ("GET", "/agents/{a}", {"admin", "agent"}),
    ("PUT", "/agents/{a}", {"admin", "agent"}),
    ("POST", "/agents/{a}/heartbeat", {"agent"}),
    ("GET", "/agents/{a}/targets", {"admin", "agent"}),
    ("POST", "/agents/{a}/targets", {"admin", "generator"}),
    ("GET", "/agents/{a}/labels", {"admin", "agent"}),
    ("POST", "/agents/{a}/labels", {"admin"}),
    ("GET", "/agents/{a}/annotations", {"admin", "agent"}),
    ("POST", "/agents/{a}/annotations", {"admin"}),
    ("GET", "/agents/{a}/stacks", {"admin", "agent"}),
    ("GET", "/agents/{a}/target-state", {"admin", "agent"}),
    ("GET", "/agents/{a}/events", {"admin", "agent"}),
    ("POST", "/agents/{a}/events", {"admin", "agent"}),
    ("GET", "/agent-events", {"admin"}),
    ("GET", "/agent-events/{e}", {"admin"}),
    ("GET", "/stacks", {"admin", "generator", "other_generator"}),
    ("POST", "/stacks", {"admin", "generator", "other_generator"}),
    ("GET", "/stacks/{s}", {"admin", "generator"}),
    ("PUT", "/stacks/{s}", {"admin", "generator"}),
    ("GET", "/stacks/{s}/labels", {"admin", "generator", "agent", "other_agent"}),
    ("POST", "/stacks/{s}/labels", {"admin", "generator"}),
    ("GET", "/stacks/{s}/annotations", {"admin", "generator", "agent", "other_agent"}),
    ("POST", "/stacks/{s}/annotations", {"admin", "generator"}),
    ("GET", "/stacks/{s}/deployment-objects", {"admin", "generator"}),
    ("POST", "/stacks/{s}/deployment-objects", {"admin", "generator"}),
    ("GET", "/deployment-objects/{d}", {"admin", "generator", "agent"}),
    # Deletes and rotation aim at ids or names that do not exist, so the shared
    # world stays intact: allowed roles get 404, the others still 403.
    ("DELETE", "/generators/{missing}", {"admin"}),
    ("DELETE", "/agents/{missing}", {"admin"}),
    ("POST", "/agents/{missing}/rotate-pak", {"admin"}),
    ("DELETE", "/agents/{a}/labels/nope", {"admin"}),
    ("DELETE", "/agents/{a}/annotations/nope", {"admin"}),
    ("DELETE", "/agents/{a}/targets/{missing}", {"admin", "generator", "other_generator"}),
    ("DELETE", "/stacks/{missing}", {"admin", "generator", "other_generator"}),
    ("DELETE", "/stacks/{s}/labels/nope", {"admin", "generator"}),
    ("DELETE", "/stacks/{s}/annotations/nope", {"admin", "generator"}),
]


@pytest.mark.parametrize(
    ("method", "template", "allowed"), MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX]
)
def test_role_matrix(world, method: str, template: str, allowed: set[str]):
    api, paks, ids = world
    path = template.format(**ids)
    # Ownership of a target is decided by the stack named in the body.
    body = {"agent_id": ids["a"], "stack_id": ids["s"]} if template.endswith("targets") else {}
    for role in ROLES:
        response = api.call(method, path, pak=paks[role], json=body)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.text)
            if method == "DELETE" or "{missing}" in template:
                assert response.status_code == 404, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)
            assert response.json()["code"]


def test_auth_pak_reports_each_role(world):
    api, paks, ids = world
    assert api.post("/auth/pak", pak=paks["admin"]).json()["admin"] is True
    assert api.post("/auth/pak", pak=paks["agent"]).json()["agent"] == ids["a"]
    assert api.post("/auth/pak", pak=paks["generator"]).json()["generator"] == ids["g"]
    assert api.post("/auth/pak", pak=None).status_code == 401
