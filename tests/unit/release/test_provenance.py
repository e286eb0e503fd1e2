"""SLSA v1 provenance predicates and the facts they are written from."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from brokkr_dev.release import provenance
from brokkr_dev.release.provenance import Builder, Material

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "colliery-io/brokkr",
    "GITHUB_WORKFLOW_REF": "colliery-io/brokkr/.github/workflows/release.yml@refs/tags/v1.2.0",
    "GITHUB_RUN_ID": "42",
    "GITHUB_RUN_ATTEMPT": "2",
}


def test_the_builder_is_the_release_workflow_in_actions_and_local_elsewhere():
    actions = Builder.from_env(GITHUB)
    assert actions.id == (
        "https://github.com/colliery-io/brokkr/.github/workflows/release.yml@refs/tags/v1.2.0"
    )
    assert actions.invocation == "https://github.com/colliery-io/brokkr/actions/runs/42/attempts/2"
    local = Builder.from_env({"GITHUB_REPOSITORY": "colliery-io/brokkr"})
    assert (local.id, local.invocation) == (provenance.LOCAL_BUILDER, None)


def test_a_predicate_holds_every_fact_in_its_slsa_v1_place():
    tool = Material("tool cosign", "pkg:golang/github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5",
                    {"sha256": "c0" * 32})  # fmt: skip
    base = Material("base image linux/arm64", "localhost/brokkr-base@sha256:" + "ba" * 32,
                    {"sha256": "ba" * 32}, {"recipe": "abc"})  # fmt: skip
    body = provenance.predicate(
        kind="image",
        github_repo="colliery-io/brokkr",
        external={"version": "v1.2.0", "platform": "linux/arm64"},
        materials=[Material("source", "git+https://x", {"gitCommit": "f" * 40}), base],
        builder=Builder.from_env(GITHUB, [tool]),
        started="2026-12-01T10:00:00Z",
        finished="2026-12-01T10:05:00Z",
    )
    definition = body["buildDefinition"]
    assert definition["buildType"] == (
        "https://github.com/colliery-io/brokkr/blob/main/docs/releasing.md#provenance-image-v1"
    )
    assert definition["externalParameters"] == {"version": "v1.2.0", "platform": "linux/arm64"}
    assert definition["resolvedDependencies"][0] == {
        "name": "source", "uri": "git+https://x", "digest": {"gitCommit": "f" * 40},
    }  # fmt: skip
    assert definition["resolvedDependencies"][1]["annotations"] == {"recipe": "abc"}
    run = body["runDetails"]
    assert run["builder"]["builderDependencies"] == [tool.descriptor()]
    assert run["metadata"] == {
        "startedOn": "2026-12-01T10:00:00Z",
        "finishedOn": "2026-12-01T10:05:00Z",
        "invocationId": "https://github.com/colliery-io/brokkr/actions/runs/42/attempts/2",
    }
    assert provenance.dependency_digests(body) == {"sha256:" + "ba" * 32}
    assert provenance.dependency_digests(body, prefix="image ") == set()


def test_times_are_left_out_when_this_run_did_not_build_the_artifact():
    body = provenance.predicate(
        kind="chart", github_repo="o/r", external={}, materials=[], builder=Builder("b"),
        started="", finished="",
    )  # fmt: skip
    assert body["runDetails"]["metadata"] == {}
    with pytest.raises(ValueError, match="unknown provenance kind"):
        provenance.build_type("o/r", "wheel")


def test_an_oci_purl_escapes_the_digest_and_the_repository():
    assert provenance.oci_purl("brokkr-agent", "sha256:ab", "127.0.0.1:5000/b/brokkr-agent",
                               "arm64") == (
        "pkg:oci/brokkr-agent@sha256%3Aab?arch=arm64"
        "&repository_url=127.0.0.1%3A5000%2Fb%2Fbrokkr-agent"
    )  # fmt: skip


def test_wheels_of_the_other_architecture_are_not_inputs(tmp_path: Path):
    names = [
        "psycopg_binary-3.2.9-cp311-cp311-manylinux_2_17_x86_64.whl",
        "psycopg_binary-3.2.9-cp311-cp311-manylinux_2_17_aarch64.whl",
        "Pydantic_Core-2.0-py3-none-any.whl",
    ]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    found = provenance.wheel_materials(tmp_path, "arm64")
    assert [m.uri for m in found] == [
        "pkg:pypi/pydantic-core@2.0",
        "pkg:pypi/psycopg-binary@3.2.9",
    ]
    assert found[1].digest == {"sha256": hashlib.sha256(names[1].encode()).hexdigest()}


def test_tools_are_named_by_their_pin_and_by_the_digest_of_the_binary_in_bin(tmp_path: Path):
    manifest = tmp_path / "tools.toml"
    manifest.write_text(
        '[cosign]\nversion = "v2.6.5"\nbinary = "cosign"\nversion_args = ["version"]\n'
        'go_module = "github.com/sigstore/cosign/v2/cmd/cosign"\n'
        '[helm]\nversion = "v3.22.0"\nbinary = "helm"\nversion_args = ["version"]\n'
        'go_module = "helm.sh/helm/v3/cmd/helm"\n'
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cosign").write_bytes(b"cosign binary")
    found = {m.name: m for m in provenance.tool_materials(["cosign", "helm"], bin_dir, manifest)}
    assert found["tools.toml"].digest["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert found["tool cosign"].uri == "pkg:golang/github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5"
    assert found["tool cosign"].digest == {"sha256": hashlib.sha256(b"cosign binary").hexdigest()}
    assert found["tool helm"].digest == {}  # not in bin/: named, not claimed


def test_the_source_is_the_commit_under_the_release_tag(tmp_path: Path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e.invalid",
         "commit", "-q", "--allow-empty", "-m", "x"],
        check=True,
    )  # fmt: skip
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    source = provenance.source_material(tmp_path, "colliery-io/brokkr", "v1.2.0")
    assert source.uri == "git+https://github.com/colliery-io/brokkr@refs/tags/v1.2.0"
    assert source.digest == {"gitCommit": head}
    untagged = provenance.source_material(tmp_path, "colliery-io/brokkr", None)
    assert untagged.uri == f"git+https://github.com/colliery-io/brokkr@{head}"
