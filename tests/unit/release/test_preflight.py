"""Preflight checks that need no registry: tools and credentials, with clear reasons."""

from __future__ import annotations

from pathlib import Path

from brokkr_dev.release.plan import Options
from brokkr_dev.release.preflight import check_credentials, check_tools
from brokkr_dev.release.version import parse


def options(**kwargs) -> Options:
    return Options(version=parse("v1.0.0"), **kwargs)


def test_remote_registry_needs_credentials_keyless_needs_oidc_and_github_needs_token():
    problems = check_credentials(options(), {})
    assert len(problems) == 3
    assert "no credentials for ghcr.io" in problems[0]
    assert "keyless signing needs a GitHub Actions OIDC token" in problems[1]
    assert "GITHUB_TOKEN is not set" in problems[2]


def test_github_actions_environment_passes():
    env = {"GITHUB_TOKEN": "t", "ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.invalid"}
    assert check_credentials(options(), env) == []


def test_local_registry_with_a_key(tmp_path: Path):
    key = tmp_path / "cosign.key"
    opts = options(registry="127.0.0.1:5000/brokkr", cosign_key=str(key), github_release=False)
    problems = check_credentials(opts, {})
    assert any(f"cosign key {key} does not exist" in p for p in problems)
    assert any("COSIGN_PASSWORD" in p for p in problems)
    key.write_text("key")
    assert check_credentials(opts, {"COSIGN_PASSWORD": ""}) == []


def test_missing_tools_are_named(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    problems = check_tools(options(), bin_dir=tmp_path)
    assert [p.split("`")[1] for p in problems] == ["git", "podman", "helm", "cosign", "syft"]
    assert "nox -s tools -- cosign" in problems[3]
    assert len(check_tools(options(sign=False, sbom=False), bin_dir=tmp_path)) == 4


def test_helm_chart_signing_needs_the_key_name_and_an_existing_keyring(tmp_path: Path):
    keyring = tmp_path / "secring.gpg"
    local = {"registry": "127.0.0.1:5000/brokkr", "sign": False, "github_release": False}
    (only,) = check_credentials(options(helm_key="Brokkr Release", **local), {})
    assert "needs both --helm-key NAME and --helm-keyring FILE" in only
    (only,) = check_credentials(
        options(helm_key="Brokkr Release", helm_keyring=str(keyring), **local), {}
    )
    assert f"Helm keyring {keyring} does not exist" in only
    keyring.write_bytes(b"keys")
    opts = options(helm_key="Brokkr Release", helm_keyring=str(keyring), **local)
    assert check_credentials(opts, {}) == []
