"""The pure parts of `nox -s verify`: its arguments, the table, reading statements."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release import verify as verifier


def test_without_a_key_the_signer_must_be_the_release_workflow_of_the_tag():
    request = verifier.parse_args(["v1.2.0"])
    assert request.trust.flags() == [
        "--certificate-identity",
        "https://github.com/colliery-io/brokkr/.github/workflows/release.yml@refs/tags/v1.2.0",
        "--certificate-oidc-issuer",
        "https://token.actions.githubusercontent.com",
    ]
    assert request.registry == "ghcr.io/colliery-io"
    assert request.assets_dir.parts[-2:] == ("dist", "v1.2.0")


def test_a_key_replaces_the_identity_and_must_exist(tmp_path: Path):
    key = tmp_path / "cosign.pub"
    with pytest.raises(ReleaseError, match="no such file; pass the release's cosign.pub"):
        verifier.parse_args(["v1.2.0", "--key", str(key)])
    key.write_text("PUBLIC KEY")
    request = verifier.parse_args(
        ["v1.2.0", "--key", str(key), "--registry", "127.0.0.1:5000/b", "--assets", "x"]
    )
    assert request.trust.flags() == ["--key", str(key), "--insecure-ignore-tlog=true"]
    assert (request.registry, request.assets_dir) == ("127.0.0.1:5000/b", Path("x"))
    with pytest.raises(ReleaseError, match="usage: nox -s verify"):
        verifier.parse_args(["v1.2.0", "--bogus"])


def test_the_table_has_one_row_per_check_and_counts_the_failures():
    table = verifier.format_table(
        [
            verifier.Check("signature", "brokkr-broker index", True, "sha256:abc"),
            verifier.Check("provenance", "chart brokkr-agent", False, "no matching attestations"),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["check", "subject", "result", "detail"]
    assert lines[1].split()[:4] == ["signature", "brokkr-broker", "index", "ok"]
    assert "FAILED  no matching attestations" in lines[2]
    assert lines[-1] == "2 checks, 1 failed"


def test_statement_subjects_and_vex_products_are_read_as_digests():
    statement = {"subject": [{"name": "r", "digest": {"sha256": "ab"}}, {"name": "x"}]}
    assert verifier.subject_digests(statement) == {"sha256:ab"}
    document = {
        "statements": [
            {"products": [{"@id": "pkg:oci/brokkr-broker@sha256%3Aab"}]},
            {"products": [{"@id": "pkg:oci/brokkr-agent@sha256%3Acd?arch=arm64"}, {"@id": "x"}]},
        ]
    }
    assert verifier.purl_digests(document) == {"sha256:ab", "sha256:cd"}
