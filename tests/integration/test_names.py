"""One rule for every name (generators, agents and their cluster_name, stacks), on
create and on update, against a real broker process: 400 naming the field, a
documented length limit, and Unicode stored and answered exactly as sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from brokkr.broker.names import MAX_NAME_LENGTH
from tests.fixtures.broker import StartBroker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REFUSED = {
    "": "at least 1 character",
    "   ": "visible character",
    "\u3000\u00a0": "visible character",  # ideographic and no-break spaces
    "\u200b\u2060": "visible character",  # zero-width space, word joiner
    "a\nb": "control characters",
    "tab\there": "control characters",
    "\x1b[31mred": "control characters",
    "x" * (MAX_NAME_LENGTH + 1): f"at most {MAX_NAME_LENGTH} characters",
}
# Kept exactly: spaces around, combining accent (NFD) next to the precomposed one
# (NFC), right-to-left text, an emoji outside the BMP, the longest allowed name.
KEPT = [" Grüße ", "e\u0301", "\u00e9", "שלום", "🚀 launch", "x" * MAX_NAME_LENGTH]


@pytest.fixture
def http(start_broker: StartBroker) -> Iterator[httpx.Client]:
    process, admin = start_broker()
    with httpx.Client(
        base_url=process.url + "/api/v1", headers={"Authorization": admin}, timeout=30
    ) as client:
        yield client


def writers(http: httpx.Client) -> dict[str, Callable[[str], httpx.Response]]:
    """Every write that takes a name, keyed by `<route> <field>`."""
    generator = http.post("/generators", json={"name": "owner"}).json()["generator"]["id"]
    agent = http.post("/agents", json={"name": "a", "cluster_name": "c"}).json()["agent"]["id"]
    stack = http.post("/stacks", json={"name": "s", "generator_id": generator}).json()["id"]
    return {
        "POST /generators name": lambda n: http.post("/generators", json={"name": n}),
        "POST /agents name": lambda n: http.post("/agents", json={"name": n, "cluster_name": "c"}),
        "POST /agents cluster_name": lambda n: http.post(
            "/agents", json={"name": "a2", "cluster_name": n}
        ),
        "PUT /agents name": lambda n: http.put(f"/agents/{agent}", json={"name": n}),
        "PUT /agents cluster_name": lambda n: http.put(
            f"/agents/{agent}", json={"cluster_name": n}
        ),
        "POST /stacks name": lambda n: http.post(
            "/stacks", json={"name": n, "generator_id": generator}
        ),
        "PUT /stacks name": lambda n: http.put(f"/stacks/{stack}", json={"name": n}),
    }


def test_bad_names_are_400_naming_the_field_on_every_route(http: httpx.Client, database_url: str):
    routes = writers(http)
    with psycopg.connect(database_url) as conn:
        before = conn.execute(
            "SELECT (SELECT count(*) FROM generators), (SELECT count(*) FROM agents),"
            " (SELECT count(*) FROM stacks)"
        ).fetchone()
    for route, write in routes.items():
        field = route.rsplit(" ", 1)[1]
        for name, problem in REFUSED.items():
            reply = write(name)
            assert reply.status_code == 400, (route, name, reply.text)
            body = reply.json()
            assert body["code"] == "invalid_request", body
            assert body["details"]["errors"][0]["field"] == field, (route, body)
            assert problem in body["message"], (route, name, body["message"])
    with psycopg.connect(database_url) as conn:
        after = conn.execute(
            "SELECT (SELECT count(*) FROM generators), (SELECT count(*) FROM agents),"
            " (SELECT count(*) FROM stacks)"
        ).fetchone()
    assert after == before


def test_unicode_names_are_stored_and_answered_exactly(http: httpx.Client, database_url: str):
    for name in KEPT:
        created = http.post("/generators", json={"name": name})
        assert created.status_code == 201, (name, created.text)
        generator = created.json()["generator"]
        assert generator["name"] == name
        assert http.get(f"/generators/{generator['id']}").json()["name"] == name
        agent = http.post("/agents", json={"name": name, "cluster_name": name}).json()["agent"]
        assert (agent["name"], agent["cluster_name"]) == (name, name)
        stack = http.post("/stacks", json={"name": name, "generator_id": generator["id"]})
        assert stack.status_code == 201 and stack.json()["name"] == name
        renamed = ("·" + name)[:MAX_NAME_LENGTH]
        updated = http.put(f"/stacks/{stack.json()['id']}", json={"name": renamed})
        assert updated.json()["name"] == renamed
        moved = http.put(f"/agents/{agent['id']}", json={"name": renamed, "cluster_name": renamed})
        assert (moved.json()["name"], moved.json()["cluster_name"]) == (renamed, renamed)
        found = http.get("/agents/", params={"name": renamed, "cluster_name": renamed})
        assert found.json()["id"] == agent["id"]
    with psycopg.connect(database_url) as conn:
        stored = {row[0] for row in conn.execute("SELECT name FROM generators")}
    # The NFD and NFC forms of "é" are two names, both kept as sent.
    assert {"e\u0301", "\u00e9", " Grüße "} <= stored
