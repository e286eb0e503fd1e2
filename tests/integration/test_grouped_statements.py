"""Heartbeats and target-state polls in groups (grouping.py) against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from brokkr.broker import pak
from brokkr.broker.db.pool import make_pool
from brokkr.broker.errors import ApiError
from brokkr.broker.heartbeats import HeartbeatWriter
from brokkr.broker.settings import DatabaseSettings
from brokkr.broker.targetstate import TargetStateReader
from brokkr_dev.base.localnet import free_port
from tests.integration.broker import in_process


def _agents(url: str, count: int) -> list[tuple[UUID, str]]:
    made = [pak.generate() for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as conn:
        return [
            (
                conn.execute(
                    "INSERT INTO agents (name, cluster_name, pak_hash, k8s_reachable,"
                    " k8s_api_latency_ms) VALUES (%s, 'c', %s, false, 7) RETURNING id",
                    (f"a{n}", new.hash),
                ).fetchone()[0],  # type: ignore[index]
                new.hash,
            )
            for n, new in enumerate(made)
        ]


def _row(url: str, agent: UUID) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute(
            "SELECT last_heartbeat, k8s_reachable, k8s_api_latency_ms, k8s_reported_at"
            " FROM agents WHERE id = %s",
            (agent,),
        ).fetchone()
    assert row is not None
    return row


async def _record_together(url: str, beats: list[tuple[UUID, str, bool | None, int | None]]) -> Any:
    pool = make_pool(DatabaseSettings(url=url, pool_min_size=1, pool_max_size=2))
    await pool.open(wait=True)
    try:
        writer = HeartbeatWriter(pool)
        results = await asyncio.gather(*(writer.record(*beat) for beat in beats))
        return results, pool.get_stats()
    finally:
        await pool.close()


def test_each_heartbeat_of_a_group_gets_its_own_outcome(database_url: str) -> None:
    (a, a_hash), (b, b_hash), (c, _), (gone, gone_hash) = _agents(database_url, 4)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE agents SET deleted_at = now() WHERE id = %s", (gone,))
    beats: list[tuple[UUID, str, bool | None, int | None]] = [
        (a, a_hash, True, 12),  # with a Kubernetes report
        (b, b_hash, None, None),  # without: the stored report stays
        (c, b_hash, None, None),  # another agent's PAK hash
        (gone, gone_hash, None, None),  # deleted agent
        (uuid4(), a_hash, None, None),  # unknown agent
        (a, a_hash, False, None),  # the same agent again: written by the next statement
    ]
    results, _ = asyncio.run(_record_together(database_url, beats))
    assert results == [True, True, False, False, False, True]
    first = _row(database_url, a)
    assert first["k8s_reachable"] is False  # the second heartbeat of `a` came last
    assert first["k8s_api_latency_ms"] is None
    assert first["k8s_reported_at"] is not None and first["last_heartbeat"] is not None
    untouched = _row(database_url, b)
    assert untouched["last_heartbeat"] is not None
    assert (untouched["k8s_reachable"], untouched["k8s_api_latency_ms"]) == (False, 7)
    assert untouched["k8s_reported_at"] is None
    assert _row(database_url, c)["last_heartbeat"] is None
    assert _row(database_url, gone)["last_heartbeat"] is None


def test_many_heartbeats_share_few_statements(database_url: str) -> None:
    agents = _agents(database_url, 60)
    results, stats = asyncio.run(
        _record_together(database_url, [(agent, h, True, 1) for agent, h in agents])
    )
    assert results == [True] * 60
    # 60 concurrent heartbeats; without grouping each would take a connection
    assert stats.get("requests_num", 0) <= 3
    with psycopg.connect(database_url) as conn:
        beats = conn.execute("SELECT count(last_heartbeat) FROM agents").fetchone()
    assert beats == (60,)


def test_every_waiting_heartbeat_gets_503_when_the_database_is_down() -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/brokkr"

    async def attempt() -> list[BaseException | bool]:
        pool = make_pool(
            DatabaseSettings(url=url, pool_min_size=0, pool_max_size=1, pool_timeout=0.5)
        )
        await pool.open(wait=False)
        try:
            writer = HeartbeatWriter(pool)
            beats = [writer.record(uuid4(), "x" * 64, None, None) for _ in range(3)]
            return await asyncio.gather(*beats, return_exceptions=True)
        finally:
            await pool.close()

    outcomes = asyncio.run(attempt())
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome, ApiError)
        assert outcome.status == 503


@pytest.mark.parametrize("report", [None, True])
def test_heartbeat_over_http_still_answers_204_401_403_404(database_url: str, report: Any) -> None:
    body = {} if report is None else {"k8s_reachable": report, "k8s_api_latency_ms": 3}
    with in_process(database_url) as api:
        created = api.post("/agents", json={"name": "n", "cluster_name": "c"}).json()
        other = api.post("/agents", json={"name": "o", "cluster_name": "c"}).json()
        agent_id, agent_pak = created["agent"]["id"], created["initial_pak"]
        assert (
            api.post(f"/agents/{agent_id}/heartbeat", pak=agent_pak, json=body).status_code == 204
        )
        wrong = api.post(f"/agents/{agent_id}/heartbeat", pak=other["initial_pak"], json=body)
        assert wrong.status_code == 403
        unknown = api.post(f"/agents/{agent_id}/heartbeat", pak=pak.generate().pak, json=body)
        assert unknown.status_code == 401
        assert api.delete(f"/agents/{agent_id}").status_code == 204
        after = api.post(f"/agents/{agent_id}/heartbeat", pak=agent_pak, json=body)
        assert after.status_code == 401
        admin = api.post(f"/agents/{uuid4()}/heartbeat", json=body)
        assert admin.status_code == 403  # only the agent itself sends its heartbeat


def test_grouped_polls_answer_as_the_single_agent_statement(database_url: str) -> None:
    with in_process(database_url) as api:
        generator = api.post("/generators", json={"name": "g"}).json()
        gen_id, gen_pak = generator["generator"]["id"], generator["pak"]
        agents = []
        for n in range(3):
            made = api.post("/agents", json={"name": f"a{n}", "cluster_name": "c"}).json()
            agents.append((UUID(made["agent"]["id"]), made["initial_pak"]))
            registered = api.post(
                f"/generators/{gen_id}/register", json={}, pak=made["initial_pak"]
            )
            assert registered.status_code == 201
        for n in range(2):
            stack = api.post(
                "/stacks", pak=gen_pak, json={"name": f"s{n}", "generator_id": gen_id}
            ).json()
            yaml = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{n}\n"
            made = api.post(
                f"/stacks/{stack['id']}/deployment-objects",
                pak=gen_pak,
                json={"yaml_content": yaml},
            )
            assert made.status_code == 201
            for agent, _ in agents[: n + 2]:  # agent 0, 1 get both stacks; agent 2 one
                target = {"agent_id": str(agent), "stack_id": stack["id"]}
                assert api.post(f"/agents/{agent}/targets", json=target).status_code == 201
        first = api.get(f"/agents/{agents[0][0]}/target-state", pak=agents[0][1]).json()
        report = {
            "agent_id": str(agents[0][0]),
            "deployment_object_id": first[0]["id"],
            "event_type": "DEPLOY",
            "status": "SUCCESS",
        }
        event = api.post(f"/agents/{agents[0][0]}/events", pak=agents[0][1], json=report)
        assert event.status_code == 201, event.text
        expected = {
            (agent, full): api.get(
                f"/agents/{agent}/target-state", pak=key, params={"mode": "full"} if full else {}
            ).json()
            for agent, key in agents
            for full in (False, True)
        }
    assert len(expected[(agents[0][0], True)]) == 2
    assert len(expected[(agents[0][0], False)]) == 1  # reported one: left out
    assert len(expected[(agents[2][0], True)]) == 1

    async def poll_together() -> list[str | None]:
        pool = make_pool(DatabaseSettings(url=database_url, pool_min_size=1, pool_max_size=2))
        await pool.open(wait=True)
        try:
            reader = TargetStateReader(pool)
            polls = [
                reader.own(agent, pak.hash_pak(key), full)
                for agent, key in agents
                for full in (False, True)
            ]
            polls.append(reader.own(agents[0][0], pak.hash_pak(agents[1][1]), True))  # wrong PAK
            polls.append(reader.own(uuid4(), pak.hash_pak(agents[1][1]), True))  # unknown agent
            return await asyncio.gather(*polls)
        finally:
            await pool.close()

    answers = asyncio.run(poll_together())
    assert answers[-2:] == [None, None]
    bodies = iter(answers)
    for agent, _ in agents:
        for full in (False, True):
            answer = next(bodies)
            assert answer is not None
            assert json.loads(answer) == expected[(agent, full)]
