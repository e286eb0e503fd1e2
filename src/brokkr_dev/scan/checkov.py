"""Checkov, offline (--skip-download), on Dockerfiles and rendered manifests.

Checkov's open-source checks carry no severity without its platform API, so each
failed check counts at the policy's `checkov_unrated` severity.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from brokkr_dev.base import paths
from brokkr_dev.scan.model import Finding, ScanError, TargetResult

SCANNER = "checkov"
TIMEOUT = 900


def binary() -> str:
    """The pinned checkov in bin/ (`invoke tools.install --names checkov`)."""
    pinned = paths.BIN_DIR / "checkov"
    if not pinned.exists():
        raise ScanError("checkov is not installed: run `invoke tools.install --names checkov`")
    return str(pinned)


def scan(
    directory: Path,
    frameworks: list[str],
    unrated: str,
    name_of: Callable[[str], str] = str,
) -> list[TargetResult]:
    """Run Checkov on a directory; one result per file it checked.

    name_of maps Checkov's file path (relative to the directory, with a leading
    "/") to our target name.
    """
    command = [
        binary(),
        "--directory",
        str(directory),
        "--framework",
        ",".join(frameworks),
        "--skip-download",
        "--output",
        "json",
        "--compact",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ScanError(f"checkov took longer than {TIMEOUT} s on {directory}") from None
    # Exit 1 means "failed checks"; anything else is Checkov itself failing.
    if done.returncode not in (0, 1):
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise ScanError(f"`{' '.join(command)}` failed ({done.returncode}): {tail}")
    try:
        parsed = json.loads(done.stdout) if done.stdout.strip() else []
    except json.JSONDecodeError as exc:
        raise ScanError(f"checkov printed no JSON report ({exc})") from None
    return parse(parsed, unrated, name_of)


def parse(
    report: list | dict, unrated: str, name_of: Callable[[str], str] = str
) -> list[TargetResult]:
    """Per-file results from Checkov's JSON (one report, or a list per framework)."""
    reports = report if isinstance(report, list) else [report]
    by_file: dict[str, TargetResult] = {}
    for single in reports:
        results = single.get("results") or {}
        for key, failed in (("passed_checks", False), ("failed_checks", True)):
            for check in results.get(key) or []:
                name = name_of(str(check.get("file_path", "?")))
                result = by_file.setdefault(name, TargetResult(SCANNER, name))
                result.checks += 1
                if failed:
                    lines = check.get("file_line_range") or []
                    result.findings.append(
                        Finding(
                            id=str(check.get("check_id")),
                            severity=str(check.get("severity") or unrated).upper(),
                            title=str(check.get("check_name", "")),
                            location=f"line {lines[0]}" if lines else "",
                            # The object (Kind.namespace.name): entries can accept by it.
                            detail=str(check.get("resource") or ""),
                        )
                    )
    return list(by_file.values())
