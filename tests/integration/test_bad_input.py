"""Bad input gets the right status and an error body, and nothing is half-written."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from brokkr.broker import pak
from tests.integration.broker import Api, in_process
from tests.integration.test_core_flow import make_agent, make_generator, make_stack

pytestmark = pytest.mark.postgres


@pytest.fixture
def api(database_url: str):
    with in_process(database_url, max_json_body_bytes=4096) as client:
        yield client


def error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"code", "message"} and body["message"]
    if code:
        assert body["code"] == code
    return body


def count(database_url: str, table: str) -> int:
    """Rows of `table`; for generators, those a client made (not admin-generator)."""
    where = " WHERE NOT is_system" if table == "generators" else ""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}{where}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def test_malformed_json_wrong_types_and_missing_fields(api: Api, database_url: str):
    raw = api.post(
        "/generators", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    error(raw, 400, "invalid_json")
    error(api.post("/generators", content=b""), 400, "invalid_json")
    wrong = error(api.post("/generators", json={"name": 42}), 400, "invalid_request")
    assert wrong["details"]["errors"][0]["field"] == "name"
    missing = error(api.post("/agents", json={"name": "a"}), 400, "invalid_request")
    assert "cluster_name" in missing["message"]
    error(api.post("/agents", json=["a", "b"]), 400, "invalid_request")
    error(api.put(f"/agents/{uuid.uuid4()}", json="x"), 400)
    agent_id, agent_pak = make_agent(api)
    error(api.put(f"/agents/{agent_id}", json={"status": 5}), 400, "invalid_request")
    error(
        api.post(f"/agents/{agent_id}/heartbeat", json={"k8s_reachable": "yes"}, pak=agent_pak),
        400,
    )
    assert count(database_url, "generators") == 0


def test_invalid_or_empty_yaml_writes_nothing(api: Api, database_url: str):
    generator, generator_pak = make_generator(api)
    stack = make_stack(api, generator, generator_pak)
    path = f"/stacks/{stack}/deployment-objects"
    error(
        api.post(path, json={"yaml_content": "a: [unclosed"}, pak=generator_pak),
        400,
        "invalid_yaml",
    )
    error(api.post(path, json={"yaml_content": ""}, pak=generator_pak), 400, "empty_yaml")
    error(api.post(path, json={"yaml_content": "---\n---\n"}, pak=generator_pak), 400, "empty_yaml")
    error(
        api.post(path, json={"yaml_content": "- just\n- a list\n"}, pak=generator_pak),
        400,
        "invalid_yaml",
    )
    error(
        api.post(
            path, content="kind: [", headers={"Content-Type": "application/yaml"}, pak=generator_pak
        ),
        400,
        "invalid_yaml",
    )
    error(api.post(path, json={"yaml_content": 5}, pak=generator_pak), 400, "invalid_request")
    error(
        api.post(
            path, content="<xml/>", headers={"Content-Type": "application/xml"}, pak=generator_pak
        ),
        415,
    )
    assert count(database_url, "deployment_objects") == 0


def test_oversized_body_is_413(api: Api, database_url: str):
    big = {"name": "x" * 5000}  # over max_json_body_bytes=4096
    body = error(api.post("/generators", json=big), 413, "payload_too_large")
    assert body["details"]["max_bytes"] == 4096

    def chunks():
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    error(api.post("/generators", content=chunks()), 413, "payload_too_large")
    assert count(database_url, "generators") == 0


def test_unknown_ids_and_bad_uuids(api: Api):
    missing = uuid.uuid4()
    for path in (
        f"/agents/{missing}",
        f"/generators/{missing}",
        f"/stacks/{missing}",
        f"/deployment-objects/{missing}",
        f"/agent-events/{missing}",
    ):
        error(api.get(path), 404)
    error(api.delete(f"/agents/{missing}"), 404, "agent_not_found")
    error(api.get("/agents/not-a-uuid"), 400, "invalid_id")
    error(api.get("/no/such/endpoint"), 404, "not_found")
    error(api.get("/agents/?name=x&cluster_name=y"), 404, "agent_not_found")
    error(api.get("/agents/?name=x"), 400, "invalid_query")
    error(
        api.post(
            "/agents", json={"name": "a", "cluster_name": "c", "generator_ids": [str(missing)]}
        ),
        400,
        "invalid_generator_id",
    )
    agent_id, agent_pak = make_agent(api)
    error(
        api.post(
            f"/agents/{agent_id}/events",
            pak=agent_pak,
            json={
                "agent_id": agent_id,
                "deployment_object_id": str(missing),
                "event_type": "DEPLOY",
                "status": "SUCCESS",
            },
        ),
        404,
        "deployment_object_not_found",
    )
    error(api.post(f"/generators/{missing}/register", json={}, pak=agent_pak), 404)
    error(
        api.post(
            f"/agents/{agent_id}/targets", json={"agent_id": agent_id, "stack_id": str(missing)}
        ),
        404,
        "stack_not_found",
    )


def test_duplicate_names_are_409_and_the_first_stays(api: Api, database_url: str):
    make_generator(api, "dup")
    error(api.post("/generators", json={"name": "dup"}), 409, "generator_name_taken")
    make_agent(api, "a")
    error(api.post("/agents", json={"name": "a", "cluster_name": "c1"}), 409, "agent_name_taken")
    generator, generator_pak = make_generator(api, "g")
    make_stack(api, generator, generator_pak, "s")
    error(api.post("/stacks", json={"name": "s", "generator_id": generator}), 409)
    assert count(database_url, "generators") == 2
    assert count(database_url, "agents") == 1
    assert count(database_url, "stacks") == 1


def test_agent_creation_is_all_or_nothing(api: Api, database_url: str):
    generator, _ = make_generator(api)
    error(
        api.post(
            "/agents",
            json={
                "name": "a",
                "cluster_name": "c",
                "generator_ids": [generator, str(uuid.uuid4())],
            },
        ),
        400,
    )
    assert count(database_url, "agents") == 0
    assert count(database_url, "agent_generator_registrations") == 0


def test_missing_malformed_and_unknown_paks_are_401(api: Api):
    error(api.get("/agents", pak=None), 401, "unauthorized")
    error(api.get("/agents", pak="not-a-pak"), 401, "unauthorized")
    error(api.get("/agents", pak=pak.generate().pak), 401, "unauthorized")
    error(api.get("/agents", pak=pak.PUBLIC_DEFAULT_PAK), 401, "unauthorized")
    raw = api.client.get("/api/v1/agents", headers={"Authorization": api.admin})
    assert raw.status_code == 200
