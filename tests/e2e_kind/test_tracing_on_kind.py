"""Traces on kind (issue 26.5): the charts' `telemetry.*` values send both services'
spans to a real OpenTelemetry Collector in the cluster, and one agent reconcile is
read back from it as one trace, through the broker's request down to PostgreSQL.

The collector is the pinned one (tools.toml [otelcol]), built statically for the
node's architecture into an image of its own (tests/fixtures/collector.py), run as a
pod of the restricted profile in a namespace of its own behind a Service. It prints
every span it receives with its `debug` exporter; the test reads them from the pod's
log (`debug_spans`, which tests/integration/test_tracing.py checks against what the
same collector forwards over OTLP).

Both charts run with their NetworkPolicies on and `telemetry.cidr` narrowed to the
collector pod's address, so the spans pass the egress rule the charts render for
the collector, and only that one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.local.broker_admin import BrokerAdmin
from tests.e2e_kind.conftest import (
    AGENT_CHART,
    BROKER_CHART,
    READY_TIMEOUT,
    Cluster,
    KindImages,
    PortForward,
    agent_values,
    broker_values,
    helm_wait,
    ready,
    remove_namespace,
    restricted_namespace,
    restricted_spec,
    write_values,
)
from tests.fixtures import collector
from tests.fixtures.kind import KindCluster
from tests.fixtures.otlp import Span, reconcile_with_database

pytestmark = pytest.mark.kind

OTEL_NAMESPACE = "brokkr-otel"
NAMESPACE = "brokkr-traced"
APPS = "traced-apps"  # where the traced stack's objects go
BROKER_RELEASE, AGENT_RELEASE = "traced", "tracing"
BROKER = f"{BROKER_RELEASE}-brokkr-broker"
COLLECTOR = "otelcol"
CONFIG_DIR = "/etc/otelcol"
# The agent's SDK batches spans for up to 5 s, the collector for 200 ms; a reconcile
# every 2 s: a trace shows up well within this.
TRACE_TIMEOUT = 120


@dataclass(frozen=True)
class RunningCollector:
    pod: str
    address: str  # the pod's IP
    endpoint: str  # what the charts' telemetry.endpoint is set to

    def spans(self, cluster: Cluster) -> list[Span]:
        path = f"/api/v1/namespaces/{OTEL_NAMESPACE}/pods/{self.pod}/log"
        return collector.debug_spans(cluster.api.request("GET", path).text)


def collector_pod(image: str) -> dict[str, Any]:
    spec = restricted_spec(image, [])
    (container,) = spec["containers"]
    container.pop("command")
    container.update(
        name=COLLECTOR,
        args=["--config", f"file:{CONFIG_DIR}/config.yaml"],
        ports=[{"name": "otlp-http", "containerPort": collector.OTLP_HTTP_PORT}],
        readinessProbe={"tcpSocket": {"port": collector.OTLP_HTTP_PORT}, "periodSeconds": 1},
        volumeMounts=[{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    )
    spec["volumes"] = [{"name": "config", "configMap": {"name": COLLECTOR}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": COLLECTOR, "labels": {"app.kubernetes.io/name": COLLECTOR}},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def running_collector(
    cluster: Cluster,
    kind_cluster: KindCluster,
    kind_images: KindImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningCollector]:
    """The collector as a pod with a Service, in its own restricted namespace."""
    started = time.monotonic()
    image, archive = collector.image_archive(kind_images.arch, tmp_path_factory.mktemp("otelcol"))
    kind_cluster.load_images([archive])
    e2e_kind.record("collector_image_s", time.monotonic() - started)
    restricted_namespace(cluster, OTEL_NAMESPACE)
    base = f"/api/v1/namespaces/{OTEL_NAMESPACE}"
    try:
        listen = f"0.0.0.0:{collector.OTLP_HTTP_PORT}"
        cluster.api.create(
            f"{base}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": COLLECTOR},
                "data": {"config.yaml": collector.config(listen, debug=True)},
            },
        )
        cluster.api.create(f"{base}/pods", collector_pod(image))
        cluster.api.create(
            f"{base}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": COLLECTOR},
                "spec": {
                    "selector": {"app.kubernetes.io/name": COLLECTOR},
                    "ports": [{"name": "otlp-http", "port": collector.OTLP_HTTP_PORT}],
                },
            },
        )
        pod = poll(
            lambda: (
                (found := cluster.api.get(f"{base}/pods/{COLLECTOR}")) and ready(found) and found
            ),
            READY_TIMEOUT,
            "the collector pod Ready",
        )
        yield RunningCollector(
            COLLECTOR,
            pod["status"]["podIP"],
            f"http://{COLLECTOR}.{OTEL_NAMESPACE}.svc:{collector.OTLP_HTTP_PORT}",
        )
    finally:
        remove_namespace(cluster, OTEL_NAMESPACE)


@dataclass
class Traced:
    admin: BrokerAdmin
    agent_id: str


@pytest.fixture(scope="module")
def traced(
    cluster: Cluster,
    kind_images: KindImages,
    running_collector: RunningCollector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Traced]:
    """Both charts with tracing on, exporting to the collector, egress narrowed to it."""
    work = tmp_path_factory.mktemp("traced")
    telemetry = {"endpoint": running_collector.endpoint, "cidr": f"{running_collector.address}/32"}
    restricted_namespace(cluster, NAMESPACE)
    forward = None
    try:
        cluster.helm(
            "install", BROKER_RELEASE, BROKER_CHART, *helm_wait(NAMESPACE),
            "--values", write_values(work, "broker", {**broker_values(kind_images), "telemetry": telemetry}),
        )  # fmt: skip
        forward = PortForward(cluster, NAMESPACE, BROKER, 3000)
        admin = BrokerAdmin(forward.url, cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"])
        agent_id, pak = admin.agent("traced-agent", "traced")
        agent = {
            **agent_values(kind_images, pak),
            "broker": {"url": f"http://{BROKER}.{NAMESPACE}.svc:3000", "port": 3000},
            "agent": {"name": "traced-agent", "clusterName": "traced", "pollingInterval": 2},
            "telemetry": telemetry,
        }
        cluster.helm(
            "install", AGENT_RELEASE, AGENT_CHART, *helm_wait(NAMESPACE),
            "--values", write_values(work, "agent", agent),
        )  # fmt: skip
        cluster.api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS}},
        )
        yield Traced(admin, agent_id)
    finally:
        if forward is not None:
            forward.stop()
        for release in (AGENT_RELEASE, BROKER_RELEASE):
            cluster.helm("uninstall", release, "--namespace", NAMESPACE, "--wait", check=False)
        remove_namespace(cluster, NAMESPACE)
        cluster.api.request("DELETE", f"/api/v1/namespaces/{APPS}")


def test_a_reconcile_on_kind_is_one_trace_at_the_collector_down_to_postgresql(
    cluster: Cluster, traced: Traced, running_collector: RunningCollector
):
    admin = traced.admin
    stack = admin.targeted_stack(f"traced-{secrets.token_hex(3)}", traced.agent_id)
    name = f"traced-{secrets.token_hex(3)}"
    manifest = (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {APPS}\n"
        "data:\n  traced: 'yes'\n"
    )
    started = time.monotonic()
    deployed = admin.deploy(stack, manifest)
    event = poll(
        lambda: admin.event_for(traced.agent_id, deployed["id"]),
        TRACE_TIMEOUT,
        "the agent's event for the traced deployment object",
    )
    assert event["status"] == "SUCCESS", event

    def the_apply_traced() -> dict[str, Span] | None:
        """The reconcile that applied our ConfigMap, with its broker request and a
        statement below that, once the collector has printed all of them."""
        spans = running_collector.spans(cluster)
        applied = f"/namespaces/{APPS}/configmaps/{name}"
        traces = {
            s.trace_id for s in spans if str(s.attributes.get("url.path", "")).endswith(applied)
        }
        return reconcile_with_database([s for s in spans if s.trace_id in traces])

    found = poll(the_apply_traced, TRACE_TIMEOUT, "the apply's trace at the collector")
    e2e_kind.record("trace_at_collector_s", time.monotonic() - started)
    spans = running_collector.spans(cluster)
    assert {s.trace_id for s in found.values()} == {found["reconcile"].trace_id}
    assert found["reconcile"].attributes["brokkr.agent.id"] == traced.agent_id
    assert found["kube"].attributes["url.path"].endswith(f"/configmaps/{name}")
    request = found["request"]
    caller = next(s for s in spans if s.span_id == request.parent_id)
    assert (caller.service, caller.kind) == ("brokkr-agent", "client")
    assert request.attributes["http.route"].startswith("/api/v1/agents/")
    assert (found["db"].service, found["db"].kind) == ("brokkr-broker", "client")
