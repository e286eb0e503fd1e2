"""Known vulnerabilities of the images' pinned Python packages, from PyPI's JSON API.

PyPI's project document (/pypi/<name>/json) lists the vulnerabilities (from the
OSV database) of the LATEST release only; the per-version document is not
reachable here. So, for each pin:

- pinned == latest: the list covers our exact version. An empty list means no
  vulnerability is known to PyPI for it, at the time of the scan.
- pinned != latest: PyPI tells us nothing about our version; a vulnerability fixed
  in a later release would not appear. The pin is reported as the finding
  `behind:<name>` (bump it, or accept it for a limited time with a reason).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from brokkr_dev.scan.model import Finding, ScanError, TargetResult, not_scanned

SCANNER = "pypi"
INDEX_ENV = "BROKKR_PYPI_JSON_URL"  # a mirror of pypi.org's JSON API
DEFAULT_INDEX = "https://pypi.org/pypi"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(requirements: Path) -> dict[str, str]:
    """name -> version for every `name==version` line of a requirements file."""
    found = {}
    for line in requirements.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    if not found:
        raise ScanError(f"{requirements} pins no package (expected name==version lines)")
    return found


def project(name: str, index: str, timeout: float = 30) -> dict:
    """PyPI's JSON document for a project (ScanError when unreachable)."""
    url = f"{index.rstrip('/')}/{name}/json"
    if not url.startswith(("https://", "http://")):
        raise ScanError(f"{INDEX_ENV} must be an http(s) URL, got {index!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked
            return dict(json.load(response))
    except (OSError, urllib.error.URLError, json.JSONDecodeError) as exc:
        raise ScanError(f"{url}: {exc}") from None


def findings_for(name: str, pinned: str, document: dict, unrated: str) -> list[Finding]:
    """What PyPI's document says about our pin (see the module docstring)."""
    latest = str((document.get("info") or {}).get("version", ""))
    if latest != pinned:
        return [
            Finding(
                id=f"behind:{name}",
                severity=unrated,
                title=f"{name}=={pinned} is not the latest release ({latest}); PyPI's "
                "vulnerability data covers only the latest, so this pin is unverified",
            )
        ]
    return [
        Finding(
            id=str(item.get("id")),
            severity=unrated,
            title=f"{name}=={pinned}: {str(item.get('summary') or item.get('details', ''))[:120]}",
            location=f"fixed in {', '.join(item.get('fixed_in') or []) or 'no release yet'}",
        )
        for item in document.get("vulnerabilities") or []
        if not item.get("withdrawn")
    ]


def scan(requirements: Path, target: str, unrated: str) -> TargetResult:
    """One result for the requirements file; "not scanned" if any project is unreachable."""
    index = os.environ.get(INDEX_ENV, DEFAULT_INDEX)
    result = TargetResult(SCANNER, target)
    unreachable = []
    for name, version in sorted(pins(requirements).items()):
        try:
            document = project(name, index)
        except ScanError as exc:
            unreachable.append(str(exc))
            continue
        result.checks += 1
        result.findings += findings_for(name, version, document, unrated)
    if unreachable:
        return not_scanned(
            SCANNER, target, f"{len(unreachable)} project(s) unreachable, e.g. {unreachable[0]}"
        )
    return result
