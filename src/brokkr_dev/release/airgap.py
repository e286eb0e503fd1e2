"""The air-gap bundle: per architecture, one archive with everything an install
without internet needs, built from what the release published.

`brokkr-X.Y.Z-airgap-linux-<arch>.tar.gz` holds, under a directory of the same name:

- `charts/brokkr-<chart>-X.Y.Z.tgz` (and `.tgz.prov` when Helm signed it): the
  published chart archives, the same bytes as the release assets;
- `images/brokkr-<image>/`: one OCI image layout per image with that
  architecture's platform image (its published digest), its cosign signature and
  its attestations (provenance, SPDX and CycloneDX SBOMs, VEX). cosign v3 keeps
  these as Sigstore bundles: each referrer manifest (its `subject` the image) and
  bundle is a blob of the layout that index.json does not list, which is where
  `cosign save` leaves them and where `cosign verify --local-image` and `cosign
  load` look for them. Layouts of releases signed by cosign v2 list a `.sig` and
  an `.att` manifest in index.json instead;
- `manifests/brokkr-<chart>-install.yaml`: the raw manifests (release/manifests.py),
  each image pinned by the digest of this architecture's platform image;
- `SHA256SUMS`: the SHA-256 of every other file, `sha256sum --check` format.

The layouts are written by the pinned `cosign save` rather than by our registry
client: it copies the image and everything cosign attached to it byte for byte, in
the layout that `cosign load` pushes to a mirror and `cosign verify --local-image`
checks offline. Our client would have to copy cosign's layout conventions (and
stream large blobs) to do the same.

The layouts hold the platform image, not the published index: the index names the
other architecture too, and a registry refuses an index whose images are missing.
So the release signs each platform image as well as the index, and the raw
manifests of a bundle pin the platform digest it holds.

The archive is reproducible (sorted members, fixed times and owners, gzip without a
time stamp): a resumed release rebuilds the same bytes that it may have uploaded.
"""

from __future__ import annotations

import gzip
import json
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base.commands import run
from brokkr_dev.release import ReleaseError
from brokkr_dev.release.attestations import SIGNATURE, bundle_layers
from brokkr_dev.release.provenance import sha256_file
from brokkr_dev.release.registry import is_loopback
from brokkr_dev.release.version import Version

SUFFIX = ".tar.gz"
CHECKSUMS = "SHA256SUMS"
# cosign save marks each entry of its layout's index.json with what it is.
KIND = "kind"
IMAGE_KIND = "dev.cosignproject.cosign/image"
SIGNATURES_KIND = "dev.cosignproject.cosign/sigs"
ATTESTATIONS_KIND = "dev.cosignproject.cosign/atts"
# cosign's own time limit (default 3 minutes) is too short for a large image; ours
# (run's timeout) is what stops a hung copy.
COSIGN_TIMEOUT = "30m"
TIMEOUT = 1800


def bundle_name(version: Version, platform: str) -> str:
    """`brokkr-X.Y.Z-airgap-linux-amd64.tar.gz`: the asset of one platform."""
    return f"brokkr-{version.plain}-airgap-{platform.replace('/', '-')}{SUFFIX}"


def top_directory(name: str) -> str:
    """The one directory a bundle unpacks into: its name without `.tar.gz`."""
    return name.removesuffix(SUFFIX)


def image_directory(image: str) -> str:
    return f"images/{image}"


def chart_path(file_name: str) -> str:
    return f"charts/{file_name}"


def manifest_path(file_name: str) -> str:
    return f"manifests/{file_name}"


# --- OCI image layouts ----------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What a layout written by `cosign save` holds: manifest digests by kind, and
    the referrer manifests of Sigstore bundles about its image (cosign v3) with the
    predicate type each claims."""

    images: tuple[str, ...]
    signatures: str | None
    attestations: str | None
    bundles: tuple[tuple[str, str], ...] = ()  # (referrer manifest digest, predicate type)

    @property
    def signed(self) -> bool:
        return self.signatures is not None or any(t == SIGNATURE for _, t in self.bundles)

    @property
    def attested(self) -> bool:
        return self.attestations is not None or any(t != SIGNATURE for _, t in self.bundles)


def layout_bundles(directory: Path, image: str) -> tuple[tuple[str, str], ...]:
    """(digest, predicate type) of each blob that is a referrer manifest of `image`
    holding a Sigstore bundle, sorted by digest."""
    found = []
    blobs = directory / "blobs" / "sha256"
    for path in sorted(blobs.iterdir()) if blobs.is_dir() else []:
        if path.stat().st_size > 1 << 20:
            continue  # a layer, not a referrer manifest
        try:
            body = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError):
            continue
        claimed, layers = bundle_layers(body, image)
        if layers:
            found.append((f"sha256:{path.name}", claimed))
    return tuple(found)


def read_layout(directory: Path) -> Layout:
    """The entries of a layout's index.json, or ReleaseError when it is none."""
    try:
        index = json.loads((directory / "index.json").read_text())
        entries = list(index.get("manifests") or [])
    except (OSError, ValueError, AttributeError) as exc:
        raise ReleaseError(f"{directory} is not an OCI image layout ({exc})") from None

    def kind(name: str) -> list[str]:
        return [e["digest"] for e in entries if (e.get("annotations") or {}).get(KIND) == name]

    signatures, attestations = kind(SIGNATURES_KIND), kind(ATTESTATIONS_KIND)
    images = tuple(kind(IMAGE_KIND))
    return Layout(
        images,
        signatures[0] if signatures else None,
        attestations[0] if attestations else None,
        layout_bundles(directory, images[0]) if len(images) == 1 else (),
    )


def _blob(directory: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return directory / "blobs" / algorithm / hexdigest


def layout_problems(directory: Path, image: str) -> list[str]:
    """Why a layout is not exactly `image` (a platform image digest) with whatever
    cosign attached: its entries, and every blob present and matching its digest."""
    if not (directory / "oci-layout").is_file():
        return [f"{directory.name} is not an OCI image layout (no oci-layout file)"]
    try:
        layout = read_layout(directory)
    except ReleaseError as exc:
        return [str(exc)]
    problems = []
    if layout.images != (image,):
        problems.append(f"holds image {', '.join(layout.images) or 'none'}, expected {image}")
    blobs = directory / "blobs" / "sha256"
    for path in sorted(blobs.iterdir()) if blobs.is_dir() else []:
        if sha256_file(path) != path.name:
            problems.append(f"blob {path.name[:12]} does not match its digest")
    manifests = [d for d in (*layout.images, layout.signatures, layout.attestations) if d]
    manifests += [digest for digest, _ in layout.bundles]
    for digest in manifests:
        path = _blob(directory, digest)
        if not path.is_file():
            problems.append(f"manifest {digest} is missing")
            continue
        body = json.loads(path.read_bytes())
        for needed in [body.get("config") or {}, *(body.get("layers") or [])]:
            if needed.get("digest") and not _blob(directory, needed["digest"]).is_file():
                problems.append(f"blob {needed['digest']} of {digest[:19]} is missing")
    return problems


def save(cosign: str, reference: str, destination: Path) -> Layout:
    """`cosign save` of one image by digest (`host/repo@sha256:...`), with its
    signature and attestations, into a new layout; checked before it is used."""
    host, digest = reference.split("/", 1)[0], reference.rsplit("@", 1)[1]
    flags = ["--allow-http-registry", "--allow-insecure-registry"] if is_loopback(host) else []
    run(
        [cosign, "save", "--timeout", COSIGN_TIMEOUT, *flags, "--dir", destination, reference],
        timeout=TIMEOUT,
        hint=f"cosign save {reference}: re-run the release to resume",
    )
    problems = layout_problems(destination, digest)
    if problems:
        raise ReleaseError(f"cosign save {reference}: " + "; ".join(problems))
    return read_layout(destination)


# --- checksums and the archive --------------------------------------------------------


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def sha256sums(root: Path) -> str:
    """`sha256sum --check` lines of every file under root but SHA256SUMS, by path."""
    return "".join(
        f"{sha256_file(p)}  {p.relative_to(root).as_posix()}\n"
        for p in _files(root)
        if p.relative_to(root).as_posix() != CHECKSUMS
    )


def parse_sha256sums(text: str) -> dict[str, str]:
    """path -> SHA-256 hex of a `sha256sum` listing."""
    listed = {}
    for line in text.splitlines():
        if line.strip():
            checksum, _, name = line.partition("  ")
            listed[name.strip()] = checksum.strip()
    return listed


def checksum_problems(root: Path) -> list[str]:
    """Files that differ from, are missing from, or are not listed in root's SHA256SUMS."""
    sums = root / CHECKSUMS
    if not sums.is_file():
        return [f"no {CHECKSUMS}"]
    listed = parse_sha256sums(sums.read_text())
    present = {p.relative_to(root).as_posix(): p for p in _files(root)}
    present.pop(CHECKSUMS)
    problems = [f"{name} is not listed" for name in sorted(set(present) - set(listed))]
    problems += [f"{name} is listed but missing" for name in sorted(set(listed) - set(present))]
    problems += [
        f"{name} does not match its checksum"
        for name, path in sorted(present.items())
        if name in listed and sha256_file(path) != listed[name]
    ]
    return problems


def write_archive(source: Path, top: str, archive: Path) -> None:
    """source/ as a reproducible `top/...` tar.gz: the same files give the same bytes."""

    def normal(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    paths = sorted(source.rglob("*"), key=lambda p: p.relative_to(source).as_posix())
    with archive.open("wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0
    ) as compressed, tarfile.open(
        fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT
    ) as tar:  # fmt: skip
        tar.add(source, arcname=top, recursive=False, filter=normal)
        for path in paths:
            name = f"{top}/{path.relative_to(source).as_posix()}"
            tar.add(path, arcname=name, recursive=False, filter=normal)


@dataclass(frozen=True)
class BundleImage:
    """One image of a bundle: its name and its platform image (`host/repo@digest`)."""

    name: str
    reference: str


def build(
    name: str,
    files: Mapping[str, bytes],
    images: list[BundleImage],
    cosign: str,
    *,
    signed: bool,
) -> bytes:
    """The bundle archive `name`: `files` (path in the bundle -> content), a layout per
    image, SHA256SUMS. A signed release's layouts must carry signature and attestations."""
    top = top_directory(name)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / top
        for path, data in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        for image in images:
            layout = save(cosign, image.reference, root / image_directory(image.name))
            if signed and not (layout.signed and layout.attested):
                raise ReleaseError(
                    f"air-gap bundle: {image.reference} has no cosign signature or no "
                    "attestations in the registry; re-run the release (the sign, "
                    "provenance and sbom steps add what is missing)"
                )
        (root / CHECKSUMS).write_text(sha256sums(root))
        archive = Path(tmp) / name
        write_archive(root, top, archive)
        return archive.read_bytes()
