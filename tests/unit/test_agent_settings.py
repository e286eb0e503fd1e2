"""The agent's configuration contract (names the Helm chart codes against)."""

from pathlib import Path

import pytest

from brokkr.agent.settings import load_settings
from brokkr.common.config import ConfigError

BASE = {
    "BROKKR__AGENT__BROKER_URL": "https://broker.example:3000/",
    "BROKKR__AGENT__PAK": "brokkr_abc_def",
    "BROKKR__AGENT__AGENT_NAME": "edge",
    "BROKKR__AGENT__CLUSTER_NAME": "prod",
}


def test_defaults_follow_the_contract():
    settings = load_settings(BASE)
    agent = settings.agent
    assert agent.broker_url == "https://broker.example:3000"
    assert agent.polling_interval == 10
    assert agent.health_port == 8080
    assert agent.watch_namespace == ""
    assert agent.generator_ids == []
    assert settings.log.level == "info"


def test_pak_from_a_file_and_generator_ids_from_a_list(tmp_path: Path):
    pak = tmp_path / "pak"
    pak.write_text("brokkr_from_file\n")
    env = {k: v for k, v in BASE.items() if not k.endswith("__PAK")}
    env |= {
        "BROKKR__AGENT__PAK_FILE": str(pak),
        "BROKKR__AGENT__GENERATOR_IDS": "11111111-2222-3333-4444-555555555555, "
        "66666666-7777-8888-9999-000000000000",
        "BROKKR__AGENT__WATCH_NAMESPACE": "team-a",
        "BROKKR__LOG__LEVEL": "debug",
        "BROKKR__LOG__FORMAT": "text",
    }
    settings = load_settings(env)
    assert settings.agent.pak.get_secret_value() == "brokkr_from_file"
    assert len(settings.agent.generator_ids) == 2
    assert settings.agent.watch_namespace == "team-a"
    assert (settings.log.level, settings.log.format) == ("debug", "text")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("BROKKR__AGENT__BROKER_URL", "broker:3000", "BROKKR__AGENT__BROKER_URL=.*http"),
        ("BROKKR__AGENT__POLLING_INTERVAL", "0", "BROKKR__AGENT__POLLING_INTERVAL"),
        ("BROKKR__AGENT__HEALTH_PORT", "70000", "BROKKR__AGENT__HEALTH_PORT"),
        ("BROKKR__AGENT__WATCH_NAMESPACE", "Team_A", "BROKKR__AGENT__WATCH_NAMESPACE"),
        ("BROKKR__AGENT__GENERATOR_IDS", "gen-1", "not a generator UUID"),
        ("BROKKR__LOG__FORMAT", "xml", "BROKKR__LOG__FORMAT"),
    ],
)
def test_bad_values_name_the_variable(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(BASE | {key: value})


def test_missing_settings_are_named_and_the_pak_never_echoed():
    with pytest.raises(ConfigError) as caught:
        load_settings({"BROKKR__AGENT__PAK": "brokkr_secret_x"})
    text = str(caught.value)
    assert "BROKKR__AGENT__BROKER_URL=<not set>: Field required" in text
    assert "brokkr_secret_x" not in text
