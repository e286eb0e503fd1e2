"""The scan policy (security/policy.toml) and the accepted findings (security/accepted.toml).

Accepted findings live in one committed file; each entry names the scanner and
the check or vulnerability ID, says why it is accepted and until when. An entry
that matches nothing in a run of its scanner (the finding is fixed, or the ID is
mistyped) and an entry past its review date both fail the gate, so the list
cannot silently rot.

One policy rule accepts findings wholesale: those in test infrastructure (Go tools
with role "test" in tools.toml), when policy.toml says `test_infrastructure =
"accept"`. They are still scanned, counted in the table's policy column and listed
in the report; tools that build, sign or publish a release (role "publish") are
judged like everything else.
"""

from __future__ import annotations

import datetime
import fnmatch
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from brokkr_dev.base import paths
from brokkr_dev.scan.model import Finding, ScanError, Status, TargetResult, severity_rank

POLICY_FILE = paths.REPO_ROOT / "security" / "policy.toml"
ACCEPTED_FILE = paths.REPO_ROOT / "security" / "accepted.toml"


TEST_INFRASTRUCTURE = (
    "accepted by policy: test infrastructure (runs only on developer and CI machines on "
    "our own inputs; builds, signs and publishes nothing; docs/security.md)"
)
TEST_INFRASTRUCTURE_CHOICES = ("accept", "fail")


class Mode(Enum):
    """Where a scan runs: what "not scanned" means depends on it."""

    LOCAL = "local"  # a warning
    CI = "ci"  # a failure
    RELEASE = "release"  # a failure


@dataclass(frozen=True)
class Policy:
    """Thresholds and allowlists from security/policy.toml."""

    fail_on: str
    unrated_severity: str
    licences: frozenset[str]
    # Accept every finding of test infrastructure (reported, not failing); else judge it.
    accept_test_infrastructure: bool = False
    # Registries Trivy's KSV-0125 trusts for the charts' images (host suffixes).
    trusted_registries: tuple[str, ...] = ()
    source: Path = POLICY_FILE


@dataclass(frozen=True)
class Accepted:
    """One accepted finding."""

    scanner: str
    id: str
    reason: str
    review_by: datetime.date
    target: str = "*"
    detail: str = "*"  # glob over the finding's detail (the scanner's own message)
    # What the release's VEX document says of it (scan/vex.py): an OpenVEX status,
    # and for not_affected the justification.
    vex_status: str | None = None
    vex_justification: str | None = None

    def matches(self, scanner: str, finding: Finding, target: str) -> bool:
        return (
            self.scanner == scanner
            and self.id == finding.id
            and fnmatch.fnmatchcase(target, self.target)
            and fnmatch.fnmatchcase(finding.detail, self.detail)
        )


def _load_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScanError(f"{path} is missing (see docs/security.md)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScanError(f"{path} is not valid TOML: {exc}") from None


def load_policy(path: Path = POLICY_FILE) -> Policy:
    """Read and validate security/policy.toml."""
    raw = _load_toml(path)
    test_infrastructure = str(raw.get("test_infrastructure", "fail"))
    if test_infrastructure not in TEST_INFRASTRUCTURE_CHOICES:
        raise ScanError(
            f"{path}: test_infrastructure = {test_infrastructure!r}; use "
            f"{' or '.join(map(repr, TEST_INFRASTRUCTURE_CHOICES))}"
        )
    try:
        policy = Policy(
            fail_on=str(raw["fail_on"]).upper(),
            unrated_severity=str(raw["unrated_severity"]).upper(),
            licences=frozenset(str(name) for name in raw["licences"]),
            accept_test_infrastructure=test_infrastructure == "accept",
            trusted_registries=tuple(str(name) for name in raw.get("trusted_registries", [])),
            source=path,
        )
    except (KeyError, TypeError) as exc:
        raise ScanError(
            f"{path}: missing or malformed setting {exc}; it needs fail_on, "
            "unrated_severity and licences"
        ) from None
    severity_rank(policy.fail_on)
    severity_rank(policy.unrated_severity)
    return policy


def load_accepted(path: Path = ACCEPTED_FILE) -> list[Accepted]:
    """Read and validate security/accepted.toml ([[finding]] entries).

    An entry names one `id`, or several `ids` that share one reason (e.g. the Go
    release's fixes); each ID is then matched, and judged unused, on its own. In the
    same way `detail` or `details` narrow it to findings whose detail matches (e.g.
    the ConfigMap keys Trivy flagged), each glob judged unused on its own.
    """
    entries = []
    for number, raw in enumerate(_load_toml(path).get("finding", []), start=1):
        ids = [raw["id"]] if raw.get("id") else list(raw.get("ids") or [])
        where = f"{path}: [[finding]] #{number} ({', '.join(map(str, ids)) or '?'})"
        missing = [key for key in ("scanner", "reason", "review_by") if not raw.get(key)]
        if not ids:
            missing.insert(0, "id (or ids)")
        if missing:
            raise ScanError(f"{where} lacks {', '.join(missing)}")
        if not isinstance(raw["review_by"], datetime.date):
            raise ScanError(f"{where}: review_by must be a date like 2027-03-31")
        details = [raw["detail"]] if raw.get("detail") else list(raw.get("details") or ["*"])
        vex_status, vex_justification = _vex_fields(raw, ids, where)
        entries += [
            Accepted(
                scanner=str(raw["scanner"]),
                id=str(finding_id),
                reason=" ".join(str(raw["reason"]).split()),
                review_by=raw["review_by"],
                target=str(raw.get("target", "*")),
                detail=str(detail),
                vex_status=vex_status,
                vex_justification=vex_justification,
            )
            for finding_id in ids
            for detail in details
        ]
    return entries


# Scanners whose findings are vulnerabilities of what the images ship: the release's
# VEX document states each accepted one, so users' scanners show the same verdict.
VEX_SCANNERS = ("trivy-vuln", "pypi")
VEX_STATUSES = ("not_affected", "affected", "fixed", "under_investigation")
VEX_JUSTIFICATIONS = (
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
)


def is_vulnerability_id(finding_id: str) -> bool:
    """A published vulnerability ID (CVE-, GHSA-, PYSEC-...), not one of our own
    finding names (`behind:<pkg>`, `pending:<pkg>`, `licence:<pkg>`)."""
    return ":" not in finding_id


def _vex_fields(raw: dict, ids: list, where: str) -> tuple[str | None, str | None]:
    """vex_status and vex_justification of an entry, checked; required for an
    accepted vulnerability that ships in the images."""
    status = raw.get("vex_status")
    justification = raw.get("vex_justification")
    ships = raw.get("scanner") in VEX_SCANNERS and any(is_vulnerability_id(str(i)) for i in ids)
    if status is None:
        if ships:
            raise ScanError(
                f"{where}: an accepted vulnerability of the images needs vex_status (one of "
                f"{', '.join(VEX_STATUSES)}): the release's VEX document tells users' scanners "
                "the same verdict (docs/security.md, VEX)"
            )
        if justification is not None:
            raise ScanError(f"{where}: vex_justification without vex_status")
        return None, None
    if status not in VEX_STATUSES:
        raise ScanError(f"{where}: vex_status {status!r}; use one of {', '.join(VEX_STATUSES)}")
    if status == "not_affected" and justification not in VEX_JUSTIFICATIONS:
        raise ScanError(
            f"{where}: vex_status not_affected needs vex_justification, one of "
            f"{', '.join(VEX_JUSTIFICATIONS)}"
        )
    if status != "not_affected" and justification is not None:
        raise ScanError(f"{where}: vex_justification applies only to vex_status not_affected")
    return str(status), (str(justification) if justification else None)


@dataclass
class Verdict:
    """The outcome of a whole scan run."""

    results: list[TargetResult]
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def judge(
    results: list[TargetResult],
    policy: Policy,
    accepted: list[Accepted],
    mode: Mode,
    today: datetime.date | None = None,
    *,
    tolerated: frozenset[str] = frozenset(),
) -> Verdict:
    """Mark accepted findings, give every result a status, and list what fails the run.

    tolerated: scanners whose "not scanned" is only a warning in ci mode (a source
    this CI site cannot reach, named in the CI script); refused in release mode.

    Test infrastructure is judged by the policy rule first, so an accepted entry
    for a test-only tool matches nothing and is reported as unused.
    """
    if tolerated and mode is Mode.RELEASE:
        raise ScanError("release mode tolerates no missing vulnerability source (docs/security.md)")
    verdict = Verdict(results)
    used: set[Accepted] = set()
    for result in results:
        for finding in result.findings:
            if result.test_only and policy.accept_test_infrastructure:
                finding.accepted_by, finding.by_policy = TEST_INFRASTRUCTURE, True
                continue
            entry = next(
                (a for a in accepted if a.matches(result.scanner, finding, result.target)),
                None,
            )
            if entry:
                finding.accepted_by = entry.reason
                used.add(entry)
        _judge_result(result, policy, mode, verdict, tolerated)
    verdict.failures += _stale(accepted, used, results, today or datetime.date.today())
    return verdict


def _judge_result(
    result: TargetResult, policy: Policy, mode: Mode, verdict: Verdict, tolerated: frozenset[str]
) -> None:
    threshold = severity_rank(policy.fail_on)
    failing = [
        f for f in result.findings if not f.accepted_by and severity_rank(f.severity) >= threshold
    ]
    label = f"{result.scanner} on {result.target}"
    if result.status is Status.NOT_BUILT:
        return  # listed in the table; an absent test tool runs nowhere here
    if result.status is Status.NOT_SCANNED:
        message = f"{label}: NOT SCANNED: {result.problem}"
        # Test infrastructure gets no exception here: its findings may be accepted by
        # policy, but a source that did not answer proves nothing about it either.
        if mode is Mode.LOCAL:
            verdict.warnings.append(message)
        elif result.scanner in tolerated:
            verdict.warnings.append(f"{message} (tolerated in {mode.value} mode by this run)")
        else:
            verdict.failures.append(f"{message} (a failure in {mode.value} mode)")
    elif result.problem or result.status is Status.ERROR:
        result.status = Status.ERROR
        verdict.failures.append(f"{label}: {result.problem}")
    elif result.checks == 0:
        result.status = Status.ERROR
        verdict.failures.append(f"{label}: ran zero checks, so it proves nothing")
    elif failing:
        result.status = Status.FAILED
        verdict.failures += [f"{label}: {finding.describe()}" for finding in failing]
    else:
        result.status = Status.PASSED


def _stale(
    accepted: list[Accepted], used: set[Accepted], results: list[TargetResult], today: datetime.date
) -> list[str]:
    """Accepted entries past their date, or unused although their scanner ran on their target."""
    unscanned = (Status.NOT_SCANNED, Status.NOT_BUILT)
    scanned = [(r.scanner, r.target) for r in results if r.status not in unscanned]
    problems = []
    for entry in accepted:
        if entry.review_by < today:
            problems.append(
                f"accepted finding {entry.id} ({entry.scanner}) expired on {entry.review_by}: "
                f"review it in {ACCEPTED_FILE.name} (fix it, or renew with a new date and reason)"
            )
        elif entry not in used and any(
            scanner == entry.scanner and fnmatch.fnmatchcase(target, entry.target)
            for scanner, target in scanned
        ):
            problems.append(
                f"accepted finding {entry.id} ({entry.scanner}, target {entry.target}"
                f"{'' if entry.detail == '*' else f', detail {entry.detail}'}) matched "
                f"nothing: unknown ID or fixed finding; correct or remove it in {ACCEPTED_FILE.name}"
            )
    return problems
