"""AppArmor beside seccomp, and the agent's egress to the API server, as rendered.

appArmorProfile becomes the pod securityContext field (GA since Kubernetes 1.30; the
charts need 1.35+) on every version the charts support, never the old beta
annotation; `{}` (the default) sets none, because the kubelet refuses pods that name a
profile on nodes without AppArmor. Whether real pods run confined is a kind test
(docs/e2e.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from brokkr_dev.charts import lint as charts
from tests.charts.mutation import install_dry_run
from tests.charts.render import AGENT, AGENT_REQUIRED, BROKER, merge, render_error

pytestmark = pytest.mark.charts

ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
OLDEST = charts.KUBE_VERSIONS[0]


def pods(chart: charts.Chart, values: dict[str, Any], kube_version: str = "") -> list[Any]:
    """(annotations, pod spec) of every pod the chart makes, `helm test` pods included."""
    base = AGENT_REQUIRED if chart is AGENT else {}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(merge(base, values), handle)
        handle.flush()
        text = charts.render(chart, [Path(handle.name)], kube_version=kube_version)
    found = []
    for obj in (o for o in yaml.safe_load_all(text) if o):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            template = obj["spec"]["template"]
            found.append((template["metadata"].get("annotations") or {}, template["spec"]))
        elif obj["kind"] == "Pod":
            found.append((obj["metadata"].get("annotations") or {}, obj["spec"]))
    assert found
    return found


CHARTS = pytest.mark.parametrize("chart", [BROKER, AGENT], ids=lambda c: c.name)


@CHARTS
@pytest.mark.parametrize("kube_version", ["", OLDEST])
def test_no_apparmor_profile_is_named_by_default(chart, kube_version):
    for notes, spec in pods(chart, {}, kube_version):
        assert "appArmorProfile" not in spec["securityContext"]
        assert not [a for a in notes if a.startswith(ANNOTATION)]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


@CHARTS
@pytest.mark.parametrize(
    "profile", [{"type": "RuntimeDefault"}, {"type": "Localhost", "localhostProfile": "brokkr"}]
)
def test_the_profile_is_the_field_on_every_supported_version(chart, profile):
    for kube_version in ("", *charts.KUBE_VERSIONS):
        for notes, spec in pods(chart, {"appArmorProfile": profile}, kube_version):
            assert spec["securityContext"]["appArmorProfile"] == profile
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert not [a for a in notes if a.startswith(ANNOTATION)]


@CHARTS
def test_a_kubernetes_older_than_the_charts_claim_is_refused(chart):
    refused = r"kubeVersion: >=1\.35\.0-0 which is incompatible with Kubernetes v1\.34\.0"
    with pytest.raises(charts.ChartError, match=refused):
        pods(chart, {}, "1.34.0")


@CHARTS
@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"localhostProfile": "x"}, "appArmorProfile needs a type"),
        ({"type": "Localhost"}, "needs appArmorProfile.localhostProfile"),
        ({"type": "Unconfined"}, "value must be one of 'RuntimeDefault', 'Localhost'"),
    ],
)
def test_an_incomplete_or_unconfined_profile_is_refused_with_the_fix(chart, profile, message):
    base = AGENT_REQUIRED if chart is AGENT else {}
    assert message in render_error(chart, merge(base, {"appArmorProfile": profile}))


@CHARTS
def test_production_names_runtime_default_and_passes_each_versions_schema(chart):
    for version in charts.KUBE_VERSIONS:
        manifests = charts.render(chart, [chart.scenario("production")], kube_version=version)
        assert charts.kubeconform(manifests, version) is None, version
        assert "appArmorProfile:" in manifests, version
        assert ANNOTATION not in manifests, version


# --- the agent's egress -----------------------------------------------------------


def egress_to_api_server(values: dict[str, Any]) -> tuple[dict[str, Any], str]:
    release = install_dry_run(AGENT, merge(AGENT_REQUIRED, values))
    policy = next(o for o in release.objects if o["kind"] == "NetworkPolicy")
    return policy["spec"]["egress"][1], release.notes


def test_default_egress_is_wide_and_the_notes_say_how_to_narrow_it():
    rule, notes = egress_to_api_server({})
    assert rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert "networkPolicy.apiServerCIDRs holds 0.0.0.0/0" in notes
    assert "kubernetes.io/service-name=kubernetes" in notes


def test_narrow_egress_lists_only_the_api_server_and_the_notes_stay_quiet():
    narrow = {"apiServerCIDRs": ["172.18.0.2/32", "10.96.0.1/32"], "apiServerPorts": [6443]}
    rule, notes = egress_to_api_server({"networkPolicy": narrow})
    assert rule == {
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"ipBlock": {"cidr": "10.96.0.1/32"}}],
        "ports": [{"port": 6443, "protocol": "TCP"}],
    }
    assert "0.0.0.0/0" not in notes


def test_production_default_is_the_narrow_form():
    values = yaml.safe_load(AGENT.scenario("production").read_text())
    cidrs = values["networkPolicy"]["apiServerCIDRs"]
    assert cidrs and all(c.endswith("/32") for c in cidrs)
    rule, notes = egress_to_api_server(values)
    assert "0.0.0.0/0" not in str(rule) and "0.0.0.0/0" not in notes
