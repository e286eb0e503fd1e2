"""Go vulnerabilities of the Go tools we run: golang.org/x/vulndb matched on module versions.

The vulnerability database is fetched as the Go module golang.org/x/vulndb (its
data/osv holds one OSV entry per vulnerability) through the Go module proxy, the
one route to it that works here. Each tool's build information (`go version -m`)
lists the modules and Go release linked into it; a module version inside an
affected range is a finding. This is a module-level match: it does not know
whether the vulnerable function is reachable, so it can over-report, never
under-report, compared with govulncheck's symbol analysis.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.scan import osv
from brokkr_dev.scan.model import Finding, ScanError, TargetResult, not_scanned

SCANNER = "go-vulndb"
VULNDB_MODULE = "golang.org/x/vulndb"
STDLIB = "stdlib"  # how OSV names the Go standard library and runtime


@dataclass(frozen=True)
class Module:
    """One module linked into a binary."""

    path: str
    version: str


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


def load_entries(data: Path) -> dict[str, list[tuple[str, dict]]]:
    """OSV entries indexed by module path: {module: [(id, affected), ...]}."""
    index: dict[str, list[tuple[str, dict]]] = {}
    for path in sorted(data.glob("GO-*.json")):
        entry = json.loads(path.read_text())
        if entry.get("withdrawn"):
            continue
        for item in entry.get("affected") or []:
            name = (item.get("package") or {}).get("name")
            if name:
                index.setdefault(name, []).append(
                    (entry["id"], {**item, "_summary": entry.get("summary", "")})
                )
    return index


def build_info(binary: Path, go: str = "go") -> list[Module] | None:
    """Modules and Go release in a Go binary (`go version -m`), or None if not Go."""
    done = subprocess.run(
        [go, "version", "-m", str(binary)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    return parse_build_info(done.stdout)


def parse_build_info(text: str) -> list[Module]:
    """Parse `go version -m` output; replaced modules count at their replacement's version."""
    modules: list[Module] = []
    lines = text.splitlines()
    if lines and ": go" in lines[0]:
        release = lines[0].rsplit(": go", 1)[1].strip().split()[0]
        modules.append(Module(STDLIB, "v" + release.split("-")[0]))
    for line in lines[1:]:
        fields = line.strip().split("\t")
        if len(fields) >= 3 and fields[0] in ("mod", "dep") and fields[2] != "(devel)":
            modules.append(Module(fields[1], fields[2]))
        elif len(fields) >= 3 and fields[0] == "=>" and modules:
            replaced = modules.pop()
            version = fields[2] if fields[2].startswith("v") else replaced.version
            modules.append(Module(replaced.path, version))
    return modules


def match(modules: list[Module], index: dict[str, list[tuple[str, dict]]]) -> list[Finding]:
    """Findings for every module version inside an affected range."""
    findings = []
    for module in modules:
        for vuln_id, item in index.get(module.path, []):
            try:
                hit = osv.affected(module.version, item.get("ranges") or [])
            except ValueError:
                continue  # a non-semver version string in an old entry
            if hit:
                fixed = osv.fixed_versions(item.get("ranges") or [])
                findings.append(
                    Finding(
                        id=vuln_id,
                        severity="UNKNOWN",
                        title=item.get("_summary") or "",
                        location=f"{module.path}@{module.version} "
                        f"(fixed in {', '.join(fixed) or 'no release yet'})",
                    )
                )
    return findings


def scan_binaries(
    binaries: dict[str, Path], unrated: str, go: str = "go", data: Path | None = None
) -> list[TargetResult]:
    """One result per tool; all "not scanned" when the database cannot be fetched."""
    try:
        index = load_entries(data or fetch_vulndb(go))
    except ScanError as exc:
        return [not_scanned(SCANNER, name, str(exc)) for name in binaries]
    results = []
    for name, binary in sorted(binaries.items()):
        if not binary.exists():
            results.append(not_scanned(SCANNER, name, f"{binary} is not installed"))
            continue
        modules = build_info(binary, go)
        if modules is None:
            results.append(not_scanned(SCANNER, name, f"{binary} has no Go build information"))
            continue
        findings = match(modules, index)
        for finding in findings:
            finding.severity = unrated
        results.append(TargetResult(SCANNER, name, checks=len(modules), findings=findings))
    return results
