"""Go vulnerabilities of the Go tools we run: govulncheck against golang.org/x/vulndb.

The vulnerability database is fetched as the Go module golang.org/x/vulndb (its
data/osv holds one OSV entry per vulnerability) through the Go module proxy, the
one route to it that works here, and laid out as the file database govulncheck
reads (`-db file://...`). govulncheck then checks each tool binary and reports a
vulnerability only when the binary contains a vulnerable function (symbol level);
vulnerabilities in modules whose affected code is not linked in are counted but
do not fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from brokkr_dev.base import paths
from brokkr_dev.scan import osv
from brokkr_dev.scan.model import Finding, ScanError, TargetResult, not_built, not_scanned

SCANNER = "go-vulndb"
VULNDB_MODULE = "golang.org/x/vulndb"


class GoBinary(NamedTuple):
    """A Go tool binary to check, and whether it is test infrastructure only."""

    path: Path
    test_only: bool = False
    # Built on demand and only for tests (one kind node Kubernetes per minor): when
    # absent, the machine never ran it, and the result says "not built here".
    optional: bool = False


def fetch_vulndb(go: str = "go", version: str = "latest") -> Path:
    """Download golang.org/x/vulndb through the module proxy; its data/osv directory."""
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    try:
        done = subprocess.run(
            [go, "mod", "download", "-json", f"{VULNDB_MODULE}@{version}"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScanError(f"cannot run `go mod download` ({exc})") from None
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        info = {}
    if done.returncode != 0 or "Dir" not in info:
        reason = info.get("Error") or done.stderr.strip()[-300:]
        raise ScanError(f"{VULNDB_MODULE}@{version} could not be downloaded: {reason}")
    data = Path(info["Dir"]) / "data" / "osv"
    if not any(data.glob("GO-*.json")):
        raise ScanError(f"{VULNDB_MODULE}@{info.get('Version')} has no data/osv entries")
    return data


def build_db(data: Path, out: Path) -> Path:
    """Lay x/vulndb's OSV entries out as govulncheck's file database; return its dir."""
    if out.exists():
        shutil.rmtree(out)
    (out / "ID").mkdir(parents=True)
    (out / "index").mkdir()
    modules: dict[str, list[dict]] = {}
    newest = ""
    for path in sorted(data.glob("GO-*.json")):
        entry = json.loads(path.read_text())
        if entry.get("withdrawn"):
            continue
        shutil.copyfile(path, out / "ID" / path.name)
        modified = entry.get("modified") or "1970-01-01T00:00:00Z"
        newest = max(newest, modified)
        for item in entry.get("affected") or []:
            name = (item.get("package") or {}).get("name")
            if not name:
                continue
            vuln: dict = {"id": entry["id"], "modified": modified}
            fixed = _latest(osv.fixed_versions(item.get("ranges") or []))
            if fixed:
                vuln["fixed"] = fixed.lstrip("v")
            modules.setdefault(name, []).append(vuln)
    index = [{"path": name, "vulns": vulns} for name, vulns in sorted(modules.items())]
    (out / "index" / "modules.json").write_text(json.dumps(index))
    (out / "index" / "db.json").write_text(json.dumps({"modified": newest}))
    return out


def _latest(versions: list[str]) -> str | None:
    valid = []
    for version in versions:
        try:
            valid.append((osv.semver_key(version), version))
        except ValueError:
            continue
    return max(valid)[1] if valid else None


def govulncheck(binary: Path, db: Path, tool: str = "") -> tuple[int, list[Finding], int]:
    """(modules checked, findings with a vulnerable function linked in, other findings)."""
    command = [
        tool or str(paths.BIN_DIR / "govulncheck"),
        "-db",
        f"file://{db}",
        "-mode",
        "binary",
        "-format",
        "json",
        str(binary),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScanError(f"govulncheck could not run on {binary.name} ({exc})") from None
    if done.returncode != 0:
        raise ScanError(f"govulncheck failed on {binary.name}: {done.stderr.strip()[-300:]}")
    return parse_govulncheck(done.stdout)


def parse_govulncheck(stream: str) -> tuple[int, list[Finding], int]:
    """Read govulncheck's JSON message stream."""
    decoder = json.JSONDecoder()
    position, modules = 0, 0
    summaries: dict[str, str] = {}
    called: dict[str, Finding] = {}
    other: set[str] = set()
    text = stream.strip()
    while position < len(text):
        message, position = decoder.raw_decode(text, position)
        while position < len(text) and text[position].isspace():
            position += 1
        if "SBOM" in message:
            modules = len(message["SBOM"].get("modules") or []) + 1  # + the Go release
        elif "osv" in message:
            summaries[message["osv"]["id"]] = message["osv"].get("summary", "")
        elif "finding" in message:
            finding = message["finding"]
            frame = (finding.get("trace") or [{}])[0]
            vuln_id = finding["osv"]
            if frame.get("function"):
                symbol = ".".join(
                    part for part in (frame.get("receiver"), frame.get("function")) if part
                )
                called[vuln_id] = Finding(
                    id=vuln_id,
                    severity="UNKNOWN",
                    title=summaries.get(vuln_id, ""),
                    location=f"{frame.get('module')}@{frame.get('version')} "
                    f"{frame.get('package')}.{symbol} "
                    f"(fixed in {finding.get('fixed_version') or 'no release yet'})",
                )
            else:
                other.add(vuln_id)
    return modules, list(called.values()), len(other - set(called))


def scan_binaries(
    binaries: dict[str, GoBinary],
    unrated: str,
    go: str = "go",
    data: Path | None = None,
    workdir: Path | None = None,
) -> list[TargetResult]:
    """One result per tool; all "not scanned" when the database cannot be fetched."""
    workdir = workdir or paths.REPO_ROOT / "build" / "scan"

    def missing(name: str, why: str) -> TargetResult:
        result = not_scanned(SCANNER, name, why)
        result.test_only = binaries[name].test_only
        return result

    try:
        db = build_db(data or fetch_vulndb(go), workdir / "govulndb")
    except ScanError as exc:
        return [missing(name, str(exc)) for name in sorted(binaries)]
    results = []
    for name, (binary, test_only, optional) in sorted(binaries.items()):
        if optional and not binary.exists():
            results.append(not_built(SCANNER, name, binary))
            continue
        if not binary.exists():
            results.append(missing(name, f"{binary} is not installed"))
            continue
        try:
            modules, findings, _uncalled = govulncheck(binary, db)
        except ScanError as exc:  # the database answered; the scanner failed: an error
            results.append(TargetResult(SCANNER, name, problem=str(exc), test_only=test_only))
            continue
        for finding in findings:
            finding.severity = unrated
        results.append(
            TargetResult(SCANNER, name, checks=modules, findings=findings, test_only=test_only)
        )
    return results
