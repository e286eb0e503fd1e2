"""The whole agent-facing flow against a real PostgreSQL, end to end."""

from __future__ import annotations

import hashlib

import pytest

from tests.integration.broker import Api, in_process

pytestmark = pytest.mark.postgres

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo
data:
  key: "{value}"
"""


@pytest.fixture
def api(database_url: str):
    with in_process(database_url) as client:
        yield client


def make_generator(api: Api, name: str = "ci") -> tuple[str, str]:
    response = api.post("/generators", json={"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["generator"]["id"], body["pak"]


def make_agent(api: Api, name: str = "a1", generators: list[str] | None = None) -> tuple[str, str]:
    response = api.post(
        "/agents",
        json={"name": name, "cluster_name": "c1", "generator_ids": generators or []},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["agent"]["id"], body["initial_pak"]


def make_stack(api: Api, generator_id: str, pak: str, name: str = "s1") -> str:
    response = api.post("/stacks", json={"name": name, "generator_id": generator_id}, pak=pak)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_full_flow(api: Api):
    generator_id, generator_pak = make_generator(api)
    agent_id, agent_pak = make_agent(api)

    who = api.post("/auth/pak", pak=agent_pak).json()
    assert who == {"admin": False, "agent": agent_id, "generator": None, "readonly": False}

    registration = api.post(f"/generators/{generator_id}/register", json={}, pak=agent_pak)
    assert registration.status_code == 201
    assert registration.json()["agent_id"] == agent_id

    stack_id = make_stack(api, generator_id, generator_pak)
    yaml_v1 = CONFIGMAP.format(value="1")
    created = api.post(
        f"/stacks/{stack_id}/deployment-objects",
        json={"yaml_content": yaml_v1},
        pak=generator_pak,
    )
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["yaml_checksum"] == hashlib.sha256(yaml_v1.encode()).hexdigest()
    assert first["is_deletion_marker"] is False

    target = api.post(
        f"/agents/{agent_id}/targets",
        json={"agent_id": agent_id, "stack_id": stack_id},
        pak=generator_pak,
    )
    assert target.status_code == 201, target.text

    state = api.get(f"/agents/{agent_id}/target-state", pak=agent_pak)
    assert state.status_code == 200
    assert [d["id"] for d in state.json()] == [first["id"]]
    # PostgreSQL renders the target state; it must match the Python rendering exactly.
    assert state.json()[0] == api.get(f"/deployment-objects/{first['id']}").json() == first

    assert api.post(f"/agents/{agent_id}/heartbeat", pak=agent_pak).status_code == 204
    beat = api.post(
        f"/agents/{agent_id}/heartbeat",
        json={"k8s_reachable": True, "k8s_api_latency_ms": 12},
        pak=agent_pak,
    )
    assert beat.status_code == 204
    agent = api.get(f"/agents/{agent_id}", pak=agent_pak).json()
    assert agent["k8s_reachable"] is True and agent["k8s_api_latency_ms"] == 12
    assert agent["last_heartbeat"] is not None

    event = api.post(
        f"/agents/{agent_id}/events",
        json={
            "agent_id": agent_id,
            "deployment_object_id": first["id"],
            "event_type": "DEPLOY",
            "status": "SUCCESS",
        },
        pak=agent_pak,
    )
    assert event.status_code == 201, event.text

    # Incremental omits what the agent reported; full keeps it.
    assert api.get(f"/agents/{agent_id}/target-state", pak=agent_pak).json() == []
    full = api.get(f"/agents/{agent_id}/target-state?mode=full", pak=agent_pak).json()
    assert [d["id"] for d in full] == [first["id"]]

    # A raw YAML body becomes the stack's newest desired state.
    raw = api.post(
        f"/stacks/{stack_id}/deployment-objects",
        content=CONFIGMAP.format(value="2"),
        headers={"Content-Type": "application/yaml"},
        pak=generator_pak,
    )
    assert raw.status_code == 201, raw.text
    second = raw.json()
    assert second["sequence_id"] > first["sequence_id"]
    state = api.get(f"/agents/{agent_id}/target-state", pak=agent_pak).json()
    assert [d["id"] for d in state] == [second["id"]]

    # Deleting the stack leaves a deletion marker as its last deployment object.
    assert api.delete(f"/stacks/{stack_id}", pak=generator_pak).status_code == 204
    objects = api.get(f"/deployment-objects/{second['id']}").json()
    assert objects["id"] == second["id"]
    assert api.get(f"/agents/{agent_id}/target-state?mode=full", pak=agent_pak).json() == []


def test_rotate_agent_pak_revokes_the_old_one(api: Api):
    agent_id, old = make_agent(api)
    rotated = api.post(f"/agents/{agent_id}/rotate-pak", pak=old)
    assert rotated.status_code == 200
    new = rotated.json()["pak"]
    assert rotated.json()["agent"]["id"] == agent_id
    assert api.get(f"/agents/{agent_id}", pak=old).status_code == 401
    assert api.get(f"/agents/{agent_id}", pak=new).status_code == 200
