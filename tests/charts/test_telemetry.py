"""The charts' telemetry values reach the services' BROKKR__TELEMETRY__* settings.

Off by default: no setting and no egress rule. With an endpoint, the ConfigMap holds
settings that the service itself accepts (loaded here with its own settings model)
and the NetworkPolicy lets the pods reach the collector's port.
"""

from __future__ import annotations

from typing import Any

import pytest

from brokkr.agent.settings import load_settings as agent_settings
from brokkr.broker.settings import load_settings as broker_settings
from tests.charts.mutation import install_dry_run
from tests.charts.render import AGENT, AGENT_REQUIRED, BROKER, merge

pytestmark = pytest.mark.charts

CHARTS = pytest.mark.parametrize("chart", [BROKER, AGENT], ids=lambda c: c.name)


def rendered(chart: Any, telemetry: dict[str, Any]) -> tuple[dict[str, str], list[Any]]:
    """The main ConfigMap's data and the pods' NetworkPolicy egress rules."""
    base = AGENT_REQUIRED if chart is AGENT else {}
    objects = install_dry_run(chart, merge(base, {"telemetry": telemetry})).objects
    config = next(o for o in objects if o["kind"] == "ConfigMap" and "data" in o)["data"]
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
    return config, policy["spec"]["egress"]


def collector_rules(egress: list[Any], port: int) -> list[Any]:
    return [r for r in egress if r.get("ports") == [{"port": port, "protocol": "TCP"}]]


@CHARTS
def test_tracing_is_off_by_default(chart):
    config, egress = rendered(chart, {})
    assert not [k for k in config if k.startswith("BROKKR__TELEMETRY__")]
    assert not collector_rules(egress, 4318)


@CHARTS
def test_an_endpoint_turns_tracing_on_and_opens_egress_to_the_collector(chart):
    telemetry = {
        "endpoint": "http://otel-collector.observability:4318",
        "serviceName": "brokkr-eu",
        "sampleRatio": 0.25,
        "cidr": "10.40.0.0/16",
    }
    config, egress = rendered(chart, telemetry)
    assert {k: v for k, v in config.items() if k.startswith("BROKKR__TELEMETRY__")} == {
        "BROKKR__TELEMETRY__ENDPOINT": "http://otel-collector.observability:4318",
        "BROKKR__TELEMETRY__SERVICE_NAME": "brokkr-eu",
        "BROKKR__TELEMETRY__SAMPLE_RATIO": "0.25",
    }
    assert collector_rules(egress, 4318) == [
        {
            "to": [{"ipBlock": {"cidr": "10.40.0.0/16"}}],
            "ports": [{"port": 4318, "protocol": "TCP"}],
        }
    ]
    # The service accepts exactly these settings (its own model, its own errors).
    environ = dict(config)
    if chart is AGENT:
        environ["BROKKR__AGENT__PAK"] = "brokkr_abcdefgh_abcdefghijklmnopqrstuvwx"
        settings = agent_settings(environ).telemetry
    else:
        environ["BROKKR__DATABASE__PASSWORD"] = "x"
        settings = broker_settings(environ).telemetry
    assert settings.endpoint == "http://otel-collector.observability:4318"
    assert (settings.service_name, settings.sample_ratio) == ("brokkr-eu", 0.25)


@CHARTS
def test_an_https_endpoint_without_a_port_opens_443(chart):
    _, egress = rendered(chart, {"endpoint": "https://otlp.example.com"})
    assert collector_rules(egress, 443)
