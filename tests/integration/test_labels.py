"""Labels and annotations of agents and stacks: exact answers, including every error."""

from __future__ import annotations

import uuid

import httpx2
import pytest

from tests.integration.broker import Api, in_process
from tests.integration.test_core_flow import make_agent, make_generator, make_stack

pytestmark = pytest.mark.postgres

MISSING = str(uuid.UUID(int=1))


@pytest.fixture
def api(database_url: str):
    with in_process(database_url) as client:
        yield client


def error(response: httpx2.Response, status: int, code: str, message: str) -> None:
    """The answer is exactly this error body (key order included)."""
    assert (response.status_code, response.text) == (
        status,
        f'{{"code":"{code}","message":"{message}"}}',
    )


def created(response: httpx2.Response, **fields: str) -> None:
    """201 with exactly these fields after the row id, in this order."""
    assert response.status_code == 201, response.text
    body = response.json()
    assert list(body) == ["id", *fields]
    assert {k: body[k] for k in fields} == fields


def test_agent_labels_and_annotations(api: Api):
    generator, generator_pak = make_generator(api)
    agent, agent_pak = make_agent(api, "a1", generators=[generator])
    _, other_pak = make_agent(api, "a2")
    labels, annotations = f"/agents/{agent}/labels", f"/agents/{agent}/annotations"

    for label in ("b", "team/x", "a"):
        created(
            api.post(labels, json={"agent_id": agent, "label": label}), agent_id=agent, label=label
        )
    error(
        api.post(labels, json={"agent_id": agent, "label": "a"}),
        409,
        "label_exists",
        "the agent already has label 'a'",
    )
    listed = api.get(labels, pak=agent_pak).json()
    assert [(list(x), x["label"]) for x in listed] == [
        (["id", "agent_id", "label"], name) for name in ("a", "b", "team/x")
    ]
    assert api.delete(f"{labels}/team/x").status_code == 204
    error(
        api.delete(f"{labels}/team/x"),
        404,
        "agent_label_not_found",
        "agent label 'team/x' not found",
    )

    created(
        api.post(annotations, json={"agent_id": agent, "key": "k", "value": "v"}),
        agent_id=agent,
        key="k",
        value="v",
    )
    error(
        api.post(annotations, json={"agent_id": agent, "key": "k", "value": "w"}),
        409,
        "annotation_exists",
        "the agent already has annotation 'k'",
    )
    assert [list(x) for x in api.get(annotations, pak=agent_pak).json()] == [
        ["id", "agent_id", "key", "value"]
    ]
    error(
        api.delete(f"{annotations}/nope"),
        404,
        "agent_annotation_not_found",
        "agent annotation 'nope' not found",
    )
    assert api.delete(f"{annotations}/k").status_code == 204

    # Who may do what: the admin writes, the agent itself reads.
    for path in (labels, annotations):
        error(
            api.get(path, pak=other_pak),
            403,
            "forbidden",
            "only the admin or the agent itself may do this",
        )
        error(
            api.post(path, json={}, pak=agent_pak),
            403,
            "forbidden",
            "this endpoint requires the admin PAK",
        )
        error(
            api.delete(f"{path}/a", pak=generator_pak),
            403,
            "forbidden",
            "this endpoint requires the admin PAK",
        )

    # The body is checked before the agent is looked up.
    error(
        api.post(labels, json={"agent_id": generator, "label": "y"}),
        400,
        "agent_id_mismatch",
        f"body agent_id {generator} differs from the path's {agent}",
    )
    missing = api.post(f"/agents/{MISSING}/labels", json={"agent_id": MISSING})
    assert (missing.status_code, missing.json()["code"]) == (400, "invalid_request")
    error(
        api.post(
            f"/agents/{MISSING}/annotations", json={"agent_id": MISSING, "key": "k", "value": ""}
        ),
        404,
        "agent_not_found",
        f"agent {MISSING} not found",
    )
    assert api.get(f"/agents/{MISSING}/labels").json() == []


def test_stack_labels_and_annotations(api: Api):
    generator, generator_pak = make_generator(api, "g1")
    _, other_pak = make_generator(api, "g2")
    agent, agent_pak = make_agent(api, generators=[generator])
    stack = make_stack(api, generator, generator_pak)
    labels, annotations = f"/stacks/{stack}/labels", f"/stacks/{stack}/annotations"

    # A bare JSON string, or an object with "label".
    created(api.post(labels, json="prod", pak=generator_pak), stack_id=stack, label="prod")
    created(api.post(labels, json={"label": "eu/west"}), stack_id=stack, label="eu/west")
    error(
        api.post(labels, json="prod", pak=generator_pak),
        409,
        "label_exists",
        "the stack already has label 'prod'",
    )
    assert [x["label"] for x in api.get(labels, pak=agent_pak).json()] == ["eu/west", "prod"]
    assert api.delete(f"{labels}/eu/west", pak=generator_pak).status_code == 204
    error(
        api.delete(f"{labels}/eu/west"),
        404,
        "stack_label_not_found",
        "stack label 'eu/west' not found",
    )

    created(
        api.post(
            annotations, json={"stack_id": stack, "key": "k", "value": "v"}, pak=generator_pak
        ),
        stack_id=stack,
        key="k",
        value="v",
    )
    error(
        api.post(annotations, json={"stack_id": stack, "key": "k", "value": "v"}),
        409,
        "annotation_exists",
        "the stack already has annotation 'k'",
    )
    error(
        api.post(annotations, json={"stack_id": agent, "key": "j", "value": "v"}),
        400,
        "stack_id_mismatch",
        f"body stack_id {agent} differs from the path's",
    )
    assert [list(x) for x in api.get(annotations, pak=agent_pak).json()] == [
        ["id", "stack_id", "key", "value"]
    ]
    error(
        api.delete(f"{annotations}/nope"),
        404,
        "stack_annotation_not_found",
        "stack annotation 'nope' not found",
    )

    # The owner is checked before the body: another generator gets 403 even for junk.
    for path in (labels, annotations):
        error(
            api.get(path, pak=other_pak),
            403,
            "forbidden",
            "a generator may only manage its own stacks",
        )
        error(
            api.post(path, content=b"junk", pak=other_pak),
            403,
            "forbidden",
            "a generator may only manage its own stacks",
        )
        error(
            api.delete(f"{path}/k", pak=agent_pak),
            403,
            "forbidden",
            "only the admin or a generator may do this",
        )
        missing = f"/stacks/{MISSING}/{path.rsplit('/', 1)[1]}"
        error(api.get(missing, pak=agent_pak), 404, "stack_not_found", f"stack {MISSING} not found")
        error(
            api.post(missing, content=b"junk"), 404, "stack_not_found", f"stack {MISSING} not found"
        )
