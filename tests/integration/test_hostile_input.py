"""Hostile bodies, paths and queries on every route: a 4xx naming the problem, never
a 5xx, and no row written. The routes come from the app itself, so a new route
fails `test_every_body_route_has_a_sample` until it gets a sample body here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from starlette.routing import Mount, Route

from tests.integration.broker import Api, in_process
from tests.integration.test_core_flow import make_agent, make_generator, make_stack

pytestmark = pytest.mark.postgres

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n"
# A placeholder the sweep swaps for a raw JSON integer of 5,000 digits (json.dumps
# cannot write one: Python's int-to-str limit is 4,300 digits).
HUGE = "@@huge-int@@"
BODY_METHODS = {"POST", "PUT", "PATCH"}
NO_BODY = {("POST", "/auth/pak"), ("POST", "/agents/{id}/rotate-pak")}


@dataclass
class World:
    """Real rows for the path parameters, and PAKs for each role."""

    api: Api
    generator: str
    generator_pak: str
    agent: str
    agent_pak: str
    stack: str
    deployment_object: str

    def path(self, template: str) -> str:
        owner = template.split("/")[1]
        ids = {
            "agents": self.agent,
            "stacks": self.stack,
            "generators": self.generator,
            "deployment-objects": self.deployment_object,
            "agent-events": str(uuid.uuid4()),
        }
        return (
            template.replace("{id}", ids.get(owner, ""))
            .replace("{stack_id}", self.stack)
            .replace("{label:path}", "some-label")
            .replace("{key:path}", "some-key")
        )

    def pak_for(self, method: str, template: str) -> str:
        return self.agent_pak if template.endswith("/heartbeat") else "admin"

    def sample(self, method: str, template: str) -> Any:
        """A valid body for each route that takes one (strings are what the sweep poisons)."""
        agent, stack = self.agent, self.stack
        return {
            ("POST", "/generators"): {"name": "g-new", "description": "d"},
            ("POST", "/generators/{id}/register"): {"agent_id": agent},
            ("POST", "/agents"): {"name": "a-new", "cluster_name": "c", "generator_ids": []},
            ("PUT", "/agents/{id}"): {"name": "a-ren", "cluster_name": "c2", "status": "ACTIVE"},
            ("POST", "/agents/{id}/heartbeat"): {"k8s_reachable": True, "k8s_api_latency_ms": 5},
            ("POST", "/agents/{id}/targets"): {"agent_id": agent, "stack_id": stack},
            ("POST", "/agents/{id}/labels"): {"agent_id": agent, "label": "env"},
            ("POST", "/agents/{id}/annotations"): {"agent_id": agent, "key": "k", "value": "v"},
            ("POST", "/agents/{id}/events"): {
                "agent_id": agent,
                "deployment_object_id": self.deployment_object,
                "event_type": "DEPLOY",
                "status": "SUCCESS",
                "message": "applied",
            },
            ("POST", "/stacks"): {"name": "s-new", "generator_id": self.generator},
            ("PUT", "/stacks/{id}"): {"name": "s-ren", "description": "d"},
            ("POST", "/stacks/{id}/labels"): "prod",
            ("POST", "/stacks/{id}/annotations"): {"stack_id": stack, "key": "k", "value": "v"},
            ("POST", "/stacks/{id}/deployment-objects"): {"yaml_content": CONFIGMAP},
        }[(method, template)]


def api_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path template) of every /api/v1 route the app serves."""
    found = []
    for mount in api.client.app.routes:  # type: ignore[attr-defined]
        if isinstance(mount, Mount) and mount.path == "/api/v1":
            for route in mount.routes:
                assert isinstance(route, Route)
                found += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    assert len(found) > 40, found
    return found


def body_routes(api: Api) -> list[tuple[str, str]]:
    return [(m, p) for m, p in api_routes(api) if m in BODY_METHODS and (m, p) not in NO_BODY]


def row_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        counts = {}
        for table in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            assert row is not None
            counts[table] = row[0]
    return counts


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with in_process(database_url) as api:
        generator, generator_pak = make_generator(api)
        agent, agent_pak = make_agent(api, generators=[generator])
        stack = make_stack(api, generator, generator_pak)
        created = api.post(f"/stacks/{stack}/deployment-objects", json={"yaml_content": CONFIGMAP})
        assert created.status_code == 201, created.text
        yield World(api, generator, generator_pak, agent, agent_pak, stack, created.json()["id"])


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar in a JSON value with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(copy[path[0]], path[1:], new)
    return copy


def encode(value: Any) -> bytes:
    return json.dumps(value).replace(json.dumps(HUGE), "1" * 5000).encode()


def poisoned(sample: Any) -> Iterator[tuple[str, str, bytes]]:
    """(case, field, raw body): each field of a valid body made hostile in turn."""
    for path, value in leaves(sample):
        field = ".".join(map(str, path)) or "(body)"
        if isinstance(value, str):
            yield "NUL in a string", field, encode(replaced(sample, path, value + "\x00x"))
            yield "lone surrogate", field, encode(replaced(sample, path, "\ud800" + value))
        yield "5,000-digit integer", field, encode(replaced(sample, path, HUGE))
    if isinstance(sample, dict):
        yield "NUL in a key", "(key)", encode({**sample, "x\x00": 1})


GENERIC = [
    ("deep JSON array", b"[" * 100_000),
    ("deep JSON object", b'{"a":' * 50_000),
    ("bare huge integer", b"1" * 5000),
    ("NaN", b'{"name": NaN}'),
    ("Infinity", b'{"name": -Infinity}'),
    ("huge exponent", b'{"name": 1e999999}'),
    ("invalid UTF-8", b'{"name": "\xff\xfe"}'),
    ("truncated", b'{"name": "x'),
    ("array instead of object", b"[1, 2, 3]"),
    ("null", b"null"),
]


def test_every_body_route_has_a_sample(world: World):
    for method, template in body_routes(world.api):
        assert world.sample(method, template) is not None, (method, template)


def test_hostile_json_bodies_on_every_route_are_400_and_write_nothing(
    world: World, database_url: str
):
    before = row_counts(database_url)
    failures = []
    for method, template in body_routes(world.api):
        path, pak = world.path(template), world.pak_for(method, template)
        sample = world.sample(method, template)
        cases = [(case, "(body)", raw) for case, raw in GENERIC] + list(poisoned(sample))
        for case, field, raw in cases:
            if case == "null" and template.endswith("/heartbeat"):
                continue  # a heartbeat without a report is valid
            response = world.api.call(
                method, path, pak=pak, content=raw, headers={"Content-Type": "application/json"}
            )
            where = f"{method} {template} [{case} at {field}]"
            if response.status_code >= 500 or response.status_code < 400:
                failures.append(f"{where}: {response.status_code} {response.text[:200]}")
                continue
            body = response.json()
            if set(body) - {"code", "message", "details"} or not body.get("message"):
                failures.append(f"{where}: not the v1 error format: {body}")
            elif case in {"NUL in a string", "lone surrogate"}:
                if response.status_code != 400 or field.split(".")[-1] not in body["message"]:
                    failures.append(f"{where}: {response.status_code} {body['message']}")
            elif response.status_code != 400:
                failures.append(f"{where}: {response.status_code} {body}")
    assert not failures, "\n".join(failures)
    assert row_counts(database_url) == before


def test_non_json_content_types_are_415(world: World, database_url: str):
    before = row_counts(database_url)
    for method, template in body_routes(world.api):
        raw = encode(world.sample(method, template))
        path, pak = world.path(template), world.pak_for(method, template)
        kinds = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
        if not template.endswith("/deployment-objects"):  # raw YAML may be text/plain
            kinds.append("text/plain")
        for kind in kinds:
            response = world.api.call(
                method, path, pak=pak, content=raw, headers={"Content-Type": kind}
            )
            assert response.status_code == 415, (method, template, kind, response.text)
            assert response.json()["code"] == "unsupported_media_type"
    assert row_counts(database_url) == before
    # JSON with a charset, a +json type, and no Content-Type at all are accepted.
    api = world.api
    for kind in ("application/json; charset=utf-8", "application/merge-patch+json", ""):
        headers = {"Content-Type": kind} if kind else {}
        response = api.post(
            "/generators", content=json.dumps({"name": f"g-{kind}"}).encode(), headers=headers
        )
        assert response.status_code == 201, (kind, response.text)


def test_nul_in_paths_and_queries_is_400(world: World, database_url: str):
    before = row_counts(database_url)
    for method, template in api_routes(world.api):
        path = world.path(template)
        variants = [path + "?name=a%00&cluster_name=c%00&pak_id=%00&mode=%00&deletion_marker=%00"]
        poisoned_path = path.replace("some-label", "a%00b").replace("some-key", "k%00")
        if poisoned_path != path:
            variants.append(poisoned_path)
        for variant in variants:
            response = world.api.call(method, variant, pak=world.pak_for(method, template))
            assert response.status_code < 500, (method, variant, response.text)
    assert world.api.get("/agents/?name=a%00&cluster_name=c").status_code == 400
    assert world.api.delete(f"/agents/{world.agent}/labels/a%00b").status_code == 400
    assert row_counts(database_url) == before


def test_errors_name_the_field_and_list_at_most_ten_problems(world: World):
    api = world.api
    nul = api.post("/generators", json={"name": "a\x00b"})
    assert nul.status_code == 400
    assert nul.json()["details"]["errors"] == [
        {"field": "name", "problem": nul.json()["details"]["errors"][0]["problem"]}
    ]
    assert "NUL" in nul.json()["message"]
    message = api.post(
        f"/agents/{world.agent}/events",
        content=b'{"agent_id": "%s", "deployment_object_id": "%s", "event_type": "X",'
        b' "status": "Y", "message": "\\ud800"}'
        % (world.agent.encode(), world.deployment_object.encode()),
        headers={"Content-Type": "application/json"},
    )
    assert message.status_code == 400 and "message" in message.json()["message"]
    assert "surrogate" in message.json()["message"]
    deep = api.post("/generators", content=b"[" * 100_000)
    assert deep.status_code == 400 and deep.json()["code"] == "nesting_too_deep"
    many = api.post("/agents", json={"name": "a", "cluster_name": "c", "generator_ids": [0] * 5000})
    assert many.status_code == 400 and len(many.json()["details"]["errors"]) <= 10


def test_json_route_body_limit_is_413(database_url: str):
    with in_process(database_url, max_json_body_bytes=2048) as api:
        big = api.post("/generators", json={"name": "x" * 3000})
        assert big.status_code == 413, big.text
        assert big.json()["details"]["max_bytes"] == 2048
        assert "MAX_JSON_BODY_BYTES" in big.json()["message"]
