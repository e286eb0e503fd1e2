"""Kubeconfig writing and reading for cluster automation and tests."""

from __future__ import annotations

import stat

import pytest
import yaml

from brokkr_dev.clusters import kubeconfig
from brokkr_dev.clusters.kubeconfig import Credentials

CREDS = Credentials("https://127.0.0.1:40001", b"CA-PEM", b"CERT-PEM", b"KEY-PEM")


def test_rendered_kubeconfig_round_trips_and_selects_its_context(tmp_path) -> None:
    text = kubeconfig.render("brokkr-dev", "brokkr-admin", CREDS)
    document = yaml.safe_load(text)
    assert document["current-context"] == "brokkr-dev"
    assert document["contexts"][0]["context"] == {"cluster": "brokkr-dev", "user": "brokkr-admin"}
    path = tmp_path / "kubeconfig"
    kubeconfig.write(path, text)
    assert kubeconfig.load(path) == CREDS


def test_kubeconfig_is_private_to_its_owner(tmp_path) -> None:
    path = tmp_path / "sub" / "kubeconfig"
    kubeconfig.write(path, kubeconfig.render("c", "u", CREDS))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_user_and_file_references_are_read(tmp_path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"FROM-FILE")
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "x",
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://h:1/", "certificate-authority": "ca.crt"},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "abc"}}],
            }
        )
    )
    assert kubeconfig.load(path) == Credentials("https://h:1", b"FROM-FILE", token="abc")


def test_a_user_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="client certificate and key, or a token"):
        kubeconfig.render("c", "u", Credentials("https://h", b"ca"))


def test_exec_plugins_are_refused_with_the_fix(tmp_path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "x",
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://h"}}],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1beta1",
                                "command": "aws",
                            }
                        },
                    }
                ],
            }
        )
    )
    with pytest.raises(ValueError, match="from an exec plugin, which have nothing static"):
        kubeconfig.load(path)


def test_missing_context_entry_is_named(tmp_path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({"current-context": "nope", "contexts": []}))
    with pytest.raises(ValueError, match="no context named 'nope'"):
        kubeconfig.load(path)
