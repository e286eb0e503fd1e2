"""Traces end to end: a real agent and broker export OTLP to a real receiver.

One trace must run from the agent's reconcile, through its Kubernetes calls and its
call to the broker, into the broker's request span and down to a PostgreSQL
statement: the trace context crosses the process boundary in `traceparent`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.local.services import LocalAgent, LocalBroker, merged
from tests.e2e.test_agent import Setup, stack_v1
from tests.fixtures.agent import broker_for_agents
from tests.fixtures.otlp import Receiver, reconcile_with_database

pytestmark = [pytest.mark.postgres, pytest.mark.k8s, pytest.mark.slow]

# Export within a fifth of a second instead of the SDK's 5 s batches.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def traced_broker(
    postgres_server: Any, receiver: Receiver, tmp_path: Path
) -> Iterator[LocalBroker]:
    name = f"tracing_{secrets.token_hex(4)}"
    postgres_server.psql(f"CREATE DATABASE {name}")
    tracing = {"telemetry": {"endpoint": receiver.endpoint}}
    broker = broker_for_agents(
        postgres_server.dsn(name), tmp_path / "broker", extra=tracing, env=FAST_EXPORT
    )
    broker.start()
    yield broker
    broker.stop()
    postgres_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_reconcile_is_traced_through_the_broker_down_to_postgresql(
    traced_broker: LocalBroker, receiver: Receiver, k8s_cluster: Any, tmp_path: Path
):
    admin = BrokerAdmin(traced_broker.url, traced_broker.admin_pak())
    setup = Setup(admin, traced_broker, Path(k8s_cluster.kubeconfig), tmp_path)
    try:
        agent = LocalAgent(
            merged(setup.settings(), {"telemetry": {"endpoint": receiver.endpoint}}),
            log_file=setup.tmp / "agent.log",
            env=FAST_EXPORT,
        )
        setup.agents.append(agent)
        agent.start()  # waits until healthy: registered, cluster reachable
        _, deployment = setup.stack(stack_v1(f"trace-{secrets.token_hex(3)}"))
        assert setup.event(deployment)["status"] == "SUCCESS"
        found = poll(
            lambda: reconcile_with_database(receiver.spans()),
            30,
            "a reconcile trace reaching a database span at the receiver",
        )
    finally:
        setup.stop_all()
    trace = found["reconcile"].trace_id
    assert {s.trace_id for s in found.values()} == {trace}
    request = found["request"]
    # The broker's span continues the agent's client span (traceparent crossed over).
    caller = next(s for s in receiver.spans() if s.span_id == request.parent_id)
    assert (caller.service, caller.kind) == ("brokkr-agent", "client")
    assert request.attributes["http.route"].startswith("/api/v1/agents/")
    assert found["db"].kind == "client"
    assert found["db"].attributes["db.query.text"].split()[0].upper() in {
        "SELECT",
        "INSERT",
        "UPDATE",
        "WITH",
    }
