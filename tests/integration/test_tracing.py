"""The broker's traces against a real OTLP/HTTP receiver, and tracing that is off.

A real broker process on PostgreSQL exports to the receiver (tests/fixtures/otlp.py);
the agent's reconcile trace also goes through a real OpenTelemetry Collector
(tests/fixtures/collector.py) on its way there.
A request that arrives with a W3C traceparent gets a server span that continues it,
and the statements it runs are client spans inside that span.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from brokkr.agent.settings import load_settings
from brokkr.common.config import ConfigError
from brokkr.common.telemetry import TelemetrySettings
from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.local.services import LocalAgent, LocalBroker
from tests.fixtures.agent import broker_for_agents
from tests.fixtures.collector import debug_spans, running_collector
from tests.fixtures.otlp import Receiver, Span

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# Export within a fifth of a second instead of the SDK's 5 s batches.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(params=["receiver", "collector"])
def endpoint(request: pytest.FixtureRequest, receiver: Receiver, tmp_path: Path) -> Iterator[str]:
    """Where the services export: the receiver itself, or a real OpenTelemetry
    Collector that sends on to it (what a cluster's operators run)."""
    if request.param == "receiver":
        yield receiver.endpoint
        return
    with running_collector(receiver.endpoint, tmp_path) as collector:
        yield collector.endpoint


def list_agents_in_the_callers_trace(broker: LocalBroker) -> str:
    """GET /api/v1/agents as the admin, with a traceparent: span CALLER_SPAN of TRACE_ID.
    Returns the admin PAK it used."""
    pak = broker.admin_pak()
    response = requests.get(
        f"{broker.url}/api/v1/agents",
        headers={
            "Authorization": f"Bearer {pak}",
            "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return pak


@pytest.mark.postgres
def test_a_request_span_continues_the_callers_trace_and_holds_its_statements(
    database_url: str, receiver: Receiver, tmp_path: Path
):
    tracing = {"telemetry": {"endpoint": receiver.endpoint}}
    broker = broker_for_agents(database_url, tmp_path, extra=tracing, env=FAST_EXPORT)
    broker.start()
    try:
        pak = list_agents_in_the_callers_trace(broker)

        def request_with_statements() -> Any:
            spans = [s for s in receiver.spans() if s.trace_id == TRACE_ID]
            server = [s for s in spans if s.kind == "server"]
            if not server:
                return None
            inside = [s for s in spans if s.parent_id == server[0].span_id]
            return (server[0], inside) if inside else None

        server, inside = poll(request_with_statements, 30, "the request's spans at the receiver")
    finally:
        broker.stop()
    assert server.service == "brokkr-broker"
    assert server.parent_id == CALLER_SPAN
    assert server.name == "GET /api/v1/agents"
    assert server.attributes["http.response.status_code"] == 200
    assert all(s.attributes["db.system.name"] == "postgresql" for s in inside)
    assert all(s.kind == "client" for s in inside)
    # Statement text, never parameters: the PAK hash is bound, so it is not in a span.
    assert any("agents" in s.attributes["db.query.text"] for s in inside)
    assert not any(pak.split("_")[-1] in str(s.attributes) for s in receiver.spans())


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:PORT", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.postgres
def test_an_agent_reconcile_is_one_trace_through_the_broker_down_to_postgresql(
    database_url: str, receiver: Receiver, endpoint: str, tmp_path: Path
):
    """A real agent and broker, exporting to the receiver, directly or through a real
    collector. Nothing listens where the agent's kubeconfig points, so its Kubernetes
    call fails (refused), and the reconcile stops after talking to the broker: the
    trace still reaches PostgreSQL. With a real API server (tests/e2e/test_tracing.py)
    it also holds the applies."""
    tracing = {"telemetry": {"endpoint": endpoint}}
    broker = broker_for_agents(database_url, tmp_path, extra=tracing, env=FAST_EXPORT)
    broker.start()
    agent = None
    try:
        admin = BrokerAdmin(broker.url, broker.admin_pak())
        agent_id, pak = admin.agent("traced", "c1")
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(KUBECONFIG.replace("PORT", str(free_port())))
        # Not waited for: with no API server the agent never becomes healthy.
        agent = LocalAgent(
            {
                "agent": {
                    "broker_url": broker.url,
                    "pak": pak,
                    "agent_name": "traced",
                    "cluster_name": "c1",
                    "kubeconfig": kubeconfig,
                    "polling_interval": 1,
                },
                **tracing,
            },
            log_file=tmp_path / "agent.log",
            env=FAST_EXPORT,
        ).start(wait=False)

        poll(lambda: agent.get("/healthz").status_code == 200, 30, "the agent's health server")
        # A readiness probe calls the Kubernetes API outside any reconcile.
        probed_at = time.time_ns()
        assert agent.get("/readyz").status_code == 503

        def reconcile_reaching_the_database() -> Any:
            spans = receiver.spans()
            by_id = {s.span_id: s for s in spans}
            for db in (s for s in spans if s.attributes.get("db.system.name") == "postgresql"):
                chain = [db]
                while chain[-1].parent_id in by_id:
                    chain.append(by_id[chain[-1].parent_id])
                # a reconcile begun after the probe: the probe's spans, had it made
                # any, ended earlier and were exported with or before this one
                if chain[-1].name == "reconcile" and chain[-1].start_ns > probed_at:
                    return chain, spans
            return None

        chain, spans = poll(
            reconcile_reaching_the_database, 60, "a reconcile trace down to a statement"
        )
    finally:
        if agent is not None:
            agent.stop()
        broker.stop()
    db, request, call, reconcile = chain[0], chain[1], chain[2], chain[-1]
    assert len({s.trace_id for s in chain}) == 1
    assert (reconcile.service, reconcile.attributes["brokkr.agent.id"]) == (
        "brokkr-agent",
        agent_id,
    )
    assert (call.service, call.kind) == ("brokkr-agent", "client")
    assert call.name.startswith("broker ")
    assert (request.service, request.kind) == ("brokkr-broker", "server")
    assert request.name.startswith(("POST /api/v1/agents/", "GET /api/v1/agents/"))
    assert (db.service, db.kind) == ("brokkr-broker", "client")
    kube = [
        s for s in spans if s.parent_id == reconcile.span_id and s.name.startswith("kubernetes ")
    ]
    assert kube and kube[0].attributes["url.path"] == "/version"
    # The probe's Kubernetes call started no trace of its own.
    assert all(s.parent_id for s in spans if s.name.startswith("kubernetes "))


def scalar_attributes(span: Span) -> Span:
    """The span with only the attribute values the debug output can be read back to."""
    kept = {k: v for k, v in span.attributes.items() if isinstance(v, (str, int, float, bool))}
    return dataclasses.replace(span, attributes=kept)


@pytest.mark.postgres
def test_the_collectors_debug_output_reads_back_as_the_spans_it_forwarded(
    database_url: str, receiver: Receiver, tmp_path: Path
):
    """The kind test reads spans from the collector pod's log (`debug_spans`): here
    the same collector both prints and forwards them, and the two agree field for
    field, ids, kinds, start times and attributes."""
    with running_collector(receiver.endpoint, tmp_path, debug=True) as collector:
        tracing = {"telemetry": {"endpoint": collector.endpoint}}
        broker = broker_for_agents(database_url, tmp_path, extra=tracing, env=FAST_EXPORT)
        broker.start()
        try:
            list_agents_in_the_callers_trace(broker)
        finally:
            broker.stop()

        def both() -> tuple[dict[str, Span], dict[str, Span]] | None:
            sent = {s.span_id: scalar_attributes(s) for s in receiver.spans()}
            printed = {s.span_id: s for s in debug_spans(collector.log.read_text())}
            statements = [s for s in sent.values() if s.trace_id == TRACE_ID and s.kind == "client"]
            return (sent, printed) if statements and sent.keys() <= printed.keys() else None

        sent, printed = poll(both, 30, "the request's spans forwarded and printed")
    assert {key: printed[key] for key in sent} == sent
    assert any(s.attributes.get("db.system.name") == "postgresql" for s in printed.values())


def test_tracing_off_imports_no_opentelemetry():
    """Off (the default), neither service loads OpenTelemetry: no import, no cost."""
    code = (
        "import sys\n"
        "from brokkr.agent import cli as agent_cli, service\n"
        "from brokkr.broker import cli as broker_cli, server, app\n"
        "from brokkr.broker.db import pool\n"
        "from brokkr.common import telemetry\n"
        "assert telemetry.setup(telemetry.TelemetrySettings(), 'x') is False\n"
        "assert not telemetry.enabled()\n"
        "with telemetry.span('nothing') as span:\n"
        "    assert span is None\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("endpoint", ["collector:4318", "grpc://collector:4317"])
def test_an_endpoint_that_is_not_an_http_url_is_refused_with_the_fix(endpoint):
    environ = {
        "BROKKR__AGENT__BROKER_URL": "http://127.0.0.1:3000",
        "BROKKR__AGENT__PAK": "brokkr_abcdefgh_abcdefghijklmnopqrstuvwx",
        "BROKKR__AGENT__AGENT_NAME": "a",
        "BROKKR__AGENT__CLUSTER_NAME": "c",
        "BROKKR__TELEMETRY__ENDPOINT": endpoint,
    }
    with pytest.raises(ConfigError, match=r"BROKKR__TELEMETRY__ENDPOINT to http\(s\)://host:4318"):
        load_settings(environ)


def test_the_endpoint_gets_the_traces_path_once():
    assert TelemetrySettings(endpoint="http://c:4318/").endpoint == "http://c:4318"
