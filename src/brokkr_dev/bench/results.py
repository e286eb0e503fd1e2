"""Broker benchmark results: latency statistics, the JSON file, comparison of two runs.

Pure functions (no I/O beyond reading and writing the JSON file), so they are unit
tested; `brokkr_dev.bench.broker` produces the numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Figures compared between two runs and whether a higher value is better.
COMPARED = {
    "requests_per_second": True,
    "p50_ms": False,
    "p99_ms": False,
    "broker_cpu_ms_per_request": False,
    "postgres_cpu_ms_per_request": False,
    "broker_rss_mib": False,
}


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values by the nearest-rank method; NaN when empty."""
    if not ordered:
        return math.nan
    rank = math.ceil(q * len(ordered))
    return ordered[min(len(ordered), max(rank, 1)) - 1]


@dataclass
class Window:
    """What one measured window saw: requests, errors and the latency of each request."""

    seconds: float
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def record(self, latency_ms: float, ok: bool, what: str = "") -> None:
        self.requests += 1
        self.latencies_ms.append(latency_ms)
        if not ok:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(what)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(self.requests / self.seconds, 1) if self.seconds else 0,
            "p50_ms": round(percentile(ordered, 0.50), 2),
            "p90_ms": round(percentile(ordered, 0.90), 2),
            "p99_ms": round(percentile(ordered, 0.99), 2),
            "max_ms": round(ordered[-1], 2) if ordered else math.nan,
            **({"error_samples": self.error_samples} if self.error_samples else {}),
        }


def describe_errors(run: dict[str, Any]) -> str:
    """`12 of 3400 requests failed (401, 401, ...)`: the count and the first samples."""
    samples = ", ".join(run.get("error_samples") or [])
    return f"{run['errors']} of {run['requests']} requests failed" + (
        f" ({samples})" if samples else ""
    )


def failed_runs(runs: list[dict[str, Any]]) -> list[str]:
    """One line per run with any error answer (a status other than the expected one,
    or a connection that failed): each such run makes the benchmark fail."""
    return [
        f"{run['phase']} at {run['agents']} agents: {describe_errors(run)}"
        for run in runs
        if run["errors"]
    ]


def cpu_ms_per_request(cpu_seconds: float | None, requests: int) -> float | None:
    """CPU milliseconds per request; None when not measured or no request was made."""
    if cpu_seconds is None or requests == 0:
        return None
    return round(cpu_seconds * 1000 / requests, 3)


def key(run: dict[str, Any]) -> tuple[int, str, float]:
    """What makes two runs comparable: fleet size, traffic kind, offered rate."""
    return (int(run["agents"]), str(run["phase"]), float(run.get("rate") or 0))


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """new/old ratios of the compared figures for runs present in both results."""
    earlier = {key(run): run for run in old["runs"]}
    rows = []
    for run in new["runs"]:
        before = earlier.get(key(run))
        if before is None:
            continue
        ratios = {}
        for name in COMPARED:
            a, b = before.get(name), run.get(name)
            ratios[name] = round(b / a, 2) if a and b is not None else None
        rows.append({"agents": run["agents"], "phase": run["phase"], "ratios": ratios})
    return rows


# The regression check: figures that are ratios of two things measured in the same
# window, so a busier or slower machine moves both sides alike (absolute times and
# req/s on a shared machine move by 2x between runs of the same code). A check
# fails when the new ratio exceeds the baseline's by more than its margin.
CHECKS = {
    "broker/PostgreSQL CPU per request": (
        "broker_cpu_ms_per_request",
        "postgres_cpu_ms_per_request",
    ),
    "p99/p50 latency": ("p99_ms", "p50_ms"),
}
MARGINS = {"broker/PostgreSQL CPU per request": 0.25, "p99/p50 latency": 1.0}


def run_ratio(run: dict[str, Any], check: str) -> float | None:
    """One check's ratio within one run; None when a figure is missing or zero."""
    top, bottom = (run.get(name) for name in CHECKS[check])
    if not top or not bottom or math.isnan(top) or math.isnan(bottom):
        return None
    return float(top) / float(bottom)


def regressions(
    old: dict[str, Any], new: dict[str, Any], margins: dict[str, float] | None = None
) -> list[str]:
    """Why `new` is worse than the baseline `old`, one line per failed check; [] if not.

    A baseline that shares no run (fleet size, traffic kind, rate) with `new`, or
    whose checked figures are missing, fails too: nothing would have been checked.
    """
    margins = margins or MARGINS
    earlier = {key(run): run for run in old["runs"]}
    problems = []
    checked = 0
    for run in new["runs"]:
        before = earlier.get(key(run))
        if before is None:
            continue
        for check, margin in margins.items():
            was, now = run_ratio(before, check), run_ratio(run, check)
            if was is None or now is None:
                continue
            checked += 1
            if now > was * (1 + margin):
                problems.append(
                    f"{run['agents']} agents, {run['phase']}: {check} {now:.2f}, baseline "
                    f"{was:.2f} (+{(now / was - 1) * 100:.0f} %, margin {margin * 100:.0f} %)"
                )
    if not checked:
        problems.append(
            "nothing to check: no run here has the same agents, phase and rate as a run of "
            "the baseline with both CPU figures and latencies; run the baseline's sizes"
        )
    return problems


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """A plain table of ratios (new / old): >1 means more of that figure."""
    if not rows:
        return "no comparable runs (same agents and phase) in the two results"
    names = list(COMPARED)
    lines = ["agents  phase         " + "  ".join(names)]
    for row in rows:
        cells = [
            "-" if row["ratios"][n] is None else f"{row['ratios'][n]:.2f}".rjust(len(n))
            for n in names
        ]
        lines.append(f"{row['agents']:<7} {row['phase']:<13} " + "  ".join(cells))
    better = ", ".join(f"{n} {'higher' if up else 'lower'}" for n, up in COMPARED.items())
    lines.append(f"(ratio = new / old; better is: {better})")
    return "\n".join(lines)


def format_runs(runs: list[dict[str, Any]]) -> str:
    """A plain table of the main figures of each run."""
    head = (
        "agents  phase         req/s    p50 ms  p99 ms  errors  broker cpu-ms/req"
        "  pg cpu-ms/req  broker RSS MiB  load"
    )
    lines = [head]
    for r in runs:
        lines.append(
            f"{r['agents']:<7} {r['phase']:<13} {r['requests_per_second']:>7.1f} "
            f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>7} "
            f"{_cell(r['broker_cpu_ms_per_request']):>18} "
            f"{_cell(r['postgres_cpu_ms_per_request']):>14} "
            f"{_cell(r['broker_rss_mib']):>15} {r['load_average_1m']:>5}"
        )
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 100 else f"{value:.0f}"


def write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def read(path: Path) -> dict[str, Any]:
    """A result file written by `write`; ValueError naming the file when it is not one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read benchmark results {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ValueError(f"{path} is not a broker benchmark result (no 'runs' list)")
    return data
