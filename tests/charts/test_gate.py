"""The validation gate's helm and kubeconform checks, run against the real tools."""

from __future__ import annotations

import pytest

from brokkr_dev import charts
from tests.charts.render import BROKER

pytestmark = pytest.mark.charts


@pytest.mark.parametrize("case", charts.bad_values(), ids=lambda c: f"{c.chart}/{c.path.stem}")
@pytest.mark.parametrize("helm", ["helm", "helm4"])
def test_bad_values_are_rejected_with_the_schema_message(case, helm):
    assert charts.check_bad_values(case, helm) is None


def test_kubeconform_accepts_the_chart_and_rejects_an_unknown_field_offline():
    manifests = charts.render(BROKER, [BROKER.scenario("production")])
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
