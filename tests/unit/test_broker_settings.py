"""Broker settings: the configuration contract and its error messages."""

import pytest

from brokkr.broker.openapi import OPERATIONS, document
from brokkr.broker.routes import api_routes
from brokkr.broker.settings import load_settings
from brokkr.common.config import ConfigError


def test_defaults_and_the_chart_contract():
    settings = load_settings(
        {
            "BROKKR__DATABASE__HOST": "db",
            "BROKKR__DATABASE__USER": "brokkr",
            "BROKKR__DATABASE__PASSWORD": "p@ss word",
        }
    )
    assert settings.broker.port == 3000 and settings.broker.host == "0.0.0.0"  # noqa: S104
    assert settings.broker.allow_insecure_default_pak is False
    assert settings.database.conninfo() == (
        "postgresql://brokkr:p%40ss%20word@db:5432/brokkr?sslmode=prefer"
    )
    assert "p@ss" not in settings.database.describe()
    assert "p@ss" not in repr(settings)


def test_password_from_a_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = load_settings(
        {"BROKKR__DATABASE__HOST": "db", "BROKKR__DATABASE__PASSWORD_FILE": str(secret)}
    )
    assert settings.database.password is not None
    assert settings.database.password.get_secret_value() == "s3cret"


def test_missing_database_is_a_clear_error():
    with pytest.raises(ConfigError, match="BROKKR__DATABASE__URL"):
        load_settings({})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("BROKKR__BROKER__PORT", "http", "BROKKR__BROKER__PORT='http'"),
        ("BROKKR__LOG__FORMAT", "xml", "BROKKR__LOG__FORMAT='xml'"),
        ("BROKKR__DATABASE__SSLMODE", "maybe", "BROKKR__DATABASE__SSLMODE='maybe'"),
        ("BROKKR__BROKER__TLS__ENABLED", "true", "CERT_FILE"),
        ("BROKKR__BROKER__PROT", "1", "did you mean BROKKR__BROKER__PORT"),
    ],
)
def test_invalid_settings_name_key_value_and_form(key: str, value: str, expected: str):
    with pytest.raises(ConfigError, match=expected):
        load_settings({"BROKKR__DATABASE__URL": "postgresql://x/y", key: value})


def test_openapi_document_covers_every_route():
    served = set()
    for route in api_routes():
        for method in route.methods or ():
            if method != "HEAD":
                served.add((method, route.path.replace(":path", "")))
    assert served == set(OPERATIONS)
    assert len(document()["paths"]) == len({path for _, path in OPERATIONS})
