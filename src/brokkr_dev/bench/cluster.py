"""Numbers for docs/kubernetes.md: time to a Ready node and memory of a local cluster.

Measured, not asserted (goals are reported, not tested): `invoke cluster.bench`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import process
from brokkr_dev.base.log import Log
from brokkr_dev.clusters.local import LocalProvider


@dataclass
class BenchResult:
    """Seconds from `up` to a Ready node, and resident memory per component."""

    fresh_starts: list[float]
    restarts: list[float]
    rss_mib: dict[str, int]

    def render(self) -> str:
        def summary(values: list[float]) -> str:
            return (
                f"median {statistics.median(values):.1f} s "
                f"(min {min(values):.1f}, max {max(values):.1f}, n={len(values)})"
            )

        lines = [
            f"start, new cluster:      {summary(self.fresh_starts)}",
            f"start, existing data:    {summary(self.restarts)}",
            f"memory (RSS), total:     {sum(self.rss_mib.values())} MiB",
        ]
        lines.extend(f"  {name}: {mib} MiB" for name, mib in self.rss_mib.items())
        return "\n".join(lines)


def run(runs: int = 3, settle: float = 30.0, log: Log = print) -> BenchResult:
    """Start `runs` new clusters one after the other, restart the last one `runs`
    times, and read memory `settle` seconds after the last start (controllers done
    with their initial sync). Everything runs in a temporary directory."""
    fresh: list[float] = []
    restarts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="brokkr-bench-") as base:
        cluster: LocalProvider | None = None
        try:
            for index in range(runs):
                cluster = LocalProvider(f"bench-{index}", base=Path(base), log=lambda _: None)
                fresh.append(_timed(cluster))
                log(f"new cluster {index + 1}/{runs}: Ready node after {fresh[-1]:.1f} s")
                if index < runs - 1:
                    cluster.down()
            if cluster is None:
                raise ValueError(f"runs must be at least 1, got {runs}")
            for index in range(runs):
                cluster.down()
                restarts.append(_timed(cluster))
                log(f"restart {index + 1}/{runs}: Ready node after {restarts[-1]:.1f} s")
            time.sleep(settle)  # a benchmark's fixed measuring point, not a sync
            rss = {
                r.name: process.rss_kib(r.pid) // 1024 for r in process.records(cluster.dir.pids)
            }
        finally:
            if cluster is not None:
                cluster.down()
    return BenchResult(fresh, restarts, rss)


def _timed(cluster: LocalProvider) -> float:
    started = time.monotonic()
    cluster.up()
    return time.monotonic() - started
