"""What every scanner reports: findings, per-target results, and the summary table."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ScanError(RuntimeError):
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


@dataclass
class Finding:
    """One failed check or one vulnerability."""

    id: str
    severity: str
    title: str
    location: str = ""
    accepted_by: str | None = None  # the reason of the accepted-findings entry

    def describe(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.id} [{self.severity}] {self.title}{where}"


@dataclass
class TargetResult:
    """One scanner run on one target: how many checks ran and what failed."""

    scanner: str
    target: str
    checks: int = 0
    findings: list[Finding] = field(default_factory=list)
    problem: str | None = None  # why the target was not scanned, or failed to prepare
    status: Status | None = None  # set by the policy

    @property
    def suppressed(self) -> int:
        return sum(1 for f in self.findings if f.accepted_by)


def not_scanned(scanner: str, target: str, why: str) -> TargetResult:
    """A result that says the scan did not happen, and why."""
    return TargetResult(scanner, target, problem=why, status=Status.NOT_SCANNED)


def format_table(results: list[TargetResult], threshold: str) -> str:
    """scanner, target, checks run, failed (at/above threshold), suppressed, status."""
    header = ("scanner", "target", "checks", "failed", "suppressed", "status")
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
                result.status.value if result.status else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
