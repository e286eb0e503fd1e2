"""Hostile clients against a real broker process: racing DELETEs, stalled bodies,
large YAML uploads while probes run, and what a 500 leaves in the log."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from brokkr.broker.yaml_worker import MAX_YAML_DEPTH
from brokkr_dev.local.services import LocalBroker
from tests.fixtures.broker import AdminBroker, StartBroker
from tests.integration.broker import Api, in_process
from tests.integration.test_admin_generator import all_at_once
from tests.unit.test_agent_manifests import alias_bomb

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# /healthz must answer within this many seconds while a large YAML is parsed.
HEALTHZ_BOUND = 1.0


def big_yaml(target_bytes: int) -> str:
    """Multi-document Kubernetes YAML of about `target_bytes`."""
    doc = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n"
        "  labels: {{app: web, idx: '{i}'}}\nspec:\n  replicas: 3\n  template:\n"
        "    spec:\n      containers:\n        - name: web\n          image: r.example/web:1\n"
        "          env: [{{name: A, value: '1'}}, {{name: B, value: two}}]\n"
        "          resources: {{limits: {{cpu: 500m, memory: 256Mi}}}}\n"
    )
    parts, size, i = [], 0, 0
    while size < target_bytes:
        part = doc.format(i=i)
        parts.append(part)
        size += len(part) + 4
        i += 1
    return "---\n".join(parts)


@pytest.fixture
def broker(start_broker: StartBroker) -> AdminBroker:
    return start_broker(
        {
            # 24 racing DELETEs each hold a connection while they wait for the row lock.
            "database": {"pool_max_size": 30, "pool_timeout": 30},
            "broker": {"body_read_timeout": 1},
            "log": {"format": "json"},
        }
    )


def client(broker: LocalBroker, admin: str) -> httpx.Client:
    return httpx.Client(
        base_url=broker.url + "/api/v1", headers={"Authorization": admin}, timeout=60
    )


def make_stack(http: httpx.Client) -> str:
    generator = http.post("/generators", json={"name": "g"}).json()["generator"]["id"]
    stack = http.post("/stacks", json={"name": "s", "generator_id": generator})
    assert stack.status_code == 201, stack.text
    return str(stack.json()["id"])


def test_concurrent_deletes_of_one_stack_one_wins(broker: AdminBroker, database_url: str):
    process, admin = broker
    with client(process, admin) as http:
        stack = make_stack(http)
    statuses: list[int] = []
    # Connected and authenticated before the barrier, so the DELETEs arrive together.
    clients = [client(process, admin) for _ in range(24)]
    for own in clients:
        assert own.get(f"/stacks/{stack}").status_code == 200

    def delete() -> None:
        own = clients.pop()
        statuses.append(own.delete(f"/stacks/{stack}").status_code)
        own.close()

    assert not all_at_once(24, delete)
    assert sorted(statuses) == [204] + [404] * 23, statuses
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM deployment_objects WHERE stack_id = %s AND is_deletion_marker",
            (stack,),
        ).fetchone()
    assert row == (1,)


def test_a_stalled_body_is_408_and_the_connection_closes(broker: AdminBroker):
    process, admin = broker
    head = (
        "POST /api/v1/generators HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {admin}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"name": "slo')  # ...and nothing more
        started = time.monotonic()
        reply = b""
        while chunk := sock.recv(65536):  # until the broker closes the connection
            reply += chunk
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b'"code":"request_timeout"' in reply
    assert 0.9 <= waited < 5, waited


def test_a_500_is_logged_once_with_the_request_id_it_answers_with(
    broker: AdminBroker, database_url: str
):
    process, admin = broker
    with psycopg.connect(database_url) as conn:  # break the schema under the broker
        conn.execute("ALTER TABLE stacks RENAME TO stacks_gone")
    with client(process, admin) as http:
        response = http.get("/stacks")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json()["details"] == {"request_id": request_id}
    assert response.json()["code"] == "internal_error"
    process.wait_until(lambda: request_id in process.log(), 5, "the error log line")
    lines = [json.loads(line) for line in process.log().splitlines() if request_id in line]
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "error" and "UndefinedTable" in lines[0]["exception"]
    assert process.log().count("Traceback") == 1
    # A client's own well-formed request id is kept; a malformed one is replaced.
    with client(process, admin) as http:
        assert http.get("/agents", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == (
            "abc-123"
        )
        assert http.get("/agents", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"] != (
            "a b\tc"
        )


def test_healthz_stays_fast_while_a_large_yaml_is_parsed(broker: AdminBroker):
    process, admin = broker
    content = big_yaml(3 * 1024 * 1024)
    with client(process, admin) as http:
        stack = make_stack(http)
    done = threading.Event()
    upload: dict[str, object] = {}

    def send() -> None:
        started = time.monotonic()
        try:
            with client(process, admin) as http:
                response = http.post(
                    f"/stacks/{stack}/deployment-objects", json={"yaml_content": content}
                )
            upload["status"] = response.status_code
        except httpx.HTTPError as exc:  # reported by the assertion below, not a hang
            upload["status"] = repr(exc)
        finally:
            upload["seconds"] = time.monotonic() - started
            done.set()

    thread = threading.Thread(target=send)
    thread.start()
    slowest = 0.0
    with httpx.Client(base_url=process.url, timeout=30) as probe:
        while not done.is_set():
            started = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)  # the probe interval, not a synchronisation
    thread.join()
    print(f"\nupload {upload}; slowest /healthz {slowest:.3f} s")
    assert upload["status"] == 201, upload
    assert isinstance(upload["seconds"], float) and upload["seconds"] > HEALTHZ_BOUND
    assert slowest < HEALTHZ_BOUND


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with in_process(database_url, yaml_cpu_seconds=0.3) as client:
        yield client


def test_yaml_bounds_answer_400_or_413_and_the_broker_survives(api: Api, database_url: str):
    generator = api.post("/generators", json={"name": "g"}).json()["generator"]["id"]
    stack = api.post("/stacks", json={"name": "s", "generator_id": generator}).json()["id"]
    path = f"/stacks/{stack}/deployment-objects"

    def post(yaml_content: str) -> dict:
        response = api.post(path, json={"yaml_content": yaml_content})
        return {"status": response.status_code, **response.json()}

    # Deep flow nesting crashes libyaml's composer (segfault) unless it is refused first.
    deep = post("a: " + "[" * 100_000)
    assert (deep["status"], deep["code"]) == (400, "yaml_too_deep"), deep
    block = "".join(f"{' ' * i}k{i}:\n" for i in range(MAX_YAML_DEPTH + 5)) + " " * 200 + "x: 1\n"
    assert post(block)["code"] == "yaml_too_deep"
    ok = "apiVersion: v1\nkind: ConfigMap\ndata:\n" + "".join(
        f"{' ' * (i + 2)}k{i}:\n" for i in range(MAX_YAML_DEPTH - 2)
    )
    assert post(ok + " " * (MAX_YAML_DEPTH + 2) + "x: '1'\n")["status"] == 201
    huge = post("apiVersion: v1\nkind: ConfigMap\ndata:\n  n: " + "1" * 5000 + "\n")
    assert (huge["status"], huge["code"]) == (400, "invalid_yaml"), huge
    slow = post(big_yaml(3 * 1024 * 1024))
    assert (slow["status"], slow["code"]) == (413, "yaml_too_complex"), slow
    raw = api.post(
        path, content=b"kind: x\x00", headers={"Content-Type": "application/yaml"}
    ).json()
    assert raw["code"] == "invalid_yaml"
    # The workers still answer after all of that.
    assert post("apiVersion: v1\nkind: ConfigMap\n")["status"] == 201
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM deployment_objects").fetchone()
    assert row == (2,)


def test_agent_status_is_stored_as_sent_but_metric_labels_stay_bounded(api: Api):
    for index, status in enumerate(["ACTIVE", "weird-1", "weird-2", "INACTIVE"]):
        created = api.post("/agents", json={"name": f"a{index}", "cluster_name": "c"})
        agent = created.json()["agent"]["id"]
        updated = api.put(f"/agents/{agent}", json={"status": status})
        assert updated.json()["status"] == status
    text = api.client.get("/metrics").text
    assert 'brokkr_agents{status="other"} 2.0' in text
    assert 'brokkr_agents{status="ACTIVE"} 1.0' in text
    assert "weird" not in text


def test_an_alias_bomb_is_400_naming_the_aliases_and_nothing_is_stored(
    broker: AdminBroker, database_url: str
):
    process, admin = broker
    with client(process, admin) as http:
        stack = make_stack(http)
        path = f"/stacks/{stack}/deployment-objects"
        # 9**9 (387 million) nodes in about 600 bytes; the old code stored it (201),
        # and agents that expanded it went down.
        bomb = alias_bomb(10)
        for body in ({"json": {"yaml_content": bomb}}, {"content": bomb.encode()}):
            headers = {} if "json" in body else {"Content-Type": "application/yaml"}
            refused = http.post(path, headers=headers, **body)  # type: ignore[arg-type]
            assert refused.status_code == 400, refused.text
            answer = refused.json()
            assert answer["code"] == "yaml_aliases_expand_too_far"
            assert "aliases expand to more than 100000 nodes" in answer["message"]
            assert answer["details"]["anchor"] == "l4"
        cycle = http.post(
            path, json={"yaml_content": "apiVersion: v1\nkind: ConfigMap\ndata: &d {a: *d}\n"}
        )
        assert (cycle.status_code, cycle.json()["code"]) == (400, "yaml_recursive_alias")
        # Anchors used the ordinary way still work.
        fine = http.post(path, json={"yaml_content": alias_bomb(3)})
        assert fine.status_code == 201, fine.text
    assert process.ready()
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM deployment_objects WHERE stack_id = %s", (stack,)
        ).fetchone()
    assert row == (1,)
