"""Target-state rules: targets, labels and annotations, limited to registered generators."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.broker import Api, in_process
from tests.integration.test_core_flow import CONFIGMAP, make_agent, make_generator, make_stack

pytestmark = pytest.mark.postgres


@pytest.fixture
def api(database_url: str):
    with in_process(database_url) as client:
        yield client


def publish(api: Api, stack_id: str, pak: str, value: str = "1") -> str:
    response = api.post(
        f"/stacks/{stack_id}/deployment-objects",
        json={"yaml_content": CONFIGMAP.format(value=value)},
        pak=pak,
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def ids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()}


def test_labels_and_annotations_select_stacks_only_of_registered_generators(api: Api):
    mine, mine_pak = make_generator(api, "mine")
    other, other_pak = make_generator(api, "other")
    agent_id, agent_pak = make_agent(api, generators=[mine])

    labelled = make_stack(api, mine, mine_pak, "labelled")
    annotated = make_stack(api, mine, mine_pak, "annotated")
    wrong_value = make_stack(api, mine, mine_pak, "wrong-value")
    foreign = make_stack(api, other, other_pak, "foreign")
    objects = {
        s: publish(api, s, p)
        for s, p in [
            (labelled, mine_pak),
            (annotated, mine_pak),
            (wrong_value, mine_pak),
            (foreign, other_pak),
        ]
    }

    assert api.post(f"/stacks/{labelled}/labels", json="edge", pak=mine_pak).status_code == 201
    assert api.post(f"/stacks/{foreign}/labels", json="edge", pak=other_pak).status_code == 201
    for stack, value in [(annotated, "eu"), (wrong_value, "us")]:
        response = api.post(
            f"/stacks/{stack}/annotations",
            json={"stack_id": stack, "key": "example.com/region", "value": value},
            pak=mine_pak,
        )
        assert response.status_code == 201, response.text
    assert (
        api.post(
            f"/agents/{agent_id}/labels", json={"agent_id": agent_id, "label": "edge"}
        ).status_code
        == 201
    )
    assert (
        api.post(
            f"/agents/{agent_id}/annotations",
            json={"agent_id": agent_id, "key": "example.com/region", "value": "eu"},
        ).status_code
        == 201
    )

    expected = {objects[labelled], objects[annotated]}
    assert ids(api.get(f"/agents/{agent_id}/target-state", pak=agent_pak)) == expected
    assert ids(api.get(f"/agents/{agent_id}/stacks", pak=agent_pak)) == {labelled, annotated}

    # Registering with the other generator brings its labelled stack in.
    assert api.post(f"/generators/{other}/register", json={}, pak=agent_pak).status_code == 201
    assert objects[foreign] in ids(api.get(f"/agents/{agent_id}/target-state", pak=agent_pak))

    # Removing the label and the annotation takes those stacks out again.
    assert api.delete(f"/agents/{agent_id}/labels/edge").status_code == 204
    assert api.delete(f"/agents/{agent_id}/annotations/example.com/region").status_code == 204
    assert ids(api.get(f"/agents/{agent_id}/target-state", pak=agent_pak)) == set()


def test_explicit_target_requires_registration_and_ownership(api: Api):
    mine, mine_pak = make_generator(api, "mine")
    _, other_pak = make_generator(api, "other")
    agent_id, agent_pak = make_agent(api)
    stack = make_stack(api, mine, mine_pak)
    body = {"agent_id": agent_id, "stack_id": stack}

    unregistered = api.post(f"/agents/{agent_id}/targets", json=body, pak=mine_pak)
    assert unregistered.status_code == 403
    assert unregistered.json()["code"] == "agent_not_registered"

    assert api.post(f"/generators/{mine}/register", json={"agent_id": agent_id}).status_code == 201
    again = api.post(f"/generators/{mine}/register", json={}, pak=agent_pak)
    assert again.status_code == 409

    foreign = api.post(f"/agents/{agent_id}/targets", json=body, pak=other_pak)
    assert foreign.status_code == 403
    assert api.post(f"/agents/{agent_id}/targets", json=body, pak=agent_pak).status_code == 403

    assert api.post(f"/agents/{agent_id}/targets", json=body, pak=mine_pak).status_code == 201
    assert api.post(f"/agents/{agent_id}/targets", json=body, pak=mine_pak).status_code == 409
    listed = api.get(f"/agents/{agent_id}/targets", pak=agent_pak).json()
    assert [(t["agent_id"], t["stack_id"]) for t in listed] == [(agent_id, stack)]
    assert api.delete(f"/agents/{agent_id}/targets/{stack}", pak=mine_pak).status_code == 204
    assert api.delete(f"/agents/{agent_id}/targets/{stack}", pak=mine_pak).status_code == 404


def test_incremental_hides_reported_objects_until_a_new_version(api: Api):
    generator, generator_pak = make_generator(api)
    agent_id, agent_pak = make_agent(api, generators=[generator])
    stacks = [make_stack(api, generator, generator_pak, f"s{i}") for i in range(2)]
    for stack in stacks:
        api.post(
            f"/agents/{agent_id}/targets",
            json={"agent_id": agent_id, "stack_id": stack},
            pak=generator_pak,
        )
    first = [publish(api, s, generator_pak) for s in stacks]
    api.post(
        f"/agents/{agent_id}/events",
        json={
            "agent_id": agent_id,
            "deployment_object_id": first[0],
            "event_type": "DEPLOY",
            "status": "SUCCESS",
        },
        pak=agent_pak,
    )
    assert ids(api.get(f"/agents/{agent_id}/target-state", pak=agent_pak)) == {first[1]}
    assert ids(api.get(f"/agents/{agent_id}/target-state?mode=full", pak=agent_pak)) == set(first)

    newer = publish(api, stacks[0], generator_pak, "2")
    assert ids(api.get(f"/agents/{agent_id}/target-state", pak=agent_pak)) == {newer, first[1]}
    assert api.get(f"/agents/{agent_id}/target-state?mode=bogus", pak=agent_pak).status_code == 400

    marker = api.post(
        f"/stacks/{stacks[1]}/deployment-objects?deletion_marker=true",
        content="",
        headers={"Content-Type": "application/yaml"},
        pak=generator_pak,
    )
    assert marker.status_code == 201, marker.text
    assert marker.json()["is_deletion_marker"] is True
    full = api.get(f"/agents/{agent_id}/target-state?mode=full", pak=agent_pak).json()
    assert {d["id"]: d["is_deletion_marker"] for d in full} == {
        newer: False,
        marker.json()["id"]: True,
    }


def test_deployment_objects_are_immutable_in_the_database(api: Api, database_url: str):
    generator, generator_pak = make_generator(api)
    stack = make_stack(api, generator, generator_pak)
    object_id = publish(api, stack, generator_pak)
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute(
                "UPDATE deployment_objects SET yaml_content = 'x' WHERE id = %s", (object_id,)
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            conn.execute("DELETE FROM deployment_objects WHERE id = %s", (object_id,))
        conn.rollback()
    assert api.get(f"/deployment-objects/{object_id}").json()["yaml_content"] == (
        CONFIGMAP.format(value="1")
    )
    # The API has no way to change one either.
    assert api.put(f"/deployment-objects/{object_id}", json={}).status_code == 405
