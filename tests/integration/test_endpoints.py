"""The remaining endpoints: listings, updates, deletes, health trio, metrics, OpenAPI."""

from __future__ import annotations

import pytest

from tests.integration.broker import Api, in_process
from tests.integration.test_core_flow import CONFIGMAP, make_agent, make_generator, make_stack

pytestmark = pytest.mark.postgres


@pytest.fixture
def api(database_url: str):
    with in_process(database_url) as client:
        yield client


def test_agent_lifecycle_search_status_and_delete(api: Api):
    generator, generator_pak = make_generator(api)
    agent_id, agent_pak = make_agent(api, "edge-1", generators=[generator])
    other_id, _ = make_agent(api, "edge-2")
    assert api.get("/agents").json()[0]["status"] == "INACTIVE"
    assert [a["id"] for a in api.get("/agents", pak=generator_pak).json()] == [agent_id]

    found = api.get("/agents/?name=edge-1&cluster_name=c1", pak=agent_pak)
    assert found.status_code == 200 and found.json()["id"] == agent_id
    assert api.get("/agents/?name=edge-2&cluster_name=c1", pak=agent_pak).status_code == 403

    updated = api.put(f"/agents/{agent_id}", json={"status": "ACTIVE"}, pak=agent_pak)
    assert updated.status_code == 200 and updated.json()["status"] == "ACTIVE"
    assert updated.json()["name"] == "edge-1"
    renamed = api.put(f"/agents/{agent_id}", json={"name": "edge-9"}).json()
    assert renamed["name"] == "edge-9" and renamed["status"] == "ACTIVE"
    assert "pak_hash" not in renamed

    assert api.delete(f"/agents/{other_id}").status_code == 204
    assert api.get(f"/agents/{other_id}").status_code == 404
    assert [a["id"] for a in api.get("/agents").json()] == [agent_id]
    assert api.delete(f"/agents/{agent_id}").status_code == 204
    # A deleted agent's PAK stops working.
    assert api.get(f"/agents/{agent_id}", pak=agent_pak).status_code == 401


def test_generator_listing_and_soft_delete(api: Api):
    generator, generator_pak = make_generator(api, "g1")
    make_generator(api, "g2")
    # admin-generator is the system generator every broker creates (v1 clients use it).
    assert [g["name"] for g in api.get("/generators").json()] == ["admin-generator", "g1", "g2"]
    mine = api.get(f"/generators/{generator}", pak=generator_pak).json()
    assert mine["is_active"] is True and mine["is_system"] is False
    assert api.delete(f"/generators/{generator}", pak=generator_pak).status_code == 204
    assert api.get(f"/generators/{generator}").status_code == 404
    assert api.post("/auth/pak", pak=generator_pak).status_code == 401
    # The name is free again after the soft delete.
    assert api.post("/generators", json={"name": "g1"}).status_code == 201


def test_stack_update_labels_annotations_and_listing(api: Api):
    generator, generator_pak = make_generator(api, "g1")
    other, other_pak = make_generator(api, "g2")
    stack = make_stack(api, generator, generator_pak, "web")
    make_stack(api, other, other_pak, "db")
    assert [s["name"] for s in api.get("/stacks", pak=generator_pak).json()] == ["web"]
    assert [s["name"] for s in api.get("/stacks").json()] == ["web", "db"]
    assert [s["name"] for s in api.get(f"/stacks?pak_id={other}").json()] == ["db"]

    renamed = api.put(
        f"/stacks/{stack}", json={"name": "web-2", "generator_id": generator}, pak=generator_pak
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "web-2"
    moved = api.put(f"/stacks/{stack}", json={"generator_id": other})
    assert moved.status_code == 400

    label = api.post(f"/stacks/{stack}/labels", json="prod", pak=generator_pak)
    assert label.status_code == 201 and label.json()["label"] == "prod"
    assert api.post(f"/stacks/{stack}/labels", json="prod", pak=generator_pak).status_code == 409
    assert api.post(f"/stacks/{stack}/labels", json="has space").status_code == 400
    assert [x["label"] for x in api.get(f"/stacks/{stack}/labels").json()] == ["prod"]
    assert api.delete(f"/stacks/{stack}/labels/prod", pak=generator_pak).status_code == 204
    assert api.delete(f"/stacks/{stack}/labels/prod").status_code == 404

    note = {"stack_id": stack, "key": "tier", "value": "1"}
    assert api.post(f"/stacks/{stack}/annotations", json=note).status_code == 201
    assert api.post(f"/stacks/{stack}/annotations", json=note).status_code == 409
    assert api.get(f"/stacks/{stack}/annotations").json()[0]["value"] == "1"
    assert api.delete(f"/stacks/{stack}/annotations/tier").status_code == 204

    first = api.post(
        f"/stacks/{stack}/deployment-objects", json={"yaml_content": CONFIGMAP}, pak=generator_pak
    ).json()
    listed = api.get(f"/stacks/{stack}/deployment-objects", pak=generator_pak).json()
    assert [d["id"] for d in listed] == [first["id"]]
    assert api.get(f"/deployment-objects/{first['id']}", pak=other_pak).status_code == 403

    assert api.delete(f"/stacks/{stack}", pak=generator_pak).status_code == 204
    assert api.get(f"/stacks/{stack}").status_code == 404
    assert (
        api.post(
            f"/stacks/{stack}/deployment-objects",
            json={"yaml_content": CONFIGMAP},
            pak=generator_pak,
        ).status_code
        == 404
    )


def test_agent_labels_annotations_and_events_listing(api: Api):
    generator, generator_pak = make_generator(api)
    agent_id, agent_pak = make_agent(api, generators=[generator])
    stack = make_stack(api, generator, generator_pak)
    assert (
        api.post(
            f"/agents/{agent_id}/labels", json={"agent_id": agent_id, "label": "x"}
        ).status_code
        == 201
    )
    assert (
        api.post(
            f"/agents/{agent_id}/labels", json={"agent_id": agent_id, "label": "x"}
        ).status_code
        == 409
    )
    mismatch = api.post(f"/agents/{agent_id}/labels", json={"agent_id": generator, "label": "y"})
    assert mismatch.status_code == 400 and mismatch.json()["code"] == "agent_id_mismatch"
    assert [x["label"] for x in api.get(f"/agents/{agent_id}/labels", pak=agent_pak).json()] == [
        "x"
    ]
    assert api.delete(f"/agents/{agent_id}/labels/nope").status_code == 404
    assert (
        api.post(
            f"/agents/{agent_id}/annotations", json={"agent_id": agent_id, "key": "k", "value": "v"}
        ).status_code
        == 201
    )
    assert api.get(f"/agents/{agent_id}/annotations", pak=agent_pak).json()[0]["key"] == "k"
    assert api.delete(f"/agents/{agent_id}/annotations/nope").status_code == 404

    object_id = api.post(
        f"/stacks/{stack}/deployment-objects", json={"yaml_content": CONFIGMAP}, pak=generator_pak
    ).json()["id"]
    event = api.post(
        f"/agents/{agent_id}/events",
        pak=agent_pak,
        json={
            "agent_id": agent_id,
            "deployment_object_id": object_id,
            "event_type": "DEPLOY",
            "status": "FAILURE",
            "message": "boom",
        },
    ).json()
    assert api.get(f"/agents/{agent_id}/events", pak=agent_pak).json()[0]["id"] == event["id"]
    assert api.get(f"/agent-events/{event['id']}").json()["message"] == "boom"
    assert [e["id"] for e in api.get(f"/agent-events?pak_id={generator}").json()] == [event["id"]]
    other, _ = make_generator(api, "other")
    assert api.get(f"/agent-events?pak_id={other}").json() == []


def test_health_trio_metrics_and_openapi(api: Api):
    client = api.client
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["database"]["status"] == "ok"
    assert health["schema_version"] == 1 and health["warnings"] == []
    assert set(health) >= {"version", "uptime_seconds", "timestamp", "database", "draining"}

    make_agent(api)
    api.get("/agents")
    text = client.get("/metrics").text
    assert 'brokkr_agents{status="INACTIVE"} 1.0' in text
    assert 'brokkr_http_requests_total{method="GET",route="/api/v1/agents",status="200"}' in text
    assert "brokkr_http_request_duration_seconds_bucket" in text
    assert "brokkr_agents_without_heartbeat 1.0" in text
    assert "brokkr_stacks 0.0" in text
    # Bounded labels: every known status is present, unknown methods are "other".
    assert 'brokkr_agents{status="ACTIVE"} 0.0' in text and 'brokkr_agents{status="other"}' in text
    assert 'brokkr_agents_heartbeat_within_seconds{le="+Inf"} 0.0' in text
    assert "brokkr_database_up 1.0" in text and "brokkr_ready 1.0" in text
    assert 'brokkr_db_pool_connections{state="used"}' in text
    assert "brokkr_db_pool_requests_total" in text
    client.request("BREW", "/api/v1/agents")
    text = client.get("/metrics").text
    assert 'method="other",route="unmatched"' in text and "BREW" not in text

    document = client.get("/docs/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/agents/{id}/target-state" in document["paths"]
    routes = {(r.path) for r in client.app.routes}  # type: ignore[attr-defined]
    assert "/healthz" in routes


def test_missing_rows_answer_404_naming_the_kind(api: Api):
    missing = "00000000-0000-0000-0000-000000000001"
    for path, kind in [
        ("/agents/", "agent"),
        ("/generators/", "generator"),
        ("/stacks/", "stack"),
        ("/deployment-objects/", "deployment_object"),
        ("/agent-events/", "agent_event"),
    ]:
        answer = api.get(path + missing)
        message = f"{kind.replace('_', ' ')} {missing} not found"
        assert (answer.status_code, answer.text) == (
            404,
            f'{{"code":"{kind}_not_found","message":"{message}"}}',
        ), path
