"""Secrets stay in Secrets: every secret-bearing value, in every form the charts take.

Forms: inline in values (stored by the chart in a Secret), minted by the chart
(admin PAK, bundled PostgreSQL password), or an existing Secret named in values.
In each, the secret's text appears in no ConfigMap, no env literal, no annotation
and not in the NOTES (base64 included), and the service reads it from a file that
a Secret volume mounts (the `*_FILE` settings), never from an environment variable.
"""

from __future__ import annotations

import base64
import posixpath
from typing import Any

import pytest
import yaml

from tests.charts.mutation import Release, install_dry_run
from tests.charts.render import AGENT, AGENT_REQUIRED, BROKER, merge

pytestmark = pytest.mark.charts

SENTINEL = "s3cret-Sentinel-4242"
# Settings that must never be given as a plain variable or ConfigMap key.
PLAIN_SECRET_SETTINGS = {
    "BROKKR__DATABASE__PASSWORD",
    "BROKKR__DATABASE__URL",
    "BROKKR__BROKER__PAK_HASH",
    "BROKKR__AGENT__PAK",
    "POSTGRES_PASSWORD",
}


def secret_data(release: Release) -> dict[tuple[str, str], str]:
    """Every rendered Secret's decoded data, by (Secret name, key)."""
    found = {}
    for obj in release.objects:
        if obj["kind"] == "Secret":
            for key, value in (obj.get("data") or {}).items():
                found[(obj["metadata"]["name"], key)] = base64.b64decode(value).decode()
            for key, value in (obj.get("stringData") or {}).items():
                found[(obj["metadata"]["name"], key)] = value
    return found


def assert_only_in_secrets(release: Release, secret: str) -> None:
    """The secret is in a Secret and nowhere else (plain or base64)."""
    assert any(secret in v for v in secret_data(release).values()), "not stored in a Secret"
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    for obj in release.objects:
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        leaked = [f for f in forms if f in text]
        assert not leaked, f"{obj['kind']} {obj['metadata']['name']} holds the secret"
    assert not [f for f in forms if f in release.notes], "the NOTES show the secret"


def container(release: Release, kind: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, container) of the named container in the workload of that kind."""
    for obj in release.objects:
        if obj["kind"] == kind:
            spec = obj["spec"]["template"]["spec"] if kind != "Pod" else obj["spec"]
            for item in spec["containers"]:
                if item["name"] == name:
                    return spec, item
    raise AssertionError(f"no container {name} in a {kind}")


def assert_read_from_secret_file(
    release: Release, where: tuple[str, str], setting: str, secret: str, key: str
) -> None:
    """`setting` of the container `where` (workload kind, container name) names a file
    that a volume of Secret `secret` (key `key`) provides."""
    spec, item = container(release, *where)
    env = {e["name"]: e for e in item.get("env", [])}
    assert "value" in env[setting], f"{setting} must be a path"
    path = env[setting]["value"]
    mounts = {m["mountPath"]: m["name"] for m in item["volumeMounts"]}
    volume_name = mounts[posixpath.dirname(path)]
    volume = next(v for v in spec["volumes"] if v["name"] == volume_name)
    assert volume["secret"]["secretName"] == secret
    assert {"key": key, "path": posixpath.basename(path)} in volume["secret"]["items"]


def assert_no_secret_in_env_or_config(release: Release) -> None:
    """No plain secret setting, and no env var filled from a Secret: files only."""
    for obj in release.objects:
        if obj["kind"] == "ConfigMap":
            assert not PLAIN_SECRET_SETTINGS & set(obj.get("data", {})), obj["metadata"]["name"]
        spec = obj.get("spec", {})
        pod = spec.get("template", {}).get("spec") if "template" in spec else spec
        for item in (pod or {}).get("containers", []) if isinstance(pod, dict) else []:
            for entry in item.get("env", []):
                assert entry["name"] not in PLAIN_SECRET_SETTINGS, entry
                assert "secretKeyRef" not in entry.get("valueFrom", {}), entry


def broker(values: dict[str, Any]) -> Release:
    return install_dry_run(BROKER, values)


def agent(values: dict[str, Any]) -> Release:
    return install_dry_run(AGENT, merge(AGENT_REQUIRED, values))


# --- the broker ---------------------------------------------------------------------


def test_minted_admin_pak_and_bundled_password_stay_in_their_secrets():
    release = broker({})
    data = secret_data(release)
    (pak,) = [v for (s, k), v in data.items() if s.endswith("-admin") and k == "pak"]
    (password,) = [v for (s, k), v in data.items() if s.endswith("-postgresql")]
    for secret in (pak, password):
        assert_only_in_secrets(release, secret)
    assert_read_from_secret_file(
        release,
        ("Deployment", "broker"),
        "BROKKR__BROKER__PAK_HASH_FILE",
        "rel-brokkr-broker-admin",
        "pak-hash",
    )
    assert_read_from_secret_file(
        release,
        ("Deployment", "broker"),
        "BROKKR__DATABASE__PASSWORD_FILE",
        "rel-brokkr-broker-postgresql",
        "password",
    )
    assert_read_from_secret_file(
        release,
        ("StatefulSet", "postgresql"),
        "POSTGRES_PASSWORD_FILE",
        "rel-brokkr-broker-postgresql",
        "password",
    )
    assert_no_secret_in_env_or_config(release)


def test_existing_admin_and_postgresql_secrets_are_mounted_not_copied():
    release = broker(
        {
            "admin": {"pak": {"existingSecret": "my-admin", "hashKey": "h"}},
            "postgresql": {"auth": {"existingSecret": "my-pg", "passwordKey": "pw"}},
        }
    )
    assert secret_data(release) == {}, "the chart must not make Secrets it was given"
    assert_read_from_secret_file(
        release, ("Deployment", "broker"), "BROKKR__BROKER__PAK_HASH_FILE", "my-admin", "h"
    )
    assert_read_from_secret_file(
        release, ("Deployment", "broker"), "BROKKR__DATABASE__PASSWORD_FILE", "my-pg", "pw"
    )
    assert_read_from_secret_file(
        release, ("StatefulSet", "postgresql"), "POSTGRES_PASSWORD_FILE", "my-pg", "pw"
    )
    assert_no_secret_in_env_or_config(release)


def test_inline_external_database_password_goes_to_a_secret_file():
    external = {"mode": "external", "external": {"host": "db.example", "password": SENTINEL}}
    release = broker({"database": external})
    assert_only_in_secrets(release, SENTINEL)
    assert_read_from_secret_file(
        release,
        ("Deployment", "broker"),
        "BROKKR__DATABASE__PASSWORD_FILE",
        "rel-brokkr-broker-database",
        "password",
    )
    assert_no_secret_in_env_or_config(release)


def test_existing_external_database_secret_is_mounted():
    external = {"host": "db.example", "existingSecret": "db-pw", "passwordKey": "secret"}
    release = broker({"database": {"mode": "external", "external": external}})
    assert not [name for name, _ in secret_data(release) if name.endswith("-database")]
    assert_read_from_secret_file(
        release, ("Deployment", "broker"), "BROKKR__DATABASE__PASSWORD_FILE", "db-pw", "secret"
    )
    assert_no_secret_in_env_or_config(release)


def test_database_url_is_read_from_its_secret_file():
    release = broker(
        {"database": {"mode": "url", "url": {"existingSecret": "db-url", "key": "dsn"}}}
    )
    assert_read_from_secret_file(
        release, ("Deployment", "broker"), "BROKKR__DATABASE__URL_FILE", "db-url", "dsn"
    )
    assert_no_secret_in_env_or_config(release)


@pytest.mark.parametrize(
    "tls",
    [
        {"enabled": True, "existingSecret": "broker-tls"},
        {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}},
    ],
    ids=["existingSecret", "certManager"],
)
def test_tls_key_is_a_mounted_secret_in_every_form(tls):
    release = broker({"tls": tls})
    spec, item = container(release, "Deployment", "broker")
    config = next(o for o in release.objects if o["kind"] == "ConfigMap")["data"]
    key_file = config["BROKKR__BROKER__TLS__KEY_FILE"]
    mounts = {m["mountPath"]: m["name"] for m in item["volumeMounts"]}
    volume = next(v for v in spec["volumes"] if v["name"] == mounts[posixpath.dirname(key_file)])
    expected = tls.get("existingSecret") or "rel-brokkr-broker-tls"
    assert volume["secret"]["secretName"] == expected
    assert_no_secret_in_env_or_config(release)


# --- the agent ----------------------------------------------------------------------


def test_inline_agent_pak_goes_to_a_secret_file():
    release = agent({"pak": {"existingSecret": "", "value": SENTINEL}})
    assert_only_in_secrets(release, SENTINEL)
    # The agent and its `helm test` pod both read the PAK from the mounted Secret.
    for kind, name in (("Deployment", "agent"), ("Pod", "registration")):
        assert_read_from_secret_file(
            release, (kind, name), "BROKKR__AGENT__PAK_FILE", "rel-brokkr-agent-pak", "pak"
        )
    assert_no_secret_in_env_or_config(release)


def test_existing_agent_pak_secret_is_mounted_not_copied():
    release = agent({"pak": {"existingSecret": "their-pak", "key": "token"}})
    assert secret_data(release) == {}
    assert_read_from_secret_file(
        release, ("Deployment", "agent"), "BROKKR__AGENT__PAK_FILE", "their-pak", "token"
    )
    assert_no_secret_in_env_or_config(release)
