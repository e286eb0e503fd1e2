"""Our thin Trivy wrapper: run the pinned `trivy` offline and read its JSON.

Trivy's checks for configuration files are embedded in the binary, so `trivy
config` and image misconfiguration, licence and SBOM scans run without network.
Its vulnerability database is downloaded from a registry that is not reachable
everywhere; a site can point at a pre-seeded database directory or a mirror
(settings below). When neither works, the vulnerability scan is "not scanned".
Only that is: a Trivy that fails in any other way, or prints no JSON report, is
an error that fails the scan in every mode.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import commands, paths
from brokkr_dev.scan.model import Finding, ScanError, TargetResult, not_scanned

SCANNER = "trivy-config"
VULN_SCANNER = "trivy-vuln"
TIMEOUT = 900
# A directory holding a Trivy cache with db/trivy.db (e.g. copied from a machine
# that can download it); used as is, never updated.
DB_DIR_ENV = "BROKKR_TRIVY_DB_DIR"
# An OCI repository mirroring ghcr.io/aquasecurity/trivy-db for Trivy to download from.
DB_REPOSITORY_ENV = "BROKKR_TRIVY_DB_REPOSITORY"
# What Trivy prints when it cannot fetch its vulnerability database ("init error: DB
# error: failed to download vulnerability DB: ...") or has none and may not fetch one.
DB_UNAVAILABLE = re.compile(
    r"failed to download vulnerability DB|first run cannot skip downloading DB"
    r"|--skip-db-update cannot be specified on the first run",
    re.IGNORECASE,
)


class DatabaseUnavailable(ScanError):
    """Trivy's vulnerability database cannot be fetched, or the seeded one is missing.

    The one Trivy failure that means "not scanned"; every other one is an error.
    """


def binary() -> str:
    """The pinned trivy in bin/ (`invoke tools.install --names trivy`)."""
    pinned = paths.BIN_DIR / "trivy"
    if not pinned.exists():
        raise ScanError("trivy is not installed: run `invoke tools.install --names trivy`")
    return str(pinned)


def run(args: list[str], cache_dir: Path) -> dict:
    """Run trivy with JSON output and return the parsed report (ScanError on failure)."""
    command = [binary(), *args, "--cache-dir", str(cache_dir), "--format", "json", "--quiet"]
    done = _run(command)
    if done.returncode != 0:
        said = [line for line in (done.stderr or "").splitlines() if DB_UNAVAILABLE.search(line)]
        if said:
            raise DatabaseUnavailable(said[-1].strip()[:400])
        raise ScanError(f"`{' '.join(command)}` failed (exit {done.returncode}): {_tail(done)}")
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ScanError(f"trivy printed no JSON report ({exc}): {_tail(done)}") from None
    if not isinstance(report, dict):
        raise ScanError(f"trivy printed JSON that is not a report object: {done.stdout[:200]!r}")
    return report


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return commands.run(command, timeout=TIMEOUT, check=False)
    except commands.CommandError as exc:  # not found, or timed out
        raise ScanError(str(exc)) from None


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])


def config_scan(
    directory: Path,
    cache_dir: Path,
    name_of: Callable[[str], str] = str,
    trusted_registries: tuple[str, ...] = (),
) -> list[TargetResult]:
    """`trivy config` of a directory: one result per file trivy recognised.

    name_of maps trivy's target (a path relative to the directory) to our name.
    trusted_registries feed KSV-0125 (images from other registries fail); without
    them Trivy trusts only a built-in list of cloud registries.
    """
    args = ["config", "--skip-check-update"]
    if trusted_registries:
        data = cache_dir / "check-data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "trusted-registries.json").write_text(
            json.dumps({"ksv0125": {"trusted_registries": list(trusted_registries)}})
        )
        args += ["--config-data", str(data)]
    report = run([*args, str(directory)], cache_dir)
    by_target: dict[str, TargetResult] = {}
    for entry in report.get("Results") or []:
        name = name_of(entry.get("Target", "?"))
        result = by_target.setdefault(name, TargetResult(SCANNER, name))
        result.checks += misconf_checks(entry)
        result.findings += misconf_findings(entry)
    return list(by_target.values())


def misconf_checks(entry: dict) -> int:
    """How many checks ran on one result (passed + failed)."""
    summary = entry.get("MisconfSummary") or {}
    return int(summary.get("Successes", 0)) + int(summary.get("Failures", 0))


# KSV-01010 flags a ConfigMap by patterns over its keys and values and lists the
# flagged keys in its message; one finding per key lets each key be judged.
SENSITIVE_CONFIGMAP = "KSV-01010"
FLAGGED_KEYS = re.compile(r"key\(s\) or value\(s\) '\{(.*)\}'")


def misconf_findings(entry: dict) -> list[Finding]:
    """The failed checks of one result."""
    findings = []
    for item in entry.get("Misconfigurations") or []:
        if item.get("Status", "FAIL") != "FAIL":
            continue
        cause = item.get("CauseMetadata") or {}
        line = cause.get("StartLine")
        where = " ".join(
            part
            for part in (str(cause.get("Resource") or ""), f"line {line}" if line else "")
            if part
        )
        check_id = str(item.get("ID") or item.get("AVDID"))
        message = str(item.get("Message") or "")
        keys = FLAGGED_KEYS.search(message) if check_id == SENSITIVE_CONFIGMAP else None
        details = [key.strip().strip('"') for key in keys.group(1).split(",")] if keys else []
        findings += [
            Finding(
                id=check_id,
                severity=str(item.get("Severity", "UNKNOWN")).upper(),
                title=str(item.get("Title", "")),
                location=where,
                detail=detail,
            )
            for detail in details or [message]
        ]
    return findings


# --- images -------------------------------------------------------------------------


def image_misconfig(archive: Path, target: str, cache_dir: Path) -> TargetResult:
    """Misconfiguration checks of an image's configuration (its build history)."""
    report = run(
        [
            "image",
            "--input",
            str(archive),
            "--scanners",
            "misconfig",
            "--image-config-scanners",
            "misconfig",
            "--skip-check-update",
            "--skip-db-update",
        ],
        cache_dir,
    )
    result = TargetResult("trivy-image", target)
    for entry in report.get("Results") or []:
        result.checks += misconf_checks(entry)
        result.findings += misconf_findings(entry)
    return result


@dataclass(frozen=True)
class PackageLicence:
    """One licence Trivy found for a package (or file) in an image."""

    package: str
    licence: str
    path: str


def image_licences(archive: Path, cache_dir: Path) -> tuple[int, list[PackageLicence]]:
    """(Python packages whose licences were read, their licences) from an image archive.

    Only language packages are judged: the Debian packages are redistributed
    unmodified from Debian, with their copyright files (docs/security.md).
    """
    report = run(
        [
            "image",
            "--input",
            str(archive),
            "--scanners",
            "license",
            "--skip-db-update",
            "--list-all-pkgs",
        ],
        cache_dir,
    )
    return parse_licences(report)


OS_PACKAGES = "OS Packages"  # the target of the Debian packages' licence result


def parse_licences(report: dict) -> tuple[int, list[PackageLicence]]:
    """(language packages, their licences) from a `--scanners license` report.

    Trivy lists the packages in "lang-pkgs" results and their licences in separate
    "license" results, one per ecosystem ("Python"; "OS Packages" for Debian's).
    """
    packages = 0
    licences = []
    for entry in report.get("Results") or []:
        if entry.get("Class") == "lang-pkgs":
            packages += len(entry.get("Packages") or [])
        elif entry.get("Class") == "license" and entry.get("Target") != OS_PACKAGES:
            licences += [
                PackageLicence(
                    package=str(item.get("PkgName") or item.get("FilePath") or "?"),
                    licence=str(item.get("Name", "?")),
                    path=str(item.get("FilePath") or ""),
                )
                for item in entry.get("Licenses") or []
            ]
    return packages, licences


def sbom(archive: Path, output: Path, cache_dir: Path) -> int:
    """Write a CycloneDX SBOM of the image; return how many components it lists."""
    command = [
        binary(),
        "image",
        "--input",
        str(archive),
        "--format",
        "cyclonedx",
        "--output",
        str(output),
        "--skip-db-update",
        "--cache-dir",
        str(cache_dir),
        "--quiet",
    ]
    done = _run(command)
    if done.returncode != 0:
        raise ScanError(f"SBOM of {archive.name} failed: {_tail(done)}")
    try:
        components = json.loads(output.read_text()).get("components") or []
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise ScanError(f"SBOM of {archive.name} is unreadable ({exc}): {_tail(done)}") from None
    return len(components)


def db_args(cache_dir: Path) -> tuple[list[str], Path]:
    """The database options and cache dir for a vulnerability scan, from the settings."""
    seeded = os.environ.get(DB_DIR_ENV)
    if seeded:
        if not (Path(seeded) / "db" / "trivy.db").exists():
            raise DatabaseUnavailable(
                f"{DB_DIR_ENV}={seeded} has no db/trivy.db; point it at a Trivy cache "
                "directory that holds the vulnerability database"
            )
        return ["--skip-db-update"], Path(seeded)
    mirror = os.environ.get(DB_REPOSITORY_ENV)
    return (["--db-repository", mirror] if mirror else []), cache_dir


def image_vulnerabilities(archive: Path, target: str, cache_dir: Path) -> TargetResult:
    """Trivy's vulnerability scan, or "not scanned" when its database is unavailable.

    Any other failure (Trivy crashing, an unreadable image, no JSON report) raises
    ScanError: an error, never "not scanned".
    """
    binary()  # a missing trivy is an error, not missing data
    try:
        options, cache = db_args(cache_dir)
        report = run(
            ["image", "--input", str(archive), "--scanners", "vuln", "--list-all-pkgs", *options],
            cache,
        )
    except DatabaseUnavailable as exc:
        return not_scanned(
            VULN_SCANNER,
            target,
            f"Trivy's vulnerability database is unavailable ({exc}); set "
            f"{DB_DIR_ENV} or {DB_REPOSITORY_ENV} (docs/security.md)",
        )
    result = TargetResult(VULN_SCANNER, target)
    for entry in report.get("Results") or []:
        result.checks += len(entry.get("Packages") or [])
        for item in entry.get("Vulnerabilities") or []:
            result.findings.append(
                Finding(
                    id=str(item.get("VulnerabilityID")),
                    severity=str(item.get("Severity", "UNKNOWN")).upper(),
                    title=f"{item.get('PkgName')} {item.get('InstalledVersion')}: "
                    f"{item.get('Title', '')}",
                    location=f"fixed in {item.get('FixedVersion') or 'no release yet'}",
                )
            )
    return result
