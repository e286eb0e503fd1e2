"""Raw manifests for people who do not use Helm: `helm template` of both charts.

A release attaches `brokkr-broker-install.yaml` and `brokkr-agent-install.yaml`.
The release's asset list renders them with `install_manifests` from the chart
archives it published, with each image pinned by the digest it published.

The values are the charts' defaults except where a default would publish a secret:
`helm template` cannot `lookup` an earlier install, so the admin PAK and the bundled
PostgreSQL password would be minted once, at release time, and be the same for
everyone who applies the file. Both come from Secrets the operator creates first
(docs/operators/raw-manifests.md), and a rendered Secret with data is refused.
The agent has required values without defaults; the file uses documented names
that the operator registers at the broker (or edits).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from brokkr_dev.charts import lint as charts
from brokkr_dev.release import ReleaseError

NAMESPACE = "brokkr"


@dataclass(frozen=True)
class InstallManifest:
    """How one chart is rendered into `<chart>-install.yaml`."""

    chart: str
    release: str  # equal to the chart name, so objects are named just that
    values: dict[str, object]
    needs: str  # the header's "create first" instructions


INSTALL_MANIFESTS = (
    InstallManifest(
        "brokkr-broker",
        "brokkr-broker",
        {
            "admin": {"pak": {"existingSecret": "brokkr-admin"}},
            "postgresql": {"auth": {"existingSecret": "brokkr-postgresql"}},
        },
        "Secrets brokkr-admin (key pak-hash: SHA-256 hex of the PAK's last part)\n"
        "# and brokkr-postgresql (key password).",
    ),
    InstallManifest(
        "brokkr-agent",
        "brokkr-agent",
        {
            "broker": {"url": f"http://brokkr-broker.{NAMESPACE}.svc:3000", "port": 3000},
            "agent": {"name": "brokkr-agent", "clusterName": "default"},
            "pak": {"existingSecret": "brokkr-agent-pak"},
        },
        "Secret brokkr-agent-pak (key pak: the agent's PAK from the broker).\n"
        "# Register the agent at the broker as name brokkr-agent, cluster default\n"
        "# (or edit the ConfigMap brokkr-agent before applying).",
    ),
)


def header(spec: InstallManifest, version: str) -> str:
    return (
        f"# Brokkr {spec.chart} {version}: `helm template` of the chart for people who\n"
        "# do not use Helm. Apply into namespace brokkr (RBAC subjects name it):\n"
        f"#   kubectl apply --server-side -n {NAMESPACE} -f {spec.chart}-install.yaml\n"
        f"# Create first, in namespace {NAMESPACE}: {spec.needs}\n"
        "# Guide: docs/operators/raw-manifests.md\n"
    )


def secrets_with_data(rendered: str) -> list[str]:
    """Names of rendered Secrets that carry data (a credential would be published)."""
    found = []
    for document in yaml.safe_load_all(rendered):
        is_secret = bool(document) and document.get("kind") == "Secret"
        if is_secret and (document.get("data") or document.get("stringData")):
            found.append(document["metadata"]["name"])
    return found


def render(
    charts_dir: Path,
    spec: InstallManifest,
    helm: str | None = None,
    extra_values: dict[str, object] | None = None,
) -> str:
    """The install manifest of one chart (header included); `extra_values` are
    top-level keys set on top of the spec's (a release pins its images there)."""
    chart = charts_dir / spec.chart
    version = str(yaml.safe_load((chart / "Chart.yaml").read_text())["version"])
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "values.yaml"
        values.write_text(yaml.safe_dump({**spec.values, **(extra_values or {})}))
        done = charts.run(
            [
                helm or charts.tool("helm"),
                "template",
                spec.release,
                chart,
                "--namespace",
                NAMESPACE,
                "--values",
                values,
            ]
        )
    if done.returncode != 0:
        raise ReleaseError(f"helm template {spec.chart} failed: {done.stderr.strip()[-500:]}")
    leaked = secrets_with_data(done.stdout)
    if leaked:
        raise ReleaseError(
            f"{spec.chart}-install.yaml would publish Secret(s) {', '.join(leaked)} with data; "
            "set the chart's existingSecret values in INSTALL_MANIFESTS"
        )
    return header(spec, version) + done.stdout


def install_manifests(
    charts_dir: Path,
    helm: str | None = None,
    extra_values: dict[str, dict[str, object]] | None = None,
) -> list[tuple[str, str]]:
    """(file name, text) of both install manifests: the release's asset list wraps
    each into an asset. Give it the charts as stamped for the release;
    `extra_values` maps a chart name to values set on top of its spec's."""
    extra = extra_values or {}
    return [
        (f"{spec.chart}-install.yaml", render(charts_dir, spec, helm, extra.get(spec.chart)))
        for spec in INSTALL_MANIFESTS
    ]


def write_install_manifests(charts_dir: Path, out_dir: Path, helm: str | None = None) -> list[Path]:
    """Render both charts into `out_dir`; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in install_manifests(charts_dir, helm):
        target = out_dir / name
        target.write_text(text)
        written.append(target)
    return written
