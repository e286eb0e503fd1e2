"""Alert rules (promtool), the charts' PrometheusRule and dashboard ConfigMap, CRD validation."""

from __future__ import annotations

import json

import pytest
import yaml

from brokkr_dev.charts import lint as charts
from brokkr_dev.monitoring import dashboards
from brokkr_dev.monitoring import rules as monitoring
from tests.charts.render import AGENT, AGENT_REQUIRED, BROKER, render

pytestmark = pytest.mark.charts


def test_promtool_checks_the_rules_and_runs_every_alert_test():
    said: list[str] = []
    monitoring.check(log=said.append)
    assert said == [
        "promtool check rules brokkr-broker.rules.yaml brokkr-agent.rules.yaml: ok",
        "promtool test rules brokkr.rules.test.yaml: ok",
    ]


def test_promtool_fails_an_alert_test_that_expects_the_wrong_thing(tmp_path):
    """The rule tests can fail: an alert expected too early is reported."""
    tests = yaml.safe_load(monitoring.RULE_TESTS.read_text())
    tests["rule_files"] = [str(c.rules) for c in monitoring.COMPONENTS]
    first = tests["tests"][0]["alert_rule_test"][0]  # BrokkrBrokerDown at 3m: none yet
    first["exp_alerts"] = [{"exp_labels": {"severity": "critical", "job": "brokkr-broker"}}]
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(yaml.safe_dump(tests))
    done = monitoring.promtool(["test", "rules", str(broken)])
    assert done.returncode != 0 and "BrokkrBrokerDown" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("chart", "base", "monitor"),
    [(BROKER, {}, "serviceMonitor"), (AGENT, AGENT_REQUIRED, "podMonitor")],
    ids=["broker", "agent"],
)
def test_monitoring_resources_are_opt_in(chart, base, monitor):
    kinds = render(chart, base).kinds()
    assert "PrometheusRule" not in kinds and "ServiceMonitor" not in kinds
    enabled = {
        **base,
        "metrics": {
            monitor: {"enabled": True},
            "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
            "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Brokkr"}},
        },
    }
    manifests = render(chart, enabled, release="edge")
    component = next(c for c in monitoring.COMPONENTS if c.chart == chart.name)

    rule = manifests.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prom"
    shipped = monitoring.load_rules(component.rules)
    assert rule["spec"] == {"groups": shipped["groups"]}  # the same rules as the plain file

    monitor_obj = manifests.one("ServiceMonitor" if monitor == "serviceMonitor" else "PodMonitor")
    endpoints = monitor_obj["spec"].get("endpoints") or monitor_obj["spec"]["podMetricsEndpoints"]
    relabel = endpoints[0]["relabelings"]
    assert {"targetLabel": "job", "replacement": chart.name} in relabel

    config_map = manifests.one("ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Brokkr"}
    ((name, text),) = config_map["data"].items()
    assert name == f"{component.dashboard}.json"
    assert json.loads(text) == dashboards.model(dashboards.DASHBOARDS[component.dashboard])


def test_kubeconform_validates_monitoring_resources_against_the_operator_crds():
    manifests = charts.render(BROKER, [BROKER.scenario("production")])
    assert "kind: PrometheusRule" in manifests and "kind: ServiceMonitor" in manifests
    assert charts.kubeconform(manifests, charts.KUBE_VERSIONS[-1]) is None
    broken = manifests.replace("  groups:\n", "  groupz:\n", 1)
    failure = charts.kubeconform(broken, charts.KUBE_VERSIONS[-1])
    assert failure is not None and "groupz" in failure
    wrong = manifests.replace("      scrapeTimeout: 10s\n", "      scrapeTimeout: 10 seconds\n", 1)
    failure = charts.kubeconform(wrong, charts.KUBE_VERSIONS[-1])
    assert failure is not None and "ServiceMonitor" in failure
