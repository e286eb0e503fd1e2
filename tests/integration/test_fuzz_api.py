"""The API contract, fuzzed: schemathesis against a real broker process, from the
OpenAPI document the broker serves (`/docs/openapi.json`, built by openapi.py).

Every operation is called with a fixed number of generated requests (a fixed
seed: the same requests on every run) as the admin with valid data, as the admin
with data that breaks the schema, as the admin on real rows, and without
credentials. No answer may be a 5xx, and every answer must be a documented status
with the documented content type and body schema. All findings are collected and
reported together, one line per operation and check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.broker import AdminBroker, StartBroker
from tests.integration.broker import in_process

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Requests per operation and pass; BROKKR_FUZZ_EXAMPLES raises it for a longer hunt.
EXAMPLES = int(os.environ.get("BROKKR_FUZZ_EXAMPLES", "6"))
SEED = 20261203
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]
YAML = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


@pytest.fixture
def broker(start_broker: StartBroker) -> AdminBroker:
    return start_broker({"broker": {"body_read_timeout": 5}, "log": {"format": "json"}})


def seed_rows(base: str, admin: str) -> dict[str, str]:
    """One row of each kind, so list answers have items and real ids can be used."""
    with httpx.Client(base_url=base, headers={"Authorization": admin}, timeout=30) as http:
        generator = http.post("/generators", json={"name": "fuzz-g"}).json()["generator"]["id"]
        created = http.post("/agents", json={"name": "fuzz-a", "cluster_name": "c"}).json()
        agent, agent_pak = created["agent"]["id"], created["initial_pak"]
        http.post(f"/generators/{generator}/register", json={"agent_id": agent})
        stack = http.post("/stacks", json={"name": "fuzz-s", "generator_id": generator}).json()
        do = http.post(f"/stacks/{stack['id']}/deployment-objects", json={"yaml_content": YAML})
        http.post(f"/agents/{agent}/targets", json={"agent_id": agent, "stack_id": stack["id"]})
        http.post(f"/agents/{agent}/labels", json={"agent_id": agent, "label": "edge"})
        http.post(f"/stacks/{stack['id']}/labels", json="edge")
        event = http.post(
            f"/agents/{agent}/events",
            headers={"Authorization": agent_pak},
            json={
                "agent_id": agent,
                "deployment_object_id": do.json()["id"],
                "event_type": "DEPLOY",
                "status": "SUCCESS",
            },
        )
        return {
            "generators": generator,
            "agents": agent,
            "stacks": stack["id"],
            "deployment-objects": do.json()["id"],
            "agent-events": event.json()["id"],
        }


def real_ids(path: str, rows: dict[str, str]) -> dict[str, str]:
    """Path parameters naming the seeded rows: {id} by the path's first segment."""
    params = {"id": rows[path.split("/")[1]]} if "{id}" in path else {}
    if "{stack_id}" in path:
        params["stack_id"] = rows["stacks"]
    return params


def fuzz(
    operation: Any,
    *,
    base: str,
    mode: GenerationMode,
    headers: dict[str, str],
    path_parameters: dict[str, str] | None,
    report: Callable[[str], None],
) -> None:
    """EXAMPLES generated requests for one operation; each finding goes to `report`."""

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base, headers=headers, timeout=30)
        except Exception as exc:  # a reset or a hang is a finding too
            report(f"no answer: {type(exc).__name__}: {str(exc)[:200]}")
            return
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            failures = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            for failure in failures:
                title = str(failure).strip().splitlines()[0]
                report(f"{response.status_code} {title}: {case.as_curl_command()[:400]}")

    try:
        run()
    except Unsatisfiable:
        # Nothing in this operation can break the schema (no body, no parameters).
        assert mode is GenerationMode.NEGATIVE, f"no valid request for {operation.label}"


def test_every_operation_keeps_the_contract(broker: AdminBroker):
    process, admin = broker
    base = process.url + "/api/v1"
    rows = seed_rows(base, admin)
    schema = schemathesis.openapi.from_url(process.url + "/docs/openapi.json")
    # Unknown query parameters are ignored, as in v1 (clients may send more than we read).
    schema.config.generation.update(allow_extra_parameters=False)
    findings: dict[str, set[str]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    passes = [
        ("admin", GenerationMode.POSITIVE, {"Authorization": admin}, False),
        ("admin, invalid data", GenerationMode.NEGATIVE, {"Authorization": admin}, False),
        ("admin, real rows", GenerationMode.POSITIVE, {"Authorization": admin}, True),
        ("no credentials", GenerationMode.POSITIVE, {}, False),
    ]
    for label, mode, headers, on_rows in passes:
        for operation in operations:
            if on_rows and operation.method.upper() == "DELETE":
                continue  # the rows must outlive the pass; DELETE runs on unknown ids above
            where = f"{operation.method.upper()} {operation.path} ({label})"
            params = real_ids(operation.path, rows) if on_rows else None
            fuzz(
                operation,
                base=base,
                mode=mode,
                headers=headers,
                path_parameters=params,
                report=lambda text, where=where: findings.setdefault(where, set()).add(text),
            )
    assert process.ready()  # /healthz still answers 200
    listed = "\n".join(f"{where}: {sorted(texts)[0]}" for where, texts in sorted(findings.items()))
    assert not findings, f"{len(findings)} operation(s) broke the contract:\n{listed}"


def test_what_the_fuzzer_found_stays_fixed(database_url: str):
    """An empty `pak_id` was read as "no filter" (200 with every row): now 400."""
    with in_process(database_url) as api:
        for path in ("/stacks?pak_id=", "/agent-events?pak_id=", "/stacks?pak_id=x"):
            reply = api.get(path)
            assert reply.status_code == 400, (path, reply.text)
            assert reply.json()["code"] == "invalid_query"
            assert "pak_id must be a generator UUID" in reply.json()["message"]
        # The served document lists every answer the routes can give.
        document = api.client.get("/docs/openapi.json").json()
        create = document["paths"]["/stacks/{id}/deployment-objects"]["post"]
        assert {"408", "409", "413", "415", "431"} <= set(create["responses"])
        assert "application/yaml" in create["requestBody"]["content"]
        assert [p["name"] for p in create["parameters"]] == ["id", "deletion_marker"]
