"""Pending Debian security updates for an image's packages.

apt itself does the work: with a private state directory, `apt-get update`
fetches the signed bookworm-security index (verified against Debian's archive
keyring), and `apt-get --simulate dist-upgrade` with the image's dpkg status
lists every installed package that the security suite has a newer version of.
Each such package is a finding: a published security fix the image lacks.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from brokkr_dev.scan.model import Finding, ScanError, TargetResult, not_scanned

SCANNER = "debian-security"
MIRROR = "http://deb.debian.org/debian-security"
SUITE = "bookworm-security"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
INST = re.compile(r"^Inst (\S+) \[([^\]]+)\] \((\S+) ([^)]*)\)")


def apt_options(workdir: Path, arch: str, status: Path) -> list[str]:
    """apt options that confine it to workdir and one architecture's view of the image."""
    return [
        "-o", f"Dir::Etc::sourcelist={workdir / 'sources.list'}",
        "-o", "Dir::Etc::sourceparts=-",
        "-o", f"Dir::State={workdir / 'state'}",
        "-o", f"Dir::State::status={status}",
        "-o", f"Dir::Cache={workdir / 'cache'}",
        "-o", f"APT::Architecture={arch}",
        "-o", f"APT::Architectures::={arch}",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    ]  # fmt: skip


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["apt-get", *args], capture_output=True, text=True, timeout=600, check=False
        )
    except FileNotFoundError:
        raise ScanError("apt-get is not installed (a Debian or Ubuntu host is needed)") from None
    except subprocess.TimeoutExpired:
        raise ScanError("apt-get took longer than 600 s") from None


def installed_count(status: Path) -> int:
    """How many packages the dpkg status file lists as installed."""
    return sum(
        1
        for stanza in status.read_text(errors="replace").split("\n\n")
        if re.search(r"^Status: install ok installed$", stanza, re.MULTILINE)
    )


def pending_updates(status: Path, arch: str, workdir: Path) -> list[Finding]:
    """Packages of the status file with a newer version in bookworm-security."""
    if not KEYRING.exists():
        raise ScanError(f"{KEYRING} is missing: install the debian-archive-keyring package")
    for sub in ("state/lists/partial", "cache/archives/partial"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    (workdir / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {SUITE} main\n")
    options = apt_options(workdir, arch, status)
    update = _apt(["update", "-q", *options])
    lists = list((workdir / "state" / "lists").glob(f"*_binary-{arch}_Packages*"))
    if update.returncode != 0 or "Err:" in update.stdout or not lists:
        reason = (update.stderr or update.stdout).strip().splitlines()[-3:]
        raise ScanError(f"the {SUITE} index for {arch} could not be fetched: {' '.join(reason)}")
    simulate = _apt(["--simulate", "-q", "dist-upgrade", *options])
    if simulate.returncode != 0:
        raise ScanError(f"apt-get --simulate dist-upgrade failed: {simulate.stderr.strip()[-300:]}")
    return parse_simulation(simulate.stdout)


def parse_simulation(text: str) -> list[Finding]:
    """Findings from the `Inst pkg [installed] (candidate origin [arch])` lines."""
    findings = []
    for line in text.splitlines():
        match = INST.match(line)
        if match:
            package, installed, candidate, _origin = match.groups()
            findings.append(
                Finding(
                    id=f"pending:{package}",
                    severity="UNKNOWN",
                    title=f"{package} {installed} has a security update",
                    location=f"{SUITE} has {candidate}",
                )
            )
    return findings


def scan(status: Path, arch: str, target: str, workdir: Path, unrated: str) -> TargetResult:
    """The security updates an image lacks, or "not scanned" when the suite is unreachable."""
    try:
        findings = pending_updates(status, arch, workdir)
    except ScanError as exc:
        return not_scanned(SCANNER, target, str(exc))
    for finding in findings:
        finding.severity = unrated
    return TargetResult(SCANNER, target, checks=installed_count(status), findings=findings)
