"""Release notes: grouping by conventional-commit type, artifacts and verify commands."""

from __future__ import annotations

from brokkr_dev.release.notes import Published, group, render
from brokkr_dev.release.version import parse

COMMITS = [
    ("a1", "feat(broker): stacks API"),
    ("a2", "fix: agent reconnects after broker restart"),
    ("a3", "feat!: drop v0 wire format"),
    ("a4", "chore(release): v1.0.0"),
    ("a5", "Merge the thing"),
    ("a6", "docs: releasing guide"),
    ("a7", "wip(x): unknown type"),
    ("a8", "chore: bump deps"),
]


def test_group_by_type():
    grouped = group(COMMITS)
    assert grouped["feat"] == ["**broker**: stacks API (a1)"]
    assert grouped["fix"] == ["agent reconnects after broker restart (a2)"]
    assert grouped["breaking"] == ["drop v0 wire format (a3)"]
    assert grouped["other"] == ["Merge the thing (a5)", "wip(x): unknown type (a7)"]
    assert grouped["chore"] == ["bump deps (a8)"]
    assert all("v1.0.0" not in entry for entries in grouped.values() for entry in entries)


def test_render_sections_in_order_with_artifacts_and_verify_commands():
    published = [
        Published("image", "ghcr.io/o/brokkr-broker:v1.1.0", "sha256:" + "a" * 64),
        Published("chart", "oci://ghcr.io/o/charts/brokkr-broker:1.1.0", "sha256:" + "b" * 64),
    ]
    text = render(parse("v1.1.0"), parse("v1.0.0"), COMMITS, published)
    assert text.startswith("# Brokkr v1.1.0\n")
    assert "## Changes since v1.0.0" in text
    order = [
        text.index(h)
        for h in ("### Breaking changes", "### Features", "### Bug fixes", "### Other changes")
    ]
    assert order == sorted(order)
    assert f"- `ghcr.io/o/brokkr-broker:v1.1.0` `sha256:{'a' * 64}`" in text
    assert "helm install brokkr-broker oci://ghcr.io/o/charts/brokkr-broker --version 1.1.0" in text
    assert (
        "cosign verify-attestation --type https://sigstore.dev/cosign/sign/v1 "
        f"--certificate-identity https://github.com/colliery-io/brokkr/.github/workflows/release.yml@refs/tags/v1.1.0 --certificate-oidc-issuer https://token.actions.githubusercontent.com ghcr.io/o/brokkr-broker@sha256:{'a' * 64}"
        in text
    )
    assert f"ghcr.io/o/charts/brokkr-broker@sha256:{'b' * 64}" in text
    assert "verify-attestation --type spdxjson" in text
    assert "verify-attestation --type https://slsa.dev/provenance/v1" in text
    assert "scripts/nox -s verify -- v1.1.0 --registry ghcr.io/o\n" in text


def test_render_with_key_and_prerelease():
    published = [
        Published("image", "127.0.0.1:5000/b/brokkr-agent:v2.0.0-rc.1", "sha256:" + "c" * 64)
    ]
    text = render(parse("v2.0.0-rc.1"), None, [], published, cosign_key="cosign.pub")
    assert "This is a prerelease" in text
    assert "Changes since the first commit" in text
    assert "No changes besides the version stamp." in text
    assert (
        "cosign verify-attestation --type https://sigstore.dev/cosign/sign/v1 "
        "--key cosign.pub --insecure-ignore-tlog=true "
        f"127.0.0.1:5000/b/brokkr-agent@sha256:{'c' * 64}"
    ) in text
