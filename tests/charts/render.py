"""Render a chart with `helm template` and pick objects out of the result."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from brokkr_dev.charts import lint as charts

BROKER = charts.Chart(charts.CHARTS_DIR / "brokkr-broker")
AGENT = charts.Chart(charts.CHARTS_DIR / "brokkr-agent")
# The least the agent chart needs to render.
AGENT_REQUIRED = {
    "broker": {"url": "https://brokkr.example.com"},
    "agent": {"name": "a1", "clusterName": "c1"},
    "pak": {"existingSecret": "agent-pak"},
}


class Manifests(list[dict[str, Any]]):
    """The rendered objects, with lookups by kind and name."""

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.all(kind) if o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
        return found[0]

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every pod the chart makes: workload templates and `helm test` pods."""
        for obj in self:
            if obj["kind"] in ("Deployment", "StatefulSet"):
                yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]
            elif obj["kind"] == "Pod":
                yield obj["metadata"]["name"], obj["spec"]


def render(
    chart: charts.Chart,
    values: dict[str, Any] | None = None,
    scenario: str = "",
    *,
    release: str = "brokkr",
    namespace: str = "brokkr",
) -> Manifests:
    """Objects rendered from the chart with an optional scenario file and values on top."""
    files: list[Path] = [chart.scenario(scenario)] if scenario else []
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values or {}, handle)
        handle.flush()
        text = charts.render(
            chart, [*files, Path(handle.name)], release=release, namespace=namespace
        )
    return Manifests(d for d in yaml.safe_load_all(text) if d)


def render_error(chart: charts.Chart, values: dict[str, Any]) -> str:
    """The error message when rendering must fail."""
    try:
        render(chart, values)
    except charts.ChartError as exc:
        return str(exc)
    raise AssertionError("rendering succeeded but must fail")


def agent(values: dict[str, Any] | None = None, scenario: str = "", **where: str) -> Manifests:
    """The agent chart rendered with its required values plus the given ones.

    `where` may name the `release` and `namespace` (both default to brokkr).
    """
    merged = merge(AGENT_REQUIRED, values or {}) if not scenario else (values or {})
    return render(AGENT, merged, scenario, **where)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def env(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env entries by name (value or valueFrom)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
