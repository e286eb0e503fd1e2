"""The air-gap bundles of a real release (release/airgap.py): one per platform, holding
what it must, its checksums and image layouts matching what the registry published,
rebuilt byte for byte; and the air-gapped guide's bundle blocks, run on it against a
second registry. `nox -s verify` on bundles, and on tampered ones, is in
test_supply_chain.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from brokkr_dev.base import paths
from brokkr_dev.base.archives import extract_all
from brokkr_dev.release import airgap, attestations
from brokkr_dev.release.attestations import attestation_tag, signature_tag
from brokkr_dev.release.pipeline import Outcome
from brokkr_dev.release.registry import Registry
from brokkr_dev.release.verify import BUNDLE_ATTESTATIONS
from tests.docs.guiderun import guide_env
from tests.fixtures.release import run

pytestmark = [pytest.mark.release, pytest.mark.slow]
IMAGES = ("brokkr-broker", "brokkr-agent")
GUIDE = paths.REPO_ROOT / "docs" / "operators" / "air-gapped.md"
# The comment before each of the guide's bundle blocks that this test runs.
MARK = "<!-- run by tests/release/test_airgap.py -->"


def marked_blocks(guide: Path) -> list[str]:
    """The code of every ```sh block right after MARK, in order."""
    lines = guide.read_text().splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if line.strip() == MARK:
            assert lines[index + 1] == "```sh", f"{guide}:{index + 2}: expected a ```sh block"
            end = lines.index("```", index + 2)
            blocks.append("\n".join(lines[index + 2 : end]))
    return blocks


def unpack(archive: Path, destination: Path) -> Path:
    with tarfile.open(archive, mode="r:gz") as tar:
        assert {n.split("/", 1)[0] for n in tar.getnames()} == {airgap.top_directory(archive.name)}
        extract_all(tar, destination)
    return destination / airgap.top_directory(archive.name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def released(brokkr_repo: Path, do_release, helm_keys) -> Outcome:
    """Version 1.0.0 of the real charts (their values are what the guide sets) and the
    small stand-in images, signed with cosign and the charts also with Helm."""
    shutil.rmtree(brokkr_repo / "charts")
    shutil.copytree(paths.REPO_ROOT / "charts", brokkr_repo / "charts")
    run("git", "add", "-A", cwd=brokkr_repo)
    run("git", "commit", "-qm", "feat: the real charts", cwd=brokkr_repo)
    outcome = do_release("v1.0.0", helm_key=helm_keys.name, helm_keyring=str(helm_keys.secret))
    assert outcome is not None
    return outcome


def test_each_platform_has_a_bundle_of_what_was_published_and_the_guide_installs_it(
    released, oci_registry, private_registry, cosign_keys, tmp_path
):
    outcome = released
    registry = Registry(oci_registry.host)
    assets = {p.name: p for p in outcome.assets}
    release_sums = airgap.parse_sha256sums(assets["SHA256SUMS"].read_text())
    for platform in ("linux/amd64", "linux/arm64"):
        arch = platform.split("/")[1]
        name = f"brokkr-1.0.0-airgap-linux-{arch}.tar.gz"
        archive = assets[name]
        assert release_sums[name] == sha256(archive)  # the release's checksum file lists it
        root = unpack(archive, tmp_path / arch)
        files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
        assert {f for f in files if "/blobs/" not in f} == {
            "SHA256SUMS",
            *(f"charts/{i}-1.0.0.tgz{s}" for i in IMAGES for s in ("", ".prov")),
            *(f"manifests/{i}-install.yaml" for i in IMAGES),
            *(f"images/{i}/{f}" for i in IMAGES for f in ("index.json", "oci-layout")),
        }
        # its SHA256SUMS lists every other file, and `sha256sum --check` agrees
        inner = airgap.parse_sha256sums((root / "SHA256SUMS").read_text())
        assert set(inner) == files - {"SHA256SUMS"}
        checked = subprocess.run(
            ["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"],
            cwd=root, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for chart in (f"{i}-1.0.0.tgz{s}" for i in IMAGES for s in ("", ".prov")):
            assert (root / "charts" / chart).read_bytes() == assets[chart].read_bytes()

        for image in IMAGES:
            repo, digest = f"brokkr/{image}", outcome.platforms[image][platform]
            layout_dir = root / "images" / image
            layout = airgap.read_layout(layout_dir)
            # this platform's image by its published digest, and what cosign attached to it
            assert layout.images == (digest,)
            assert layout.signatures == registry.digest(repo, signature_tag(digest))
            assert layout.attestations == registry.digest(repo, attestation_tag(digest))
            # cosign v3: the published bundles, as blobs of the layout
            published = attestations.bundles(registry, repo, digest)
            assert {m for m, _ in layout.bundles} == {b.manifest for b in published}
            assert {t for _, t in layout.bundles} == {
                attestations.SIGNATURE,
                *BUNDLE_ATTESTATIONS,
            }, layout.bundles
            assert airgap.layout_problems(layout_dir, digest) == []
            blobs = layout_dir / "blobs" / "sha256"
            manifest = json.loads((blobs / digest.split(":")[1]).read_bytes())
            config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
            assert config["architecture"] == arch
            # neither the index nor the other platform's image
            others = {outcome.images[image], *outcome.platforms[image].values()} - {digest}
            assert not {d.split(":")[1] for d in others} & {p.name for p in blobs.iterdir()}
            # the raw manifest runs exactly that image
            text = (root / "manifests" / f"{image}-install.yaml").read_text().replace('"', "")
            assert f"image: {oci_registry.host}/{repo}@{digest}" in text

        if arch == "amd64":
            # reproducible: the same inputs give the same bytes (a resumed release
            # uploads nothing different)
            again = airgap.build(
                name,
                {
                    f: (root / f).read_bytes()
                    for f in files
                    if f.startswith(("charts/", "manifests/"))
                },
                [
                    airgap.BundleImage(
                        i, f"{oci_registry.host}/brokkr/{i}@{outcome.platforms[i][platform]}"
                    )
                    for i in IMAGES
                ],
                str(paths.BIN_DIR / "cosign"),
                signed=True,
            )
            assert again == archive.read_bytes()

    # The guide: verify the amd64 bundle offline, load it into the private registry,
    # install its chart (rendered: no cluster here).
    work = tmp_path / "guide"
    work.mkdir()
    bundle = "brokkr-1.0.0-airgap-linux-amd64"
    shutil.copy(assets[f"{bundle}.tar.gz"], work)
    env = guide_env(work, str(work / "no-cluster"))
    env.update(
        BUNDLE=bundle,
        BROKKR_VERSION="1.0.0",
        MIRROR_REGISTRY=private_registry.host,
        COSIGN_PUBLIC_KEY=str(cosign_keys.with_suffix(".pub")),
        BROKKR_NAMESPACE="brokkr",
    )
    checked_block, load_block, install_block = marked_blocks(GUIDE)
    assert "helm install " in install_block
    script = "\n".join(
        ["set -Eeuo pipefail", checked_block, load_block,
         install_block.replace("helm install ", "helm template ", 1)]
    )  # fmt: skip
    done = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for image in IMAGES:
        assert f"signature and attestations ok: {image}" in done.stdout
        assert f"in the registry: {image}" in done.stdout
    private = Registry(private_registry.host)
    for image in IMAGES:
        digest = outcome.platforms[image]["linux/amd64"]
        repo = f"colliery-io/{image}"
        assert private.digest(repo, "1.0.0") == digest
        for tag in (signature_tag(digest), attestation_tag(digest)):
            assert private.digest(repo, tag) == registry.digest(f"brokkr/{image}", tag)
        loaded = {b.manifest for b in attestations.bundles(private, repo, digest)}
        published = attestations.bundles(registry, f"brokkr/{image}", digest)
        assert loaded == {b.manifest for b in published}
        assert attestations.is_signed(private, repo, digest)
    broker = outcome.platforms["brokkr-broker"]["linux/amd64"]
    rendered = done.stdout.replace('"', "")
    assert f"image: {private_registry.host}/colliery-io/brokkr-broker@{broker}" in rendered
