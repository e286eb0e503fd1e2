"""The files attached to a release: chart archives, SBOMs and a SHA-256 checksums file.

Every asset is read back from the registry, so it is exactly what was published and
signed, whether this run pushed it or an earlier (interrupted) run did:

- chart archives are the charts' OCI layers (their SHA-256 is the layer digest), with
  Helm's provenance file beside each when the release signs charts with Helm;
- install manifests (`<chart>-install.yaml`, for people without Helm) are those
  archives rendered by `helm template`, each image pinned by its published digest;
- SBOMs are the SPDX and CycloneDX documents inside the cosign attestations of each
  platform image;
- the OpenVEX document is the one attested to the images (built anew when the
  release is not signed);
- the air-gap bundle of each platform (release/airgap.py) packs the chart
  archives, that platform's images with their signatures and attestations, and
  the install manifests pinned to those images.

`release_assets` is the one list of assets; add new kinds there.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from brokkr_dev.base.archives import extract_all
from brokkr_dev.release import ReleaseError, airgap, attestations, manifests
from brokkr_dev.release.attestations import CYCLONEDX, SPDX
from brokkr_dev.release.github import Asset
from brokkr_dev.release.plan import Plan
from brokkr_dev.release.registry import Registry
from brokkr_dev.release.version import Version

CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
PROVENANCE_LAYER = "application/vnd.cncf.helm.chart.provenance.v1.prov"
CHECKSUMS = airgap.CHECKSUMS  # one name for both checksum files
# The file name suffix of each SBOM format's asset.
SBOM_SUFFIXES = {SPDX: ".spdx.json", CYCLONEDX: ".cdx.json"}


def vex_name(version: Version) -> str:
    """The release's OpenVEX asset: `brokkr-X.Y.Z.openvex.json`."""
    return f"brokkr-{version.plain}.openvex.json"


def json_bytes(document: Mapping) -> bytes:
    """A JSON document as an asset file: indented, keys sorted, newline at the end."""
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


def _repo(repository: str) -> str:
    return repository.split("/", 1)[1]


def _layers(registry: Registry, repo: str, reference: str) -> list[dict]:
    manifest = registry.manifest(repo, reference)
    if manifest is None:
        raise ReleaseError(f"assets: {registry.host}/{repo}:{reference} is not in the registry")
    return list(json.loads(manifest.body).get("layers") or [])


def _verified_blob(registry: Registry, repo: str, digest: str) -> bytes:
    data = registry.blob(repo, digest)
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise ReleaseError(f"assets: blob {repo}@{digest} does not match its digest")
    return data


def chart_files(registry: Registry, plan: Plan, digests: dict[str, str]) -> list[Asset]:
    """Every chart's archive, and its Helm provenance file `<archive>.prov` when the
    chart was signed by Helm (pushed beside it as the provenance layer)."""
    assets = []
    for chart in plan.charts:
        repo = _repo(chart.repository)
        layers = {x["mediaType"]: x for x in _layers(registry, repo, digests[chart.name])}
        if CHART_LAYER not in layers:
            raise ReleaseError(f"assets: {chart.reference} has no chart archive layer")
        name = f"{chart.name}-{chart.version}.tgz"
        data = _verified_blob(registry, repo, layers[CHART_LAYER]["digest"])
        assets.append(Asset(name, data, content_type(".tgz")))
        if PROVENANCE_LAYER in layers:
            signed = _verified_blob(registry, repo, layers[PROVENANCE_LAYER]["digest"])
            assets.append(Asset(name + ".prov", signed, content_type(".prov")))
    return assets


def install_manifests(plan: Plan, archives: Sequence[Asset], images: dict[str, str]) -> list[Asset]:
    """`<chart>-install.yaml` of every chart, rendered from its published archive.

    `images` maps an image name (the same as its chart's) to the digest of its
    published manifest list: the files pin the exact images this release signed.
    """
    pinned: dict[str, dict[str, object]] = {}
    for image in plan.images:
        registry, repository = image.repository.split("/", 1)
        digest = images[image.name]
        pinned[image.name] = {
            "image": {"registry": registry, "repository": repository, "digest": digest}
        }
    with tempfile.TemporaryDirectory() as tmp:
        for archive in archives:
            with tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:gz") as tar:
                extract_all(tar, Path(tmp))
        rendered = manifests.install_manifests(Path(tmp), extra_values=pinned)
    return [Asset(name, text.encode(), content_type(name)) for name, text in rendered]


def attested_sbom(registry: Registry, repo: str, digest: str, predicate_type: str = SPDX) -> bytes:
    """The SBOM (SPDX or CycloneDX JSON) attested by cosign to one image digest."""
    try:
        return json_bytes(attestations.predicate(registry, repo, digest, predicate_type))
    except ReleaseError as exc:
        raise ReleaseError(f"assets: {exc}") from None


def sboms(registry: Registry, plan: Plan, platforms: dict[str, dict[str, str]]) -> list[Asset]:
    """`<image>-<version>-<os>-<arch>.spdx.json` and `.cdx.json` for every platform image."""
    assets = []
    for image in plan.images:
        repo = _repo(image.repository)
        for platform, digest in sorted(platforms[image.name].items()):
            stem = f"{image.name}-{plan.version.plain}-{platform.replace('/', '-')}"
            for predicate_type, suffix in SBOM_SUFFIXES.items():
                data = attested_sbom(registry, repo, digest, predicate_type)
                assets.append(Asset(stem + suffix, data, content_type(suffix)))
    return assets


CONTENT_TYPES = {
    ".tgz": "application/gzip",
    ".tar.gz": "application/gzip",
    ".json": "application/json",
    ".yaml": "application/yaml",
}


def content_type(name: str) -> str:
    """The upload Content-Type for an asset file name."""
    return next((t for ext, t in CONTENT_TYPES.items() if name.endswith(ext)), "text/plain")


def checksums(assets: Sequence[Asset]) -> Asset:
    """`sha256sum -c` compatible list of every asset."""
    lines = [f"{hashlib.sha256(a.data).hexdigest()}  {a.name}\n" for a in assets]
    return Asset(
        CHECKSUMS,
        "".join(sorted(lines, key=lambda x: x.split()[1])).encode(),
        content_type(CHECKSUMS),
    )


def airgap_bundles(
    plan: Plan,
    charts: Sequence[Asset],
    platforms: dict[str, dict[str, str]],
    cosign: str,
) -> list[Asset]:
    """The air-gap bundle of every released platform (release/airgap.py)."""
    archives = [a for a in charts if a.name.endswith(".tgz")]
    bundles = []
    for platform in plan.options.platforms:
        digests = {image.name: platforms[image.name][platform] for image in plan.images}
        files = {airgap.chart_path(a.name): a.data for a in charts}
        # pinned to the platform image the bundle holds: its index is not in the bundle
        for rendered in install_manifests(plan, archives, digests):
            files[airgap.manifest_path(rendered.name)] = rendered.data
        images = [
            airgap.BundleImage(image.name, f"{image.repository}@{digests[image.name]}")
            for image in plan.images
        ]
        name = airgap.bundle_name(plan.version, platform)
        data = airgap.build(name, files, images, cosign, signed=plan.options.sign)
        bundles.append(Asset(name, data, content_type(name)))
    return bundles


def release_assets(
    registry: Registry,
    plan: Plan,
    charts: dict[str, str],
    platforms: dict[str, dict[str, str]],
    images: dict[str, str],
    *,
    cosign: str,
    vex: Mapping | None = None,
) -> list[Asset]:
    """Everything attached to the GitHub release, the checksums file last."""
    found = chart_files(registry, plan, charts)
    chart_assets = list(found)
    found += install_manifests(plan, [a for a in found if a.name.endswith(".tgz")], images)
    if plan.options.sign and plan.options.sbom:
        found += sboms(registry, plan, platforms)
    if vex is not None:
        name = vex_name(plan.version)
        found.append(Asset(name, json_bytes(vex), content_type(name)))
    found += airgap_bundles(plan, chart_assets, platforms, cosign)
    names = [a.name for a in found]
    if len(names) != len(set(names)):
        raise ReleaseError(f"assets: duplicate asset names in {names}")
    return [*found, checksums(found)]
