"""Render every chart for scanning: once per values file and once with the minimal values.

Scanners' own Helm support skips a chart that does not render (Checkov did so
silently with missing required values), so we render with helm ourselves and
scan plain manifests. A chart that does not render is an error, never a skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from brokkr_dev.base import paths
from brokkr_dev.charts import lint as charts

# The least each chart needs to render (its required values); a chart not listed
# needs none.
MINIMAL_VALUES_DIR = paths.REPO_ROOT / "security" / "minimal-values"
NAMESPACE = "brokkr-scan"  # rendered objects carry a namespace, as installed ones do
MINIMAL = "minimal"
# Kinds that live outside namespaces; every other object gets the release namespace.
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}


def with_namespace(text: str, namespace: str) -> str:
    """The manifests as installed: namespaced objects carry the release namespace.

    Helm sets it at install time (like `kubectl apply -n`); `helm template` leaves
    it out unless a template writes it, and scanners would then flag "default".
    """
    documents = [d for d in yaml.safe_load_all(text) if d]
    for document in documents:
        if document.get("kind") not in CLUSTER_SCOPED:
            document.setdefault("metadata", {}).setdefault("namespace", namespace)
    return yaml.safe_dump_all(documents, sort_keys=False)


@dataclass(frozen=True)
class Rendering:
    """One chart rendered with one values file: the target name and where it went."""

    target: str  # e.g. brokkr-agent/production
    path: Path | None  # None when rendering failed
    problem: str | None = None


def scenarios(chart: charts.Chart) -> list[tuple[str, list[Path]]]:
    """(name, values files) for each values/*.yaml of the chart, then the minimal values."""
    minimal = MINIMAL_VALUES_DIR / f"{chart.name}.yaml"
    base = [minimal] if minimal.exists() else []
    found = sorted((chart.path / "values").glob("*.yaml"))
    return [(MINIMAL, base)] + [(f.stem, [f]) for f in found]


def render_all(
    out_dir: Path, chart_list: list[charts.Chart] | None = None, helm: str = "helm"
) -> list[Rendering]:
    """Render every chart scenario into out_dir/<chart>/<scenario>.yaml."""
    renderings = []
    for chart in charts.find_charts() if chart_list is None else chart_list:
        for name, values in scenarios(chart):
            target = f"{chart.name}/{name}"
            destination = out_dir / chart.name / f"{name}.yaml"
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                text = charts.render(
                    chart, values, helm=helm, release="brokkr", namespace=NAMESPACE
                )
            except charts.ChartError as exc:
                renderings.append(Rendering(target, None, f"did not render: {exc}"))
                continue
            except OSError as exc:
                renderings.append(Rendering(target, None, f"helm could not run: {exc}"))
                continue
            if not text.strip():
                renderings.append(Rendering(target, None, "rendered no objects"))
                continue
            destination.write_text(with_namespace(text, NAMESPACE))
            renderings.append(Rendering(target, destination))
    return renderings
