"""The agent chart's `helm test` check: what makes the broker's record of an agent healthy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from brokkr.agent.registration import main, problems
from brokkr.agent.settings import AgentSettings
from brokkr_dev.base.localnet import free_port

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTINGS = AgentSettings(
    broker_url="http://broker:3000",
    pak="brokkr_abcdefgh_abcdefghijklmnopqrstuvwx",
    agent_name="a1",
    cluster_name="c1",
    polling_interval=10,
)
WHO = {"admin": False, "agent": "0b9f6a2e-5d1c-4f43-9a57-0c6f2a1d3e4b"}


def record(**changes):
    healthy = {
        "name": "a1",
        "cluster_name": "c1",
        "status": "ACTIVE",
        "last_heartbeat": (NOW - timedelta(seconds=5)).isoformat(),
        "k8s_reachable": True,
    }
    return {**healthy, **changes}


def test_an_active_agent_with_a_fresh_heartbeat_has_no_problems():
    assert problems(SETTINGS, WHO, record(), NOW) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"status": "INACTIVE"}, "status is 'INACTIVE'"),
        ({"last_heartbeat": None}, "never sent a heartbeat"),
        ({"last_heartbeat": (NOW - timedelta(seconds=61)).isoformat()}, "61 s old"),
        ({"k8s_reachable": False}, "Kubernetes API unreachable"),
        ({"name": "other"}, "belongs to agent 'other'"),
    ],
)
def test_each_unhealthy_field_is_named(changes, expected):
    found = problems(SETTINGS, WHO, record(**changes), NOW)
    assert len(found) == 1
    assert expected in found[0]


def test_a_non_agent_pak_is_refused():
    assert problems(SETTINGS, {"admin": True, "agent": None}, None, NOW) == [
        "the configured PAK is not an agent's PAK"
    ]


def test_missing_settings_exit_2_naming_the_variable(monkeypatch, capsys):
    for name in ("BROKER_URL", "PAK", "AGENT_NAME", "CLUSTER_NAME"):
        monkeypatch.delenv(f"BROKKR__AGENT__{name}", raising=False)
    monkeypatch.setenv("BROKKR__AGENT__AGENT_NAME", "a1")
    assert main() == 2
    assert "BROKKR__AGENT__" in capsys.readouterr().err


def test_an_unreachable_broker_exits_1_with_the_reason(monkeypatch, capsys):
    monkeypatch.setenv("BROKKR__AGENT__BROKER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("BROKKR__AGENT__PAK", "brokkr_abcdefgh_abcdefghijklmnopqrstuvwx")
    monkeypatch.setenv("BROKKR__AGENT__AGENT_NAME", "a1")
    monkeypatch.setenv("BROKKR__AGENT__CLUSTER_NAME", "c1")
    monkeypatch.setenv("BROKKR__AGENT__REQUEST_TIMEOUT", "2")
    assert main() == 1
    assert "broker unreachable" in capsys.readouterr().err
