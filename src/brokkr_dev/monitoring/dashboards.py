"""The Grafana dashboards for the broker and the agents, written as data.

`render(name)` returns the dashboard JSON text that `invoke charts.generate` writes to
monitoring/dashboards/ (and copies into the charts). Every query names the job the
charts' monitors set (`brokkr-broker`, `brokkr-agent`); the e2e test runs each of
them against a real Prometheus scraping the real services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BROKER = 'job="brokkr-broker"'
API = 'job="brokkr-broker",route=~"/api/.*"'
AGENT = 'job="brokkr-agent"'


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel and its legend."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A time-series panel: title, unit (Grafana unit id) and its queries."""

    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: title, stable uid, and its panels in reading order (two per row)."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _quantiles(metric: str, selector: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q / 100:g}, sum by (le) (rate({metric}_bucket{{{selector}}}[5m])))",
            f"p{q}",
        )
        for q in (50, 90, 99)
    )


BROKER_DASHBOARD = Dashboard(
    uid="brokkr-broker",
    title="Brokkr / Broker",
    description="Broker API traffic, errors and latency; fleet, database and readiness.",
    panels=(
        Panel(
            "API requests per second by route",
            "reqps",
            (
                Query(
                    f"sum by (route) (rate(brokkr_http_requests_total{{{BROKER}}}[5m]))",
                    "{{route}}",
                ),
            ),
        ),
        Panel(
            "Responses per second by status",
            "reqps",
            (
                Query(
                    f"sum by (status) (rate(brokkr_http_requests_total{{{BROKER}}}[5m]))",
                    "{{status}}",
                ),
            ),
        ),
        Panel(
            "API 5xx share (objective: 99.9% succeed)",
            "percentunit",
            (
                Query(
                    f'(sum(rate(brokkr_http_requests_total{{{API},status=~"5.."}}[5m])) or vector(0))'
                    f" / sum(rate(brokkr_http_requests_total{{{API}}}[5m]))",
                    "5xx share",
                ),
            ),
        ),
        Panel(
            "API latency quantiles (objective: 99% within 0.5 s)",
            "s",
            _quantiles("brokkr_http_request_duration_seconds", API),
        ),
        Panel(
            "API p99 latency by route",
            "s",
            (
                Query(
                    "histogram_quantile(0.99, sum by (le, route) "
                    f"(rate(brokkr_http_request_duration_seconds_bucket{{{API}}}[5m])))",
                    "{{route}}",
                ),
            ),
        ),
        Panel(
            "Agents by status",
            "short",
            (Query(f"max by (status) (brokkr_agents{{{BROKER}}})", "{{status}}"),),
        ),
        Panel(
            "Agents by heartbeat",
            "short",
            (
                Query(
                    f'max(brokkr_agents_heartbeat_within_seconds{{{BROKER},le="60"}})',
                    "within 60 s",
                ),
                Query(
                    f'max(brokkr_agents_heartbeat_within_seconds{{{BROKER},le="+Inf"}})'
                    f' - max(brokkr_agents_heartbeat_within_seconds{{{BROKER},le="300"}})',
                    "silent > 5 min",
                ),
                Query(f"max(brokkr_agents_without_heartbeat{{{BROKER}}})", "never"),
            ),
            "Counts, not one series per agent: cheap with 10,000 agents.",
        ),
        Panel(
            "Oldest agent heartbeat",
            "s",
            (Query(f"max(brokkr_agent_heartbeat_age_max_seconds{{{BROKER}}})", "age"),),
        ),
        Panel(
            "Readiness and database reachability",
            "short",
            (
                Query(f"brokkr_ready{{{BROKER}}}", "ready {{instance}}"),
                Query(f"brokkr_database_up{{{BROKER}}}", "database {{instance}}"),
            ),
        ),
        Panel(
            "Database pool connections",
            "short",
            (
                Query(f"sum by (state) (brokkr_db_pool_connections{{{BROKER}}})", "{{state}}"),
                Query(f"sum(brokkr_db_pool_max_connections{{{BROKER}}})", "max"),
                Query(f"sum(brokkr_db_pool_requests_waiting{{{BROKER}}})", "waiting"),
            ),
        ),
        Panel(
            "Database errors per second",
            "ops",
            (
                Query(
                    f"sum(rate(brokkr_db_pool_request_errors_total{{{BROKER}}}[5m]))",
                    "no connection in time",
                ),
                Query(
                    f"sum(rate(brokkr_db_pool_connection_errors_total{{{BROKER}}}[5m]))",
                    "connect failures",
                ),
                Query(
                    f"sum(rate(brokkr_db_pool_connections_lost_total{{{BROKER}}}[5m]))",
                    "connections lost",
                ),
                Query(
                    f"sum(rate(brokkr_metrics_database_errors_total{{{BROKER}}}[5m]))",
                    "metrics scrapes without database",
                ),
            ),
        ),
        Panel(
            "Stacks and deployment objects",
            "short",
            (
                Query(f"max(brokkr_stacks{{{BROKER}}})", "stacks"),
                Query(f"max(brokkr_deployment_objects{{{BROKER}}})", "deployment objects"),
            ),
        ),
    ),
)

AGENT_DASHBOARD = Dashboard(
    uid="brokkr-agents",
    title="Brokkr / Agents",
    description="Agent reconcile cycles, applies, prunes, errors and connectivity.",
    panels=(
        Panel("Agents scraped", "short", (Query(f"up{{{AGENT}}}", "{{instance}}"),)),
        Panel(
            "Seconds since the last successful poll",
            "s",
            (
                Query(
                    f"time() - brokkr_agent_last_successful_poll_timestamp_seconds{{{AGENT}}}",
                    "{{instance}}",
                ),
            ),
        ),
        Panel(
            "Reconcile cycles per second by result",
            "ops",
            (
                Query(
                    f"sum by (result) (rate(brokkr_agent_polls_total{{{AGENT}}}[5m]))", "{{result}}"
                ),
            ),
        ),
        Panel(
            "Reconcile cycle duration",
            "s",
            _quantiles("brokkr_agent_poll_duration_seconds", AGENT),
        ),
        Panel(
            "Deployment objects applied per hour by result",
            "short",
            (
                Query(
                    f"sum by (result) (increase(brokkr_agent_applies_total{{{AGENT}}}[1h]))",
                    "{{result}}",
                ),
            ),
        ),
        Panel(
            "Apply duration per deployment object",
            "s",
            _quantiles("brokkr_agent_apply_duration_seconds", AGENT),
        ),
        Panel(
            "Kubernetes objects applied and pruned per hour",
            "short",
            (
                Query(
                    f"sum(increase(brokkr_agent_applied_objects_total{{{AGENT}}}[1h]))", "applied"
                ),
                Query(f"sum(increase(brokkr_agent_pruned_objects_total{{{AGENT}}}[1h]))", "pruned"),
            ),
        ),
        Panel(
            "Failed cycles per second by source",
            "ops",
            (
                Query(
                    f"sum by (source) (rate(brokkr_agent_errors_total{{{AGENT}}}[5m]))",
                    "{{source}}",
                ),
            ),
        ),
        Panel(
            "Broker and Kubernetes connectivity",
            "short",
            (
                Query(f"brokkr_agent_broker_connected{{{AGENT}}}", "broker {{instance}}"),
                Query(f"brokkr_agent_kubernetes_connected{{{AGENT}}}", "kubernetes {{instance}}"),
            ),
        ),
        Panel(
            "Seconds since the last heartbeat",
            "s",
            (
                Query(
                    f"time() - brokkr_agent_last_heartbeat_timestamp_seconds{{{AGENT}}}",
                    "{{instance}}",
                ),
            ),
        ),
    ),
)

DASHBOARDS = {d.uid: d for d in (BROKER_DASHBOARD, AGENT_DASHBOARD)}


def _panel(panel: Panel, index: int) -> dict[str, Any]:
    width, height = 12, 8
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": (index % 2) * width, "y": (index // 2) * height, "w": width, "h": height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for n, query in enumerate(panel.queries)
        ],
    }


def model(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard JSON model (schema version 39, Grafana 10 and later)."""
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["brokkr"],
        "editable": True,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                }
            ]
        },
        "panels": [_panel(p, i) for i, p in enumerate(dashboard.panels)],
    }


def render(uid: str) -> str:
    """The dashboard's file text."""
    return json.dumps(model(DASHBOARDS[uid]), indent=2) + "\n"


def queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target in a dashboard JSON model."""
    return [
        (panel["title"], target["expr"])
        for panel in document["panels"]
        for target in panel.get("targets", [])
    ]
