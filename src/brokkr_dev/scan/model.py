"""What every scanner reports: findings, per-target results, and the summary table."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from brokkr_dev.base.errors import AutomationError


class ScanError(AutomationError):
    """A scan could not run or its policy is malformed; the message says what to do."""


SEVERITIES = ("UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL")


def severity_rank(severity: str) -> int:
    """Order of a severity name (UNKNOWN lowest); a clear error for a typo."""
    try:
        return SEVERITIES.index(severity.upper())
    except ValueError:
        raise ScanError(
            f"unknown severity {severity!r}; use one of {', '.join(SEVERITIES)}"
        ) from None


class Status(Enum):
    """How one scanner fared on one target."""

    PASSED = "passed"
    FAILED = "failed"  # findings at or above the threshold, not accepted
    NOT_SCANNED = "not scanned"  # the data source or scanner was unavailable
    ERROR = "error"  # the target could not be prepared (e.g. a chart did not render)
    # An optional test tool this machine never built (the kind node's Kubernetes of a
    # minor no session here ran): nothing here can run it, so there is nothing to scan.
    NOT_BUILT = "not built here"


@dataclass
class Finding:
    """One failed check or one vulnerability."""

    id: str
    severity: str
    title: str
    location: str = ""
    # The scanner's own message for this instance (e.g. which ConfigMap keys Trivy
    # flagged); accepted entries can match on it.
    detail: str = ""
    accepted_by: str | None = None  # the reason of the accepted-findings entry or policy
    by_policy: bool = False  # accepted by a policy rule (test infrastructure), not an entry

    def describe(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        where = f" at {self.location}" if self.location else ""
        return f"{self.id} [{self.severity}] {self.title}{detail}{where}"


@dataclass
class TargetResult:
    """One scanner run on one target: how many checks ran and what failed."""

    scanner: str
    target: str
    checks: int = 0
    findings: list[Finding] = field(default_factory=list)
    problem: str | None = None  # why the target was not scanned, or failed to prepare
    status: Status | None = None  # set by the policy
    # Test infrastructure (a tool with role "test" in tools.toml): runs only on
    # developer and CI machines and never builds, signs or publishes a release.
    test_only: bool = False

    @property
    def suppressed(self) -> int:
        """Findings accepted by an entry of security/accepted.toml."""
        return sum(1 for f in self.findings if f.accepted_by and not f.by_policy)

    @property
    def by_policy(self) -> int:
        """Findings accepted by a policy rule (security/policy.toml)."""
        return sum(1 for f in self.findings if f.by_policy)


def not_scanned(scanner: str, target: str, why: str) -> TargetResult:
    """A result that says the scan did not happen, and why."""
    return TargetResult(scanner, target, problem=why, status=Status.NOT_SCANNED)


def not_built(scanner: str, target: str, where: Path) -> TargetResult:
    """An optional test tool absent from this machine: listed, never run, not scanned."""
    why = f"{where} does not exist: built on demand, and no session here needed it"
    return TargetResult(scanner, target, problem=why, status=Status.NOT_BUILT, test_only=True)


def format_table(results: list[TargetResult], threshold: str) -> str:
    """scanner, target, checks run, failed (at/above threshold), suppressed, policy, status.

    suppressed counts the findings accepted in security/accepted.toml, policy those
    accepted by a policy rule (test infrastructure).
    """
    header = ("scanner", "target", "checks", "failed", "suppressed", "policy", "status")
    rows = [header]
    for result in results:
        failing = [
            f
            for f in result.findings
            if not f.accepted_by and severity_rank(f.severity) >= severity_rank(threshold)
        ]
        rows.append(
            (
                result.scanner,
                result.target,
                str(result.checks),
                str(len(failing)),
                str(result.suppressed),
                str(result.by_policy),
                result.status.value if result.status else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
