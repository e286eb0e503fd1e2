"""The validation gate's helm and kubeconform checks, run against the real tools."""

from __future__ import annotations

import os
import subprocess

import pytest

from brokkr_dev.charts import lint as charts
from tests.charts.render import AGENT, BROKER

pytestmark = pytest.mark.charts


@pytest.mark.parametrize("case", charts.bad_values(), ids=lambda c: f"{c.chart}/{c.path.stem}")
@pytest.mark.parametrize("helm", ["helm", "helm4"])
def test_bad_values_are_rejected_with_the_schema_message(case, helm):
    assert charts.check_bad_values(case, helm) is None


def test_kubeconform_accepts_the_chart_and_rejects_an_unknown_field_offline():
    manifests = charts.render(
        BROKER, [BROKER.scenario("production")], kube_version=charts.KUBE_VERSIONS[0]
    )
    assert charts.kubeconform(manifests, charts.KUBE_VERSIONS[0]) is None
    broken = manifests.replace(
        "revisionHistoryLimit: 5", "revisionHistoryLimit: 5\n  bogusField: 1", 1
    )
    failure = charts.kubeconform(broken, charts.KUBE_VERSIONS[0])
    assert failure is not None and "additional properties 'bogusField' not allowed" in failure


@pytest.mark.parametrize("scenario", charts.SCENARIOS)
@pytest.mark.parametrize("chart", charts.find_charts(), ids=lambda c: c.name)
def test_rendered_scenarios_are_tidy(chart, scenario):
    """No blank or trailing-space lines: a sign of a template's whitespace going astray."""
    manifests = charts.render(chart, [chart.scenario(scenario)])
    untidy = [line for line in manifests.splitlines() if line != line.rstrip()]
    assert untidy == []


def _notes(chart: charts.Chart, *args: str) -> str:
    """NOTES.txt as `helm install` prints it. helm 4 renders it offline with
    --dry-run=client (helm 3 still wants a cluster); KUBECONFIG points nowhere."""
    done = subprocess.run(
        [
            charts.tool("helm4"),
            "install",
            "brokkr",
            str(chart.path),
            "--dry-run=client",
            "--namespace",
            "brokkr",
            *args,
        ],
        env={**os.environ, "KUBECONFIG": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=charts.TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("NOTES:", 1)[1]


def test_broker_notes_tell_how_to_read_the_pak_and_create_an_agent():
    notes = _notes(BROKER)
    assert "get secret brokkr-brokkr-broker-admin" in notes
    assert "/api/v1/agents" in notes
    assert "your own admin Secret" not in notes
    own = _notes(BROKER, "--set", "admin.pak.existingSecret=mine")
    assert "your own admin Secret (mine)" in own
    assert "get secret" not in own


def test_agent_notes_name_the_scope_and_warn_about_wildcards():
    scenario = str(AGENT.scenario("development"))
    assert "objects in namespace brokkr only" in _notes(AGENT, "-f", scenario)
    wide = _notes(
        AGENT, "-f", scenario, "--set", "rbac.scope=cluster,rbac.allowWildcardAccess=true"
    )
    assert "WARNING: rbac.allowWildcardAccess is on" in wide
