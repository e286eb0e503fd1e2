"""The broker's settings: names are the configuration contract (BROKKR__SECTION__KEY)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from brokkr.common.config import ConfigError, load
from brokkr.common.logging import LogSettings
from brokkr.common.telemetry import TelemetrySettings


class DatabaseSettings(BaseModel):
    """Where PostgreSQL is: a full `url`, or host/port/name/user/password parts.

    The parts let a chart keep the password in a Secret file (`password_file`)
    while the rest sits in a ConfigMap.
    """

    model_config = ConfigDict(extra="forbid")
    url: SecretStr | None = None
    host: str | None = None
    port: int = Field(default=5432, ge=1, le=65535)
    name: str = "brokkr"
    user: str | None = None
    password: SecretStr | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=20, ge=1)
    # Seconds a request waits for a pooled connection before it answers 503.
    pool_timeout: float = Field(default=2.0, gt=0)
    connect_timeout: int = Field(default=2, ge=1)
    # Longest pause, in seconds, between attempts to reach a database that went away:
    # the broker answers again at most about this long after PostgreSQL is back.
    reconnect_max_delay: float = Field(default=4.0, gt=0)
    # Seconds `serve` keeps retrying an unreachable database at start-up before it
    # exits 1 (0: fail at once). Lets a broker start beside a PostgreSQL that is still
    # starting (the chart's bundled one) without crash-looping.
    startup_wait: float = Field(default=0, ge=0)
    # Milliseconds after which PostgreSQL cancels a statement (0 disables).
    statement_timeout_ms: int = Field(default=10_000, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSettings:
        if self.url is None and self.host is None:
            raise ValueError(
                "no database configured: set BROKKR__DATABASE__URL "
                "(postgresql://user@host:5432/brokkr) or BROKKR__DATABASE__HOST"
            )
        return self

    def conninfo(self) -> str:
        """The libpq connection string (contains the password: never log it)."""
        if self.url is not None:
            return self.url.get_secret_value()
        user = quote(self.user or "", safe="")
        password = self.password.get_secret_value() if self.password else None
        auth = (
            f"{user}:{quote(password, safe='')}@"
            if password is not None
            else (f"{user}@" if user else "")
        )
        return (
            f"postgresql://{auth}{self.host}:{self.port}/{quote(self.name, safe='')}"
            f"?sslmode={self.sslmode}"
        )

    def describe(self) -> str:
        """Host, port and database name for logs, without credentials."""
        try:
            parts = conninfo_to_dict(self.conninfo())
        except Exception:  # a malformed URL is reported at connect time
            return "<unparsable database url>"
        host, port = parts.get("host", "localhost"), parts.get("port", 5432)
        return f"{host}:{port}/{parts.get('dbname', '')}"


class TlsSettings(BaseModel):
    """HTTPS served by the broker itself; files are re-read when they change."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    # Seconds between checks of the certificate and key files for changes.
    reload_interval: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TlsSettings:
        if self.enabled and not (self.cert_file and self.key_file):
            raise ValueError(
                "TLS is enabled but BROKKR__BROKER__TLS__CERT_FILE and "
                "BROKKR__BROKER__TLS__KEY_FILE are not both set"
            )
        return self


class BrokerSettings(BaseModel):
    """The HTTP server, the admin bootstrap and the operational limits."""

    model_config = ConfigDict(extra="forbid")
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by design
    port: int = Field(default=3000, ge=0, le=65535)
    # Hex SHA-256 of the admin PAK's long part; when unset the broker mints one.
    pak_hash: SecretStr | None = None
    # Development only: accept the publicly known default admin PAK.
    allow_insecure_default_pak: bool = False
    # Where a minted admin PAK is written (mode 0600).
    admin_pak_file: str | None = None
    # Bodies of deployment objects (JSON or raw YAML): the only large ones.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Bodies of every other JSON route (names, labels, events...).
    max_json_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # Request line plus headers; larger header sections get 431 and the connection closes.
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, le=1024 * 1024)
    # Seconds a request body may take to arrive in full (slow or stalled clients).
    body_read_timeout: float = Field(default=30.0, gt=0)
    # Processes that parse deployment-object YAML off the event loop.
    yaml_workers: int = Field(default=1, ge=1, le=16)
    # CPU seconds one deployment object may take to parse before it is refused.
    yaml_cpu_seconds: float = Field(default=20.0, gt=0)
    # Seconds in-flight requests get to finish after SIGTERM.
    drain_timeout: float = Field(default=25.0, ge=0)
    # Seconds between SIGTERM (readyz 503) and closing the listener, so load
    # balancers stop sending new requests first.
    shutdown_delay: float = Field(default=0.0, ge=0)
    # Seconds a /readyz database result is reused.
    readiness_cache_seconds: float = Field(default=2.0, ge=0, le=2.0)
    readiness_timeout: float = Field(default=1.0, gt=0, le=1.0)
    migrate_on_start: bool = True
    # Server processes sharing the port (each with its own pool); 1 = no fork.
    workers: int = Field(default=1, ge=1, le=64)
    tls: TlsSettings = TlsSettings()


class Settings(BaseModel):
    """Everything the broker reads; sections match BROKKR__<SECTION>__<KEY>."""

    model_config = ConfigDict(extra="forbid")
    database: DatabaseSettings
    broker: BrokerSettings = BrokerSettings()
    log: LogSettings = LogSettings()
    telemetry: TelemetrySettings = TelemetrySettings()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the broker settings; raise ConfigError with a clear message."""
    try:
        return load(Settings, environ)
    except ConfigError as exc:
        if "BROKKR__DATABASE=" in str(exc) and "Field required" in str(exc):
            raise ConfigError(
                "no database configured: set BROKKR__DATABASE__URL "
                "(postgresql://user@host:5432/brokkr) or BROKKR__DATABASE__HOST"
            ) from None
        raise
