"""The layered configuration loader shared by broker and agent."""

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from brokkr.common.config import ConfigError, load


class Database(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: SecretStr | None = None
    port: int = 5432


class Tls(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: str | None = None


class Broker(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = 3000
    tls: Tls = Tls()


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    database: Database = Database()
    broker: Broker = Broker()


def test_defaults_then_file_then_environment(tmp_path: Path):
    config = tmp_path / "brokkr.toml"
    config.write_text("[broker]\nport = 4000\n[database]\nport = 6000\n")
    settings = load(Settings, {"BROKKR_CONFIG_FILE": str(config), "BROKKR__DATABASE__PORT": "7000"})
    assert settings.broker.port == 4000
    assert settings.database.port == 7000


def test_yaml_file_and_nested_environment(tmp_path: Path):
    config = tmp_path / "brokkr.yaml"
    config.write_text("broker:\n  tls:\n    cert_file: /a\n")
    settings = load(
        Settings,
        {"BROKKR_CONFIG_FILE": str(config), "BROKKR__BROKER__TLS__CERT_FILE": "/b"},
    )
    assert settings.broker.tls.cert_file == "/b"


def test_file_suffix_reads_a_secret_from_a_file(tmp_path: Path):
    secret = tmp_path / "url"
    secret.write_text("postgresql://u:p@h/db\n")
    settings = load(Settings, {"BROKKR__DATABASE__URL_FILE": str(secret)})
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value() == "postgresql://u:p@h/db"


def test_a_declared_file_setting_is_kept_as_a_path():
    settings = load(Settings, {"BROKKR__BROKER__TLS__CERT_FILE": "/etc/tls/cert.pem"})
    assert settings.broker.tls.cert_file == "/etc/tls/cert.pem"


def test_bad_value_names_the_variable_and_the_expected_form():
    with pytest.raises(ConfigError, match=r"BROKKR__BROKER__PORT='abc'.*integer"):
        load(Settings, {"BROKKR__BROKER__PORT": "abc"})


def test_secret_values_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as caught:
        load(Settings, {"BROKKR__DATABASE__URL": ["not", "a", "string"]})  # type: ignore[dict-item]
    assert "not" not in str(caught.value).split("=", 1)[1].split(":")[0]
    assert "<hidden>" in str(caught.value)


def test_unknown_key_in_known_section_suggests_the_right_one():
    with pytest.raises(ConfigError, match="did you mean BROKKR__BROKER__PORT"):
        load(Settings, {"BROKKR__BROKER__PROT": "1"})


def test_sections_of_the_other_service_are_ignored():
    settings = load(Settings, {"BROKKR__AGENT__PAK": "x"})
    assert settings.broker.port == 3000


def test_unreadable_secret_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="BROKKR__DATABASE__URL_FILE=.*cannot read"):
        load(Settings, {"BROKKR__DATABASE__URL_FILE": str(tmp_path / "missing")})


def test_broken_config_file_is_a_clear_error(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[broker\n")
    with pytest.raises(ConfigError, match="not valid TOML/YAML"):
        load(Settings, {"BROKKR_CONFIG_FILE": str(config)})


def test_a_missing_key_does_not_echo_its_section():
    class Agent(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str
        pak: SecretStr

    class AgentSettings(BaseModel):
        agent: Agent

    with pytest.raises(ConfigError) as caught:
        load(AgentSettings, {"BROKKR__AGENT__PAK": "brokkr_secret_value"})
    assert "BROKKR__AGENT__URL=<not set>: Field required" in str(caught.value)
    assert "brokkr_secret_value" not in str(caught.value)
