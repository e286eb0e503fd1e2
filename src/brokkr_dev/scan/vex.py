"""The release's OpenVEX document: our verdict on each accepted vulnerability of the images.

The scan accepts a vulnerability of an image only through an entry of
security/accepted.toml, which says why and, for these, what a user's scanner
should conclude (`vex_status`, `vex_justification`). This module turns those
verdicts into an OpenVEX v0.2.0 document whose products are the released images by
digest (`pkg:oci/<name>@sha256:...`, the index and each platform image), so that
`trivy image --vex <file>` (or `--vex oci`, reading the signed attestation) shows a
user the same verdicts as our scan.

With the scan report (build/scan/report.json of the release-mode image scan) each
statement lists the images where the finding was actually seen; without it, every
image the entry's target covers.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from brokkr_dev.scan.model import Finding, ScanError
from brokkr_dev.scan.policy import VEX_SCANNERS, Accepted, is_vulnerability_id

CONTEXT = "https://openvex.dev/ns/v0.2.0"
TOOLING = "brokkr_dev.scan.vex"
# The pypi scanner's one target: the Python pins that every image installs.
REQUIREMENTS_TARGET = "docker/requirements.txt"


@dataclass(frozen=True)
class ReleasedImage:
    """One released image: its index digest and each platform's (`linux/amd64` -> digest)."""

    name: str
    index: str
    platforms: Mapping[str, str]

    def purls(self, arches: Sequence[str] | None = None) -> list[str]:
        """The index and the platform images (those of `arches`, default all) as purls."""
        chosen = [
            digest
            for platform, digest in sorted(self.platforms.items())
            if arches is None or platform.rsplit("/", 1)[-1] in arches
        ]
        return [purl(self.name, self.index), *(purl(self.name, d) for d in chosen)]


def purl(name: str, digest: str) -> str:
    """An image by digest, without qualifiers: it matches wherever the image is pulled from."""
    return f"pkg:oci/{name}@{quote(digest, safe='')}"


def _image_targets(images: Sequence[ReleasedImage]) -> dict[str, tuple[ReleasedImage, str]]:
    """Scan target names of the image scans (`brokkr-broker/amd64`) -> (image, arch)."""
    return {
        f"{image.name}/{platform.rsplit('/', 1)[-1]}": (image, platform.rsplit("/", 1)[-1])
        for image in images
        for platform in image.platforms
    }


def products(scanner: str, target: str, images: Sequence[ReleasedImage]) -> list[str]:
    """The purls a finding of `scanner` on `target` (a name or a glob) concerns."""
    if scanner == "pypi":
        if fnmatch.fnmatchcase(REQUIREMENTS_TARGET, target):
            return sorted(p for image in images for p in image.purls())
        return []
    found: set[str] = set()
    for name, (image, arch) in _image_targets(images).items():
        if fnmatch.fnmatchcase(name, target):
            found.update(image.purls([arch]))
    return sorted(found)


@dataclass(frozen=True)
class Verdict:
    """One accepted vulnerability and where it was seen."""

    entry: Accepted
    products: tuple[str, ...]


def verdicts_from_report(
    report: Mapping, accepted: Sequence[Accepted], images: Sequence[ReleasedImage]
) -> list[Verdict]:
    """The accepted image vulnerabilities the scan report shows, each with its entry."""
    found = []
    for result in report.get("results") or []:
        scanner, target = str(result.get("scanner")), str(result.get("target"))
        if scanner not in VEX_SCANNERS:
            continue
        for raw in result.get("findings") or []:
            if not raw.get("accepted_by") or raw.get("by_policy"):
                continue
            finding = Finding(
                id=str(raw.get("id")),
                severity=str(raw.get("severity", "UNKNOWN")),
                title=str(raw.get("title", "")),
                detail=str(raw.get("detail", "")),
            )
            if not is_vulnerability_id(finding.id):
                continue
            entry = next((a for a in accepted if a.matches(scanner, finding, target)), None)
            if entry is None:
                raise ScanError(
                    f"the scan report accepts {finding.id} on {target}, but no entry of "
                    "security/accepted.toml matches it: run the scan again on this tree"
                )
            found.append(Verdict(entry, tuple(products(scanner, target, images))))
    return found


def verdicts_from_entries(
    accepted: Sequence[Accepted], images: Sequence[ReleasedImage]
) -> list[Verdict]:
    """Without a report: every accepted image vulnerability, on every image its target covers."""
    return [
        Verdict(entry, tuple(products(entry.scanner, entry.target, images)))
        for entry in accepted
        if entry.scanner in VEX_SCANNERS and is_vulnerability_id(entry.id)
    ]


def statement(vulnerability: str, entry: Accepted, purls: Sequence[str]) -> dict[str, object]:
    """One OpenVEX statement: the status and the reason in the field the status calls for."""
    if entry.vex_status is None:
        raise ScanError(
            f"accepted finding {entry.id} ({entry.scanner}) has no vex_status; add one to "
            "security/accepted.toml (docs/security.md, VEX)"
        )
    found: dict[str, object] = {
        "vulnerability": {"name": vulnerability},
        "products": [{"@id": p} for p in purls],
        "status": entry.vex_status,
    }
    if entry.vex_status == "not_affected":
        if entry.vex_justification:
            found["justification"] = entry.vex_justification
        found["impact_statement"] = entry.reason
    elif entry.vex_status == "affected":
        found["action_statement"] = entry.reason
    else:
        found["status_notes"] = entry.reason
    return found


def document(
    verdicts: Sequence[Verdict], *, document_id: str, author: str, timestamp: str
) -> dict[str, object]:
    """The OpenVEX document: one statement per vulnerability and verdict, products merged."""
    merged: dict[tuple[str, str], tuple[Accepted, set[str]]] = {}
    for verdict in verdicts:
        if not verdict.products:
            continue
        key = (verdict.entry.id, f"{verdict.entry.vex_status}|{verdict.entry.reason}")
        _, purls = merged.setdefault(key, (verdict.entry, set()))
        purls.update(verdict.products)
    statements = [
        statement(vulnerability, entry, sorted(purls))
        for (vulnerability, _), (entry, purls) in sorted(merged.items())
    ]
    return {
        "@context": CONTEXT,
        "@id": document_id,
        "author": author,
        "timestamp": timestamp,
        "version": 1,
        "tooling": TOOLING,
        "statements": statements,
    }


def release_document(
    accepted: Sequence[Accepted],
    images: Sequence[ReleasedImage],
    *,
    report: Path | None,
    document_id: str,
    author: str,
    timestamp: str,
) -> dict[str, object]:
    """The release's VEX: from the scan report when there is one, else from the entries."""
    if report is not None and report.exists():
        try:
            data = json.loads(report.read_text())
        except ValueError as exc:
            raise ScanError(f"{report} is not a scan report ({exc}); run the scan again") from None
        verdicts = verdicts_from_report(data, accepted, images)
    else:
        verdicts = verdicts_from_entries(accepted, images)
    return document(verdicts, document_id=document_id, author=author, timestamp=timestamp)
