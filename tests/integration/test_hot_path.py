"""The polling routes' plain ASGI path (hotpath.py) answers as the full stack does.

A query parameter the hot path does not know sends the same request through the
full middleware stack and router, so each pair below compares the two answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from brokkr.broker.hotpath import HEARTBEAT_ROUTE, TARGET_STATE_ROUTE, hot_route
from tests.integration.broker import Api, in_process
from tests.integration.test_core_flow import make_agent

REPORT = {"k8s_reachable": True, "k8s_api_latency_ms": 12}


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with in_process(database_url) as client:
        yield client


def _same_answer(hot: object, full: object) -> None:
    for name in ("status_code", "content"):
        assert getattr(hot, name) == getattr(full, name)
    hot_headers = dict(hot.headers)  # type: ignore[attr-defined]
    full_headers = dict(full.headers)  # type: ignore[attr-defined]
    assert hot_headers.pop("x-request-id") and full_headers.pop("x-request-id")
    assert hot_headers == full_headers


def test_only_the_two_polling_routes_are_hot():
    agent = "/api/v1/agents/0b9a1c1e-4a5f-4e2b-9c55-2f5d3c1a7e10"
    assert hot_route("POST", agent + "/heartbeat") == HEARTBEAT_ROUTE
    assert hot_route("GET", agent + "/target-state") == TARGET_STATE_ROUTE
    assert hot_route("GET", agent + "/heartbeat") is None
    assert hot_route("POST", agent + "/target-state") is None
    assert hot_route("GET", agent) is None
    assert hot_route("GET", agent + "/target-state/") is None
    assert hot_route("GET", "/api/v1/agents/not-a-uuid/target-state") is None


def test_heartbeat_answers_alike(api: Api):
    agent_id, agent_pak = make_agent(api)
    path = f"/agents/{agent_id}/heartbeat"
    hot = api.post(path, pak=agent_pak, json=REPORT)
    full = api.post(path + "?via=router", pak=agent_pak, json=REPORT)
    assert hot.status_code == 204
    _same_answer(hot, full)
    stored = api.get(f"/agents/{agent_id}").json()
    assert stored["k8s_api_latency_ms"] == 12 and stored["last_heartbeat"]


@pytest.mark.parametrize("mode", ["", "?mode=full", "?mode=incremental"])
def test_target_state_answers_alike(api: Api, mode: str):
    agent_id, agent_pak = make_agent(api)
    path = f"/agents/{agent_id}/target-state{mode}"
    hot = api.get(path, pak=agent_pak)
    full = api.get(path + ("&" if mode else "?") + "via=router", pak=agent_pak)
    assert hot.status_code == 200 and hot.json() == []
    _same_answer(hot, full)


def test_refused_requests_get_the_full_stacks_answers(api: Api):
    """Another agent's PAK, a bad body, no PAK: answered by the routes (body handed on)."""
    agent_id, agent_pak = make_agent(api, "a1")
    _, other_pak = make_agent(api, "a2")
    beat = f"/agents/{agent_id}/heartbeat"
    refused = api.post(beat, pak=other_pak, json=REPORT)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    invalid = api.post(beat, pak=agent_pak, json={"k8s_api_latency_ms": "slow"})
    assert invalid.status_code == 400
    assert invalid.json()["details"]["errors"][0]["field"] == "k8s_api_latency_ms"
    assert api.post(beat, pak=None, json=REPORT).status_code == 401
    poll = api.get(f"/agents/{agent_id}/target-state", pak=other_pak)
    assert poll.status_code == 403
    admin = api.get(f"/agents/{agent_id}/target-state?mode=full")
    assert admin.status_code == 200 and admin.json() == []


def test_request_ids_and_metrics(api: Api):
    agent_id, agent_pak = make_agent(api)
    beat = f"/agents/{agent_id}/heartbeat"
    echoed = api.post(beat, pak=agent_pak, json=REPORT, headers={"X-Request-ID": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    fresh = api.post(beat, pak=agent_pak, json=REPORT)
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    api.get(f"/agents/{agent_id}/target-state", pak=agent_pak)
    text = api.client.get("/metrics").text
    heartbeats = (
        'brokkr_http_requests_total{method="POST",'
        'route="/api/v1/agents/{id}/heartbeat",status="204"} 2.0'
    )
    polls = (
        'brokkr_http_requests_total{method="GET",'
        'route="/api/v1/agents/{id}/target-state",status="200"} 1.0'
    )
    assert heartbeats in text and polls in text
    assert (
        'brokkr_http_request_duration_seconds_count{method="POST",'
        'route="/api/v1/agents/{id}/heartbeat"} 2.0'
    ) in text
