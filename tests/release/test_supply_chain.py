"""Provenance, SBOM and VEX attestations of a real release into a local registry, and
`nox -s verify` (release/verify.py) on it: it passes, and each tamper fails it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests

from brokkr_dev.base import paths, toolchain
from brokkr_dev.base.archives import extract_all
from brokkr_dev.release import airgap, attestations, provenance
from brokkr_dev.release import verify as verifier
from brokkr_dev.release.attestations import CYCLONEDX, OPENVEX, SPDX
from brokkr_dev.release.registry import Registry
from brokkr_dev.release.version import parse
from brokkr_dev.scan import vex
from tests.fixtures.release import run
from tests.fixtures.trivydb import write_debian_db

pytestmark = [pytest.mark.release, pytest.mark.slow]
ACCEPTED = """\
[[finding]]
scanner = "trivy-vuln"
id = "CVE-2026-40001"
target = "brokkr-broker/*"
reason = "The vulnerable parser is never given input from outside the process."
review_by = 2099-01-01
vex_status = "not_affected"
vex_justification = "vulnerable_code_cannot_be_controlled_by_adversary"
"""


@pytest.fixture
def accepted_repo(brokkr_repo: Path) -> Path:
    """The test repository with one accepted vulnerability of the broker image."""
    (brokkr_repo / "security").mkdir()
    (brokkr_repo / "security" / "accepted.toml").write_text(ACCEPTED)
    run("git", "add", "-A", cwd=brokkr_repo)
    run("git", "commit", "-qm", "security: accept CVE-2026-40001 in the broker", cwd=brokkr_repo)
    return brokkr_repo


def test_every_artifact_carries_provenance_both_sboms_and_the_vex(
    do_release, oci_registry, accepted_repo, helm_keys
):
    outcome = do_release("v1.0.0", helm_key=helm_keys.name, helm_keyring=str(helm_keys.secret))
    assert outcome is not None
    registry = Registry(oci_registry.host)
    head = run("git", "rev-parse", "HEAD", cwd=accepted_repo)
    # do_release's fixtures link the pinned tools into bin/
    cosign_digest = hashlib.sha256((paths.BIN_DIR / "cosign").resolve().read_bytes()).hexdigest()

    def statements(repo: str, digest: str, predicate_type: str) -> list[dict]:
        found = [
            s
            for s in attestations.statements(registry, repo, digest)
            if s["predicateType"] == predicate_type
        ]
        assert len(found) == 1, (repo, digest, predicate_type)
        assert verifier.subject_digests(found[0]) == {digest}
        return found

    for name in ("brokkr-broker", "brokkr-agent"):
        repo = f"brokkr/{name}"
        platforms = outcome.platforms[name]
        for platform, digest in platforms.items():
            (statement,) = statements(repo, digest, provenance.PREDICATE_TYPE)
            body = statement["predicate"]
            definition = body["buildDefinition"]
            assert definition["buildType"].endswith("#provenance-image-v1")
            assert definition["externalParameters"]["platform"] == platform
            deps = {d["name"]: d for d in definition["resolvedDependencies"]}
            assert deps["source"]["digest"] == {"gitCommit": head}
            assert deps["source"]["uri"].endswith("@refs/tags/v1.0.0")
            assert f"file {platform}" in deps  # what the builder says it built from
            tools = {t["name"]: t for t in body["runDetails"]["builder"]["builderDependencies"]}
            assert tools["tool cosign"]["digest"] == {"sha256": cosign_digest}
            assert "tools.toml" in tools
            assert body["runDetails"]["metadata"]["startedOn"]  # built by this run
            for sbom_type, field in ((SPDX, "spdxVersion"), (CYCLONEDX, "bomFormat")):
                (sbom,) = statements(repo, digest, sbom_type)
                assert field in sbom["predicate"]
        (index,) = statements(repo, outcome.images[name], provenance.PREDICATE_TYPE)
        assert provenance.dependency_digests(index["predicate"], "image ") == set(
            platforms.values()
        )
        chart_repo = f"brokkr/charts/{name}"
        (chart,) = statements(chart_repo, outcome.charts[name], provenance.PREDICATE_TYPE)
        assert (
            chart["predicate"]["buildDefinition"]["externalParameters"]["chartVersion"] == "1.0.0"
        )
        assert provenance.dependency_digests(chart["predicate"], "image ") == {outcome.images[name]}

    # one VEX document, on every image; it names the broker's images only
    broker = vex.ReleasedImage(
        "brokkr-broker", outcome.images["brokkr-broker"], outcome.platforms["brokkr-broker"]
    )
    documents = [
        s["predicate"]
        for name in ("brokkr-broker", "brokkr-agent")
        for digest in (outcome.images[name], *outcome.platforms[name].values())
        for s in statements(f"brokkr/{name}", digest, OPENVEX)
    ]
    assert len(documents) == 6 and all(d == documents[0] for d in documents)
    (statement,) = documents[0]["statements"]
    assert statement["vulnerability"] == {"name": "CVE-2026-40001"}
    assert statement["status"] == "not_affected"
    assert statement["justification"] == "vulnerable_code_cannot_be_controlled_by_adversary"
    assert sorted(p["@id"] for p in statement["products"]) == sorted(broker.purls())

    # the assets: both SBOM formats per platform image, and the VEX as attested
    files = {p.name: p for p in outcome.assets}
    for name in ("brokkr-broker", "brokkr-agent"):
        for arch in ("amd64", "arm64"):
            for suffix in (".spdx.json", ".cdx.json"):
                assert f"{name}-1.0.0-linux-{arch}{suffix}" in files
    assert json.loads(files["brokkr-1.0.0.openvex.json"].read_text()) == documents[0]
    sums = files["SHA256SUMS"].read_text()
    assert "brokkr-1.0.0.openvex.json" in sums and "brokkr-agent-1.0.0-linux-arm64.cdx.json" in sums

    # the charts are signed by Helm too: the .prov assets verify, and so does the OCI
    # chart pulled with its provenance layer (what `helm install --verify` does)
    helm = str(paths.BIN_DIR / "helm")
    for name in ("brokkr-broker", "brokkr-agent"):
        assert f"{name}-1.0.0.tgz.prov" in sums
        shown = run(
            helm, "verify", str(files[f"{name}-1.0.0.tgz"]), "--keyring", str(helm_keys.public)
        )
        assert "Signed by: Brokkr Release Test" in shown
    pulled = run(
        helm, "pull", f"oci://{oci_registry.host}/brokkr/charts/brokkr-agent", "--version",
        "1.0.0", "--verify", "--keyring", str(helm_keys.public), "--plain-http",
        "--destination", str(accepted_repo / "dist"),
    )  # fmt: skip
    assert "Signed by: Brokkr Release Test" in pulled


def test_trivy_shows_users_the_verdicts_of_the_released_vex(
    do_release, oci_registry, accepted_repo, tmp_path
):
    """Trivy, scanning the released images with a database that knows CVE-2026-40001 in
    their zlib, reports it without the VEX and drops it for the broker with it (the
    file asset, or the signed attestation found with `--vex oci`); the agent, which
    the VEX does not name, keeps it."""
    outcome = do_release("v1.0.0")
    assert outcome is not None
    trivy = toolchain.ensure(toolchain.load_manifest()["trivy"], log=lambda _m: None)
    cache = write_debian_db(tmp_path / "trivy", {("zlib", "CVE-2026-40001"): "1:1.3.0-1"})
    document = next(p for p in outcome.assets if p.name.endswith(".openvex.json"))

    def found(image: str, *vex_sources: str, platform: str = "linux/amd64") -> set[str]:
        command = [
            str(trivy), "image", "--image-src", "remote", "--insecure", "--platform", platform,
            "--skip-db-update", "--skip-version-check", "--cache-dir", str(cache),
            "--scanners", "vuln", "--format", "json", "--quiet",
            *(arg for source in vex_sources for arg in ("--vex", source)),
            f"{oci_registry.host}/brokkr/{image}:v1.0.0",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        return {
            v["VulnerabilityID"]
            for result in report.get("Results") or []
            for v in result.get("Vulnerabilities") or []
        }

    assert found("brokkr-broker") == {"CVE-2026-40001"}
    assert found("brokkr-broker", str(document)) == set()
    assert found("brokkr-broker", str(document), platform="linux/arm64") == set()
    assert found("brokkr-broker", "oci") == set()
    assert found("brokkr-agent", str(document)) == {"CVE-2026-40001"}


def verify_command(*args: str) -> tuple[int, str]:
    """`invoke release.verify -- ...` as `nox -s verify` runs it: (exit status, output)."""
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "release.verify", "--", *args],
        cwd=paths.REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(paths.REPO_ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def failed_rows(request: verifier.Request, cosign: str) -> set[tuple[str, str]]:
    """(check, subject) of every failed row; none when the release verifies."""
    lines: list[str] = []
    try:
        verifier.verify(request, cosign=cosign, log=lines.append)
    except verifier.VerifyError as exc:
        assert "FAILED" in "\n".join(lines)  # the printed table shows the failed rows
        return {(c.what, c.subject) for c in exc.checks if not c.ok}
    return set()


def test_verify_passes_on_the_release_and_fails_on_each_tamper(
    do_release, oci_registry, accepted_repo, cosign_keys, helm_keys
):
    outcome = do_release("v1.0.0", helm_key=helm_keys.name, helm_keyring=str(helm_keys.secret))
    assert outcome is not None
    host = oci_registry.host
    registry = Registry(host)
    cosign = str(paths.BIN_DIR / "cosign")  # linked there by do_release's fixtures
    assets = outcome.assets[0].parent
    request = verifier.Request(
        version=parse("v1.0.0"),
        registry=f"{host}/brokkr",
        trust=verifier.Trust(key=cosign_keys.with_suffix(".pub")),
        assets=assets,
        helm_keyring=helm_keys.public,
    )
    lines: list[str] = []
    checks = verifier.verify(request, cosign=cosign, log=lines.append)
    kinds = {c.what for c in checks}
    assert kinds == {
        "tags", "signature", "helm provenance", "provenance", "sbom spdx", "sbom cyclonedx",
        "source", "vex", "checksum", "asset",
        "bundle", "bundle chart", "bundle image", "bundle signature", "bundle attestation",
    }  # fmt: skip
    assert sum(c.what == "helm provenance" for c in checks) == 2
    # 2 image indexes + 4 platform images + 2 charts
    assert sum(c.what == "provenance" for c in checks) == 8
    assert sum(c.what == "signature" for c in checks) == 8
    # one bundle per platform, each with both images
    assert sum(c.what == "bundle" for c in checks) == 2
    assert sum(c.what == "bundle attestation" for c in checks) == 4
    assert sum(c.what == "checksum" for c in checks) == len(outcome.assets) - 1
    assert lines[-1].splitlines()[-1] == f"{len(checks)} checks, 0 failed"
    # the command users run: same table, exit status 0
    command = ["v1.0.0", "--registry", f"{host}/brokkr", "--assets", str(assets)]
    command += ["--key", str(cosign_keys.with_suffix(".pub"))]
    command += ["--helm-keyring", str(helm_keys.public)]
    status, output = verify_command(*command)
    assert status == 0, output
    assert f"{len(checks)} checks, 0 failed" in output

    # another key's signatures do not count
    other = cosign_keys.parent / "verify-other"
    other.mkdir()
    subprocess.run(
        [cosign, "generate-key-pair"], cwd=other, env={"COSIGN_PASSWORD": "", "PATH": "/usr/bin"},
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    stranger = dataclasses.replace(request, trust=verifier.Trust(key=other / "cosign.pub"))
    with pytest.raises(verifier.VerifyError, match="did not verify"):
        verifier.verify(stranger, cosign=cosign, log=lambda _m: None)

    # 1. a retagged image: v1.0.0 of the broker now names its amd64 image, not the index
    broker = "brokkr/brokkr-broker"
    index = outcome.images["brokkr-broker"]
    registry.copy_tag(broker, outcome.platforms["brokkr-broker"]["linux/amd64"], "v1.0.0")
    failed = failed_rows(request, cosign)
    assert ("tags", "brokkr-broker") in failed
    registry.copy_tag(broker, index, "v1.0.0")

    # 2. a changed chart pushed over 1.0.0: unsigned, no provenance, not the asset
    chart_repo = "brokkr/charts/brokkr-agent"
    original = registry.manifest(chart_repo, "1.0.0")
    assert original is not None
    work = assets.parent / "tampered-chart"
    shutil.copytree(accepted_repo / "charts" / "brokkr-agent", work / "brokkr-agent")
    values = work / "brokkr-agent" / "values.yaml"
    values.write_text(values.read_text() + "extra: injected\n")
    helm = str(paths.BIN_DIR / "helm")
    package = run(helm, "package", str(work / "brokkr-agent"), "--destination", str(work))
    run(helm, "push", package.rsplit(":", 1)[-1].strip(), f"oci://{host}/brokkr/charts",
        "--plain-http")  # fmt: skip
    assert registry.digest(chart_repo, "1.0.0") != original.digest
    failed = failed_rows(request, cosign)
    assert {
        ("signature", "chart brokkr-agent"),
        ("helm provenance", "chart brokkr-agent"),
        ("provenance", "chart brokkr-agent"),
        ("asset", "brokkr-agent-1.0.0.tgz"),
    } <= failed
    registry.put_manifest(chart_repo, "1.0.0", original)

    # 3. missing attestations: the agent's arm64 image loses its attestation bundles
    # (cosign v3 referrers; the fallback index still lists them)
    agent = "brokkr/brokkr-agent"
    arm64 = outcome.platforms["brokkr-agent"]["linux/arm64"]
    bundle_manifests = [
        registry.manifest(agent, bundle.manifest)
        for bundle in attestations.bundles(registry, agent, arm64)
        if bundle.predicate_type != attestations.SIGNATURE
    ]
    assert len(bundle_manifests) == 4  # provenance, SPDX, CycloneDX, VEX
    for manifest in bundle_manifests:
        assert manifest is not None
        url = f"http://{host}/v2/{agent}/manifests/{manifest.digest}"
        deleted = requests.delete(url, timeout=10)
        assert deleted.status_code == 202, deleted.text
    failed = failed_rows(request, cosign)
    assert {
        ("provenance", "brokkr-agent linux/arm64"),
        ("sbom spdx", "brokkr-agent linux/arm64"),
        ("sbom cyclonedx", "brokkr-agent linux/arm64"),
    } <= failed
    for manifest in bundle_manifests:
        assert manifest is not None
        registry.put_manifest(agent, manifest.digest, manifest)

    # 4. a changed asset file: its checksum no longer matches
    manifest = assets / "brokkr-broker-install.yaml"
    original_text = manifest.read_text()
    manifest.write_text(original_text + "# edited\n")
    assert failed_rows(request, cosign) == {("checksum", "brokkr-broker-install.yaml")}
    status, output = verify_command(*command)
    assert status == 1, output
    assert re.search(r"^checksum +brokkr-broker-install\.yaml +FAILED ", output, re.MULTILINE)
    assert "error: v1.0.0 did not verify: 1 of" in output
    manifest.write_text(original_text)

    # 5. an air-gap bundle whose broker layout holds the other platform's image, with
    # both checksum files rewritten to match: the layout is not the published image
    amd64, arm64 = (f"brokkr-1.0.0-airgap-linux-{arch}.tar.gz" for arch in ("amd64", "arm64"))
    sums = assets / "SHA256SUMS"
    saved = {path: path.read_bytes() for path in (assets / amd64, assets / arm64, sums)}
    work = assets.parent / "tampered-bundle"
    amd64_root = unpack(assets / amd64, work / "amd64")
    arm64_root = unpack(assets / arm64, work / "arm64")
    shutil.rmtree(amd64_root / "images" / "brokkr-broker")
    shutil.copytree(
        arm64_root / "images" / "brokkr-broker", amd64_root / "images" / "brokkr-broker"
    )
    repack(amd64_root, assets / amd64, sums)
    assert failed_rows(request, cosign) == {("bundle image", f"{amd64} brokkr-broker")}

    # 6. a file edited inside a bundle, the checksums left alone
    for path, data in saved.items():
        path.write_bytes(data)
    edited = arm64_root / "manifests" / "brokkr-agent-install.yaml"
    edited.write_text(edited.read_text() + "# edited\n")
    airgap.write_archive(arm64_root, arm64_root.name, assets / arm64)
    assert failed_rows(request, cosign) == {("checksum", arm64), ("bundle", arm64)}
    for path, data in saved.items():
        path.write_bytes(data)
    assert failed_rows(request, cosign) == set()


def unpack(archive: Path, destination: Path) -> Path:
    with tarfile.open(archive, mode="r:gz") as tar:
        extract_all(tar, destination)
    return destination / airgap.top_directory(archive.name)


def repack(root: Path, archive: Path, release_sums: Path) -> None:
    """Pack root as the bundle `archive` with a matching SHA256SUMS inside, and list
    its new checksum in the release's SHA256SUMS: what a forger controlling the
    download would do."""
    (root / airgap.CHECKSUMS).write_text(airgap.sha256sums(root))
    airgap.write_archive(root, root.name, archive)
    checksum = hashlib.sha256(archive.read_bytes()).hexdigest()
    listed = airgap.parse_sha256sums(release_sums.read_text()) | {archive.name: checksum}
    release_sums.write_text("".join(f"{listed[n]}  {n}\n" for n in sorted(listed)))
