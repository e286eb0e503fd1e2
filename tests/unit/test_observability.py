"""Metrics documentation, rules and dashboard helpers, CRD schema conversion (no services)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from brokkr.agent.metrics import AgentMetrics
from brokkr.agent.state import AgentState
from brokkr.broker.metrics import Metrics
from brokkr_dev.charts import crdschemas
from brokkr_dev.monitoring import dashboards
from brokkr_dev.monitoring import rules as monitoring
from tests.fixtures import panelrender

SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def documented(section: str) -> dict[str, tuple[str, set[str]]]:
    """{metric: (type, labels)} from one metrics table of docs/observability.md."""
    text = monitoring.DOCS.read_text()
    body = text.split(f"### {section}", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([a-z_:]+)` \| (\w+) \|([^|]*)\|", body, re.M)
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def exposed(registry: Any) -> dict[str, tuple[str, set[str]]]:
    """{metric as scraped: (type, labels)} from a prometheus_client registry."""
    found = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        bucket = family.type == "histogram"
        labels = {k for s in family.samples for k in s.labels if not (bucket and k == "le")}
        found[name] = (family.type, labels)
    return found


def test_broker_metrics_table_matches_the_registry():
    metrics = Metrics()
    metrics.observe("GET", "/api/v1/agents", 200, 0.01)
    metrics.agents.labels("ACTIVE").set(1)
    metrics.heartbeat_within.labels("15").set(1)
    assert exposed(metrics.registry) == documented("Broker")


def test_agent_metrics_table_matches_the_registry():
    state = AgentState()
    assert exposed(state.metrics.registry) == documented("Agent")


def test_agent_labels_are_bounded():
    metrics = AgentMetrics(lambda: dict.fromkeys(["x"], 0.0))
    metrics.applied("WHATEVER", 0.1, applied=1, deleted=0)
    metrics.error("cosmic-ray")
    assert metrics.value("brokkr_agent_applies_total", result="other") == 1
    assert metrics.value("brokkr_agent_errors_total", source="internal") == 1


def test_broker_method_and_status_labels_are_bounded():
    metrics = Metrics()
    metrics.observe("BREW", "unmatched", 405, 0.001)
    text = metrics.registry.get_sample_value(
        "brokkr_http_requests_total", {"method": "other", "route": "unmatched", "status": "405"}
    )
    assert text == 1


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (route) (rate(a_total{job="x",route=~"/api/.*"}[5m]))', {"a_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", {"h_bucket"}),
        ('absent(up{job="b"} == 1)', {"up"}),
        ("time() - last_seconds{job='a'} > 300", {"last_seconds"}),
        ("(sum(rate(e[5m])) or vector(0)) / sum(rate(t[1h]))", {"e", "t"}),
        (
            "brokkr:ratio:rate1h > (14.4 * 0.001) and brokkr:ratio:rate5m > 1e-3",
            {
                "brokkr:ratio:rate1h",
                "brokkr:ratio:rate5m",
            },
        ),
        ('max by (job) (g{le="+Inf"}) - ignoring(le) max by (job) (g{le="300"}) > 0', {"g"}),
    ],
)
def test_metric_names_of_a_promql_expression(expr: str, names: set[str]):
    assert monitoring.metric_names(expr) == names


def test_every_queried_metric_is_exposed_or_recorded():
    """Typos in a dashboard or rule show here, before any Prometheus runs."""
    broker = Metrics()
    agent = AgentState().metrics
    known = {"up"}
    for registry in (broker.registry, agent.registry):
        for family in registry.collect():
            base = family.name + ("_total" if family.type == "counter" else "")
            known |= {base} | {family.name + s for s in SUFFIXES}
    for component in monitoring.COMPONENTS:
        for rule in monitoring.rules(monitoring.load_rules(component.rules)):
            known.add(rule.get("record", ""))
    for where, expr in monitoring.queried_expressions().items():
        assert monitoring.metric_names(expr) <= known, where


def test_every_alert_links_its_runbook_and_has_severity():
    assert monitoring.runbook_problems(monitoring.DOCS.read_text()) == []
    assert monitoring.alerts()
    for name, rule in monitoring.alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert name in monitoring.RULE_TESTS.read_text(), f"{name} has no promtool test"


def test_a_runbook_link_without_a_heading_is_reported():
    problems = monitoring.runbook_problems("# Observability\n\n### BrokkrBrokerDown\n")
    assert problems and not any(p.startswith("BrokkrBrokerDown:") for p in problems)


def test_generated_dashboards_and_chart_copies_are_current():
    assert monitoring.drift() == []


def test_fast_variant_drops_delays_and_shortens_two_thresholds_only():
    for component in monitoring.COMPONENTS:
        shipped = monitoring.load_rules(component.rules)
        fast = monitoring.fast_variant(shipped, heartbeat_seconds=15, stale_seconds=20)
        pairs = list(zip(monitoring.rules(shipped), monitoring.rules(fast), strict=True))
        assert all(f["for"] == "0s" for _, f in pairs if "alert" in f)
        for before, after in pairs:
            name = before.get("alert") or before["record"]
            if name == "BrokkrAgentHeartbeatMissing":
                assert after["expr"] == before["expr"].replace('le="300"', 'le="15"')
                assert 'le="300"' in before["expr"]
            elif name == "BrokkrAgentPollStale":
                assert after["expr"] == before["expr"].replace("> 300", "> 20")
                assert "> 300" in before["expr"]
            else:  # every other expression is loaded exactly as shipped
                assert after["expr"] == before["expr"], name
    assert any(r.get("for") == "5m" for r in monitoring.rules(shipped))  # the input is intact


def test_fast_variant_refuses_a_rule_whose_threshold_moved():
    shipped = monitoring.load_rules(monitoring.COMPONENTS[1].rules)
    stale = next(r for r in monitoring.rules(shipped) if r.get("alert") == "BrokkrAgentPollStale")
    stale["expr"] = stale["expr"].replace("> 300", "> 600")
    with pytest.raises(ValueError, match="BrokkrAgentPollStale"):
        monitoring.fast_variant(shipped)


def test_dashboards_have_unique_panel_ids_and_targets():
    for uid in dashboards.DASHBOARDS:
        document = dashboards.model(dashboards.DASHBOARDS[uid])
        ids = [p["id"] for p in document["panels"]]
        assert len(ids) == len(set(ids))
        assert all(p["targets"] for p in document["panels"])


def test_crd_conversion_closes_objects_and_maps_nullable():
    crd = {
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {
                                            "anyOf": [{"type": "integer"}, {"type": "string"}],
                                            "x-kubernetes-int-or-string": True,
                                        },
                                        "note": {"type": "string", "nullable": True},
                                        "free": {
                                            "type": "object",
                                            "properties": {"a": {"type": "string"}},
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                        "tags": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {"k": {"type": "string"}},
                                            },
                                            "x-kubernetes-list-type": "atomic",
                                        },
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        }
    }
    schemas = crdschemas.schemas_from_crd(crd)
    assert list(schemas) == ["example.com/widget_v1.json"]
    spec = schemas["example.com/widget_v1.json"]["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["note"]["type"] == ["string", "null"]
    assert "x-kubernetes-int-or-string" not in spec["properties"]["size"]
    assert "additionalProperties" not in spec["properties"]["free"]
    assert spec["properties"]["tags"]["items"]["additionalProperties"] is False
    assert "x-kubernetes-list-type" not in spec["properties"]["tags"]


def test_panel_renderer_draws_every_panel_into_a_png(tmp_path):
    document = dashboards.model(dashboards.AGENT_DASHBOARD)

    def series(expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        if "apply_duration" in expr:
            return []  # a panel without data is drawn and not counted
        values = [[start + n * step, str(n % 7)] for n in range(int((end - start) / step))]
        return [{"metric": {"instance": "a0", "result": "success"}, "values": values}]

    out = tmp_path / "agents.png"
    drawn = panelrender.render(document, series, 1_700_000_000, 1_700_003_600, out)
    assert drawn == len(document["panels"]) - 1
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_panel_legend_and_units():
    assert panelrender.legend("ready {{instance}}", {"instance": "b0"}) == "ready b0"
    assert panelrender.fmt(0.25, "s") == "250 ms"
    assert panelrender.fmt(0.0123, "percentunit") == "1.23%"
    assert panelrender.fmt(3.0, "reqps") == "3 req/s"
