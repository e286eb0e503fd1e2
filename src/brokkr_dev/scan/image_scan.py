"""Scans of the built images: SBOM, licences, misconfigurations and vulnerabilities.

Each per-architecture image is exported once to an OCI archive, which every
scanner then reads; nothing is pulled. Debian's view needs only the image's dpkg
status file, read straight from the archive's layers (no container is started, so
arm64 images need no emulation).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import IO

from brokkr_dev.base import archives
from brokkr_dev.containers import images
from brokkr_dev.containers.podman import podman
from brokkr_dev.scan import debian, trivy
from brokkr_dev.scan.model import Finding, ScanError, TargetResult
from brokkr_dev.scan.policy import Policy

DPKG_STATUS = "var/lib/dpkg/status"


def references(tag: str = "") -> dict[tuple[str, str], str]:
    """(target, arch) -> the per-architecture image of this revision (or of tag)."""
    info = images.read_build_info()
    base = tag or info.tags[0]
    return {
        (target, arch): f"{images.image_name(target)}:{base}-{arch}"
        for target in images.TARGETS
        for arch in images.ARCHES
    }


def export(reference: str, archive: Path) -> Path:
    """`podman save` the image as an OCI archive (replacing an older export)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    done = subprocess.run(
        podman("save", "--quiet", "--format", "oci-archive", "--output", str(archive), reference),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ScanError(
            f"cannot export {reference} ({done.stderr.strip()[-200:]}); build the images "
            "of this revision first: `nox -s images`"
        )
    return archive


def oci_layout(archive: Path, destination: Path) -> Path:
    """Unpack an OCI archive into an OCI layout directory: what `trivy --input` reads.

    Trivy takes a Docker archive (with manifest.json) or an OCI layout directory,
    not a tar of the latter.
    """
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            archives.extract_all(tar, destination)
    except (OSError, tarfile.TarError) as exc:
        raise ScanError(f"{archive.name} is not a readable OCI archive ({exc})") from None
    if not (destination / "index.json").exists():
        raise ScanError(f"{archive.name} holds no OCI layout (no index.json)")
    return destination


def dpkg_status(archive: Path, destination: Path) -> Path:
    """Extract the image's dpkg status file (from the topmost layer that has it)."""
    content: bytes | None = None
    try:
        with tarfile.open(archive) as outer:
            index = json.load(_member(outer, "index.json"))
            manifest = json.load(_blob(outer, index["manifests"][0]["digest"]))
            for layer in manifest["layers"]:
                with tarfile.open(fileobj=_blob(outer, layer["digest"]), mode="r:*") as inner:
                    for name in (DPKG_STATUS, f"./{DPKG_STATUS}"):
                        try:
                            member = inner.extractfile(name)
                        except KeyError:
                            member = None
                        if member is not None:
                            content = member.read()
    except (OSError, tarfile.TarError, ValueError, KeyError, IndexError, TypeError) as exc:
        # ValueError covers bad JSON; the others a manifest without the expected fields.
        raise ScanError(f"{archive.name} is not a readable OCI archive ({exc!r})") from None
    if content is None:
        raise ScanError(f"{archive.name} has no {DPKG_STATUS}: not a Debian-based image?")
    destination.write_bytes(content)
    return destination


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        handle = archive.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise ScanError(f"{archive.name!r}: {name} is missing; not an OCI archive")
    return handle


def _blob(archive: tarfile.TarFile, digest: str) -> IO[bytes]:
    algorithm, value = digest.split(":", 1)
    return _member(archive, f"blobs/{algorithm}/{value}")


def licence_allowed(expression: str, allowed: frozenset[str]) -> bool:
    """Whether an SPDX licence expression is allowed: one OR alternative whose every
    AND part is on the allowlist ("Apache-2.0 AND BSD-2-Clause" needs both)."""
    flat = expression.replace("(", " ").replace(")", " ")
    return any(
        all(part.strip() in allowed for part in alternative.split(" AND "))
        for alternative in flat.split(" OR ")
    )


def licence_result(
    target: str, packages: int, found: list[trivy.PackageLicence], allowed: frozenset[str]
) -> TargetResult:
    """A finding for every package licence not on the allowlist."""
    result = TargetResult("licence", target, checks=packages)
    seen = set()
    for item in found:
        key = (item.package, item.licence)
        if licence_allowed(item.licence, allowed) or key in seen:
            continue
        seen.add(key)
        result.findings.append(
            Finding(
                id=f"licence:{item.package}",
                severity="HIGH",
                title=f"{item.package} is licensed {item.licence}, not on the allowlist",
                location=item.path,
            )
        )
    return result


def scan_image(
    reference: str, name: str, arch: str, workdir: Path, policy: Policy
) -> list[TargetResult]:
    """Every image scan of one per-architecture image.

    A scanner that fails (a tool missing, a report unreadable) becomes an error
    result of its own; the other scans still run.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    archive = export(reference, workdir / "image.oci.tar")
    return scan_archive(archive, name, arch, workdir, policy)


def scan_archive(
    archive: Path, name: str, arch: str, workdir: Path, policy: Policy
) -> list[TargetResult]:
    """Every image scan of one exported OCI archive (see scan_image).

    An archive that cannot be unpacked raises ScanError. Only an unavailable
    vulnerability database is "not scanned" (trivy.image_vulnerabilities); any other
    failure of a step is an error result, which fails the scan in every mode.
    """
    cache = workdir.parent / "trivy-cache"
    layout = oci_layout(archive, workdir / "oci")

    def sbom() -> TargetResult:
        components = trivy.sbom(layout, workdir / "sbom.cdx.json", cache)
        result = TargetResult("sbom", name, checks=components)
        if components == 0:
            result.problem = "the SBOM lists no components"
        return result

    def licences() -> TargetResult:
        packages, found = trivy.image_licences(layout, cache)
        return licence_result(name, packages, found, policy.licences)

    def pending() -> TargetResult:
        status = dpkg_status(archive, workdir / "dpkg-status")
        return debian.scan(status, arch, name, workdir / "apt", policy.unrated_severity)

    steps = {
        "sbom": sbom,
        "licence": licences,
        "trivy-image": lambda: trivy.image_misconfig(layout, name, cache),
        "trivy-vuln": lambda: trivy.image_vulnerabilities(layout, name, cache),
        debian.SCANNER: pending,
    }
    results = []
    for scanner, step in steps.items():
        try:
            results.append(step())
        except ScanError as exc:
            results.append(TargetResult(scanner, name, problem=str(exc)))
    return results
