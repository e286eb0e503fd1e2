"""The launchers' environment: settings rendered as BROKKR__ variables, names checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from brokkr.broker.settings import Settings as BrokerModel
from brokkr_dev.local.services import LocalAgent, LocalBroker, ServiceError, merged, settings_env


def test_settings_become_brokkr_variables_nested_sections_included():
    env = settings_env(
        BrokerModel,
        {
            "database": {"url": SecretStr("postgresql://db/brokkr"), "pool_max_size": 30},
            "broker": {"workers": 2, "tls": {"enabled": True, "cert_file": Path("/c.crt")}},
            "log": {"format": "json", "level": None},
        },
    )
    assert env == {
        "BROKKR__DATABASE__URL": "postgresql://db/brokkr",
        "BROKKR__DATABASE__POOL_MAX_SIZE": "30",
        "BROKKR__BROKER__WORKERS": "2",
        "BROKKR__BROKER__TLS__ENABLED": "true",
        "BROKKR__BROKER__TLS__CERT_FILE": "/c.crt",
        "BROKKR__LOG__FORMAT": "json",
    }


def test_a_misspelt_setting_is_refused_with_the_close_name():
    with pytest.raises(
        ServiceError, match=r"BROKKR__BROKER__DRAIN_TIMOUT.*BROKKR__BROKER__DRAIN_TIMEOUT"
    ):
        settings_env(BrokerModel, {"broker": {"drain_timout": 2}})
    with pytest.raises(ServiceError, match="no setting 'cache'"):
        settings_env(BrokerModel, {"cache": {"size": 1}})
    with pytest.raises(ServiceError, match="BROKKR__BROKER__WORKERS is a single value"):
        settings_env(BrokerModel, {"broker": {"workers": {"n": 2}}})


def test_file_variants_lists_and_bad_values_pass_through():
    agent = LocalAgent(
        {
            "agent": {
                "pak_file": "/run/pak",
                "generator_ids": ["a", "b"],
                "polling_interval": "soon",  # the agent reports it, not the launcher
            }
        },
        health_port=9999,
    )
    env = agent.environment()
    assert env["BROKKR__AGENT__PAK_FILE"] == "/run/pak"
    assert env["BROKKR__AGENT__GENERATOR_IDS"] == "a,b"
    assert env["BROKKR__AGENT__POLLING_INTERVAL"] == "soon"
    assert env["BROKKR__AGENT__HEALTH_PORT"] == "9999"
    assert env["BROKKR__AGENT__HEALTH_BIND"] == "127.0.0.1"


def test_the_callers_brokkr_configuration_and_kubeconfig_do_not_leak(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("BROKKR__LOG__LEVEL", "debug")
    monkeypatch.setenv("BROKKR_CONFIG_FILE", "/etc/brokkr.toml")
    monkeypatch.setenv("KUBECONFIG", "/home/me/.kube/config")
    monkeypatch.setenv("BROKKR_CACHE_DIR", "/cache")  # not configuration: kept
    agent = LocalAgent({"agent": {"kubeconfig": "/k"}}).environment()
    assert "BROKKR__LOG__LEVEL" not in agent and "BROKKR_CONFIG_FILE" not in agent
    assert "KUBECONFIG" not in agent and agent["BROKKR__AGENT__KUBECONFIG"] == "/k"
    assert agent["BROKKR_CACHE_DIR"] == "/cache"
    broker = LocalBroker({"database": {"url": "postgresql://x"}}).environment()
    assert "BROKKR__LOG__LEVEL" not in broker and broker["KUBECONFIG"] == "/home/me/.kube/config"


def test_env_overrides_win_and_the_launcher_owns_where_it_listens():
    broker = LocalBroker(
        {"database": {"url": "postgresql://x"}, "broker": {"port": 1}},
        port=4321,
        env={"BROKKR__DATABASE__URL": "not a url", "PYTHONPATH": "/src"},
    )
    env = broker.environment()
    assert env["BROKKR__BROKER__PORT"] == "4321" and env["BROKKR__BROKER__HOST"] == "127.0.0.1"
    assert env["BROKKR__DATABASE__URL"] == "not a url"
    assert env["PYTHONPATH"] == "/src"
    assert broker.url == "http://127.0.0.1:4321"


def test_merged_keeps_both_sides_of_a_nested_section():
    both = merged(
        {"broker": {"tls": {"reload_interval": 0.2}, "workers": 1}},
        {"broker": {"tls": {"enabled": True}}, "log": {"format": "text"}},
    )
    assert both == {
        "broker": {"tls": {"reload_interval": 0.2, "enabled": True}, "workers": 1},
        "log": {"format": "text"},
    }


def test_starting_without_a_log_file_is_refused_before_anything_runs():
    broker = LocalBroker({"database": {"url": "postgresql://x"}})
    with pytest.raises(ServiceError, match="needs a log_file"):
        broker.start()
    assert broker.process is None and broker.stop() is None
