"""The agent's settings: `BROKKR__AGENT__*` and `BROKKR__LOG__*` (see docs/agent.md)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from brokkr.common import config
from brokkr.common.logging import LogSettings
from brokkr.common.telemetry import TelemetrySettings

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class AgentSettings(BaseModel):
    """The `[agent]` section."""

    model_config = ConfigDict(extra="forbid")
    broker_url: str
    pak: SecretStr
    agent_name: str = Field(min_length=1)
    cluster_name: str = Field(min_length=1)
    polling_interval: float = Field(default=10.0, gt=0, le=3600)
    health_port: int = Field(default=8080, ge=1, le=65535)
    health_bind: str = "0.0.0.0"  # noqa: S104  # the kubelet probes the pod IP
    watch_namespace: str = ""
    ca_file: str | None = None
    generator_ids: list[str] = []
    kubeconfig: str | None = None
    request_timeout: float = Field(default=10.0, gt=0, le=300)
    startup_timeout: float = Field(default=120.0, gt=0, le=3600)
    shutdown_timeout: float = Field(default=15.0, gt=0, le=300)
    max_backoff: float = Field(default=300.0, gt=0, le=3600)
    resync_interval: float = Field(default=300.0, gt=0)

    @field_validator("broker_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an http:// or https:// URL such as https://broker:3000")
        return value.rstrip("/")

    @field_validator("pak")
    @classmethod
    def _pak_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty; set the agent's PAK (or BROKKR__AGENT__PAK_FILE)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("watch_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        value = value.strip()
        if value and not _DNS_LABEL.match(value):
            raise ValueError("must be a namespace name (lowercase DNS label) or empty")
        return value

    @field_validator("generator_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str) or not _UUID.match(item):
                    raise ValueError(f"{item!r} is not a generator UUID (comma-separated list)")
        return value


class Settings(BaseModel):
    """Everything the agent reads from its configuration."""

    model_config = ConfigDict(extra="forbid")
    agent: AgentSettings
    log: LogSettings = LogSettings()
    telemetry: TelemetrySettings = TelemetrySettings()


def load_settings(environ: Any = None) -> Settings:
    """Load and validate; raises `config.ConfigError` naming the variable on bad input."""
    return config.load(Settings, environ)
