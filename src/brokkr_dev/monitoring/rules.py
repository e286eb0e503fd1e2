"""Alert rules and dashboards: their files, the chart copies, and what they query.

monitoring/prometheus/*.rules.yaml are the source of the alert rules and
monitoring/dashboards/*.json are generated from `brokkr_dev.monitoring.dashboards`. Each chart
carries a copy under `files/` (Helm cannot read outside the chart), which
`invoke charts.generate` writes and the chart gate compares (`drift`).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from brokkr_dev.base import paths
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.monitoring import dashboards

MONITORING_DIR = paths.REPO_ROOT / "monitoring"
RULES_DIR = MONITORING_DIR / "prometheus"
RULE_TESTS = RULES_DIR / "brokkr.rules.test.yaml"
DASHBOARDS_DIR = MONITORING_DIR / "dashboards"
DOCS = paths.REPO_ROOT / "docs" / "observability.md"
CHARTS_DIR = paths.REPO_ROOT / "charts"
RUNBOOK_BASE = "https://github.com/colliery-io/brokkr/blob/main/docs/observability.md#"


class MonitoringError(AutomationError):
    """A rules or dashboard check failed; the message names the file and the fix."""


@dataclass(frozen=True)
class Component:
    """A service with its own rules file, dashboard and chart."""

    chart: str
    rules: Path
    dashboard: str  # dashboards.DASHBOARDS key

    @property
    def dashboard_file(self) -> Path:
        return DASHBOARDS_DIR / f"{self.dashboard}.json"

    @property
    def chart_rules(self) -> Path:
        return CHARTS_DIR / self.chart / "files" / "prometheus-rules.yaml"

    @property
    def chart_dashboard(self) -> Path:
        return CHARTS_DIR / self.chart / "files" / "dashboards" / f"{self.dashboard}.json"


COMPONENTS = (
    Component("brokkr-broker", RULES_DIR / "brokkr-broker.rules.yaml", "brokkr-broker"),
    Component("brokkr-agent", RULES_DIR / "brokkr-agent.rules.yaml", "brokkr-agents"),
)


# --- generated files ----------------------------------------------------------------


def expected_files() -> dict[Path, str]:
    """Every generated file and its exact text."""
    files: dict[Path, str] = {}
    for component in COMPONENTS:
        dashboard = dashboards.render(component.dashboard)
        files[component.dashboard_file] = dashboard
        files[component.chart_dashboard] = dashboard
        files[component.chart_rules] = component.rules.read_text()
    return files


def generate() -> list[Path]:
    """Write the dashboards and the chart copies; return the files that changed."""
    changed = []
    for path, text in expected_files().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def drift() -> list[str]:
    """Problems: a generated file that differs from its source."""
    return [
        f"{path.relative_to(paths.REPO_ROOT)} is out of date with its source "
        "(monitoring/ or brokkr_dev/monitoring/dashboards.py); run `invoke charts.generate` and commit"
        for path, text in expected_files().items()
        if not path.exists() or path.read_text() != text
    ]


# --- rules ---------------------------------------------------------------------------


def load_rules(path: Path) -> dict[str, Any]:
    """A rules file as data."""
    return yaml.safe_load(path.read_text())


def rules(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every rule (recording and alerting) of a rules document."""
    for group in document["groups"]:
        yield from group["rules"]


def alerts() -> dict[str, dict[str, Any]]:
    """Every alert rule of every component, by name."""
    return {
        rule["alert"]: rule
        for component in COMPONENTS
        for rule in rules(load_rules(component.rules))
        if "alert" in rule
    }


def runbook_problems(docs_text: str) -> list[str]:
    """Alerts whose runbook_url does not point at a heading of docs/observability.md."""
    anchors = {_anchor(h) for h in re.findall(r"^#+\s+(.+?)\s*$", docs_text, re.M)}
    problems = []
    for name, rule in alerts().items():
        url = rule.get("annotations", {}).get("runbook_url", "")
        if not url.startswith(RUNBOOK_BASE) or url[len(RUNBOOK_BASE) :] not in anchors:
            problems.append(f"{name}: runbook_url {url!r} names no heading of {DOCS.name}")
    return problems


def _anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def fast_variant(
    document: dict[str, Any], heartbeat_seconds: int = 15, stale_seconds: int = 15
) -> dict[str, Any]:
    """The rules for an end-to-end test: no `for:` delays and two short thresholds.

    The expressions stay those of the shipped rules, except two constants a test cannot
    wait out: the heartbeat bucket that BrokkrAgentHeartbeatMissing compares (300 s
    becomes `heartbeat_seconds`, one of the broker's buckets) and the poll age of
    BrokkrAgentPollStale (300 s becomes `stale_seconds`).
    """
    fast = yaml.safe_load(yaml.safe_dump(document))
    for rule in rules(fast):
        if "alert" in rule:
            rule["for"] = "0s"
        if rule.get("alert") == "BrokkrAgentHeartbeatMissing":
            rule["expr"] = _replace_once(rule, 'le="300"', f'le="{heartbeat_seconds}"')
        if rule.get("alert") == "BrokkrAgentPollStale":
            rule["expr"] = _replace_once(rule, "> 300", f"> {stale_seconds}")
    return fast


def _replace_once(rule: dict[str, Any], shipped: str, fast: str) -> str:
    """The rule's expression with its one `shipped` constant replaced by `fast`."""
    if rule["expr"].count(shipped) != 1:
        raise ValueError(f"{rule['alert']} no longer contains {shipped!r} exactly once")
    return str(rule["expr"]).replace(shipped, fast)


# --- PromQL ----------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions and labels excluded)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or an aggregation
        if match.start() > 0 and (
            text[match.start() - 1].isdigit() or text[match.start() - 1] == "."
        ):
            continue  # the exponent or unit of a number
        names.add(match.group())
    return names


def queried_expressions() -> dict[str, str]:
    """Every expression the dashboards and rules evaluate, keyed by where it is used."""
    found: dict[str, str] = {}
    for component in COMPONENTS:
        document = dashboards.model(dashboards.DASHBOARDS[component.dashboard])
        for n, (title, expr) in enumerate(dashboards.queries(document)):
            found[f"dashboard {component.dashboard} / {title} #{n}"] = expr
        for rule in rules(load_rules(component.rules)):
            found[f"rule {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return found


# --- the lint gate -------------------------------------------------------------------


def promtool(args: list[str], binary: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the pinned promtool (bin/promtool when installed) in monitoring/prometheus."""
    pinned = paths.BIN_DIR / "promtool"
    program = binary or (str(pinned) if pinned.exists() else "promtool")
    return subprocess.run(
        [program, *args], capture_output=True, text=True, timeout=300, check=False, cwd=RULES_DIR
    )


def check(log: Callable[[str], None] = print, binary: str | None = None) -> None:
    """promtool check rules + test rules, runbook links and the chart copies."""
    problems = runbook_problems(DOCS.read_text()) + drift()
    files = [c.rules.name for c in COMPONENTS]
    for args in (["check", "rules", *files], ["test", "rules", RULE_TESTS.name]):
        done = promtool(args, binary)
        log(f"promtool {' '.join(args)}: {'ok' if done.returncode == 0 else 'FAIL'}")
        if done.returncode != 0:
            problems.append(f"promtool {' '.join(args)}:\n{(done.stdout + done.stderr).strip()}")
    if problems:
        raise MonitoringError("monitoring checks failed:\n- " + "\n- ".join(problems))
