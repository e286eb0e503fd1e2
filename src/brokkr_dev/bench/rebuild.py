"""Code-only rebuild benchmark: edit a file under src/brokkr, rebuild broker and agent.

This is the developer loop the 30 s goal is about (docs/images.md). The benchmark
copies the build context once, builds both targets for the native architecture once
to warm the cache (not counted), then per run appends a comment to
src/brokkr/__init__.py in the copy and rebuilds both targets with the chosen engine,
timing each. Images get their own tags (`sha-bebebeb-<arch>`, `rebuild-bench-<arch>`)
and are untagged at the end, so the images of a real build keep theirs.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base.log import Log
from brokkr_dev.containers import images, podman_storage
from brokkr_dev.containers.podman import ContainerError, podman

GOAL_SECONDS = 30.0
BRANCH = "rebuild-bench"
# A made-up commit id: the tags become sha-bebebeb-<arch> and rebuild-bench-<arch>,
# never the sha tag of the checked-out commit, which a real build (maybe another
# user's, in a shared store) owns.
REVISION = "be" * 20


@dataclass
class RebuildFigures:
    """Seconds per run of the code-only rebuild of every target (and each target's share)."""

    engine: str
    storage: str
    arch: str
    totals: list[float] = field(default_factory=list)
    per_target: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: median, min-max, runs and the verdict against the goal."""
        if not self.totals:
            return f"{self.engine} ({self.storage}): no runs"
        median = statistics.median(self.totals)
        verdict = "meets" if median < GOAL_SECONDS else "misses"
        parts = ", ".join(
            f"{target} {statistics.median(values):.1f} s"
            for target, values in self.per_target.items()
        )
        return (
            f"{self.engine} ({self.storage}), {self.arch}: median {median:.1f} s, "
            f"{min(self.totals):.1f}-{max(self.totals):.1f} s over {len(self.totals)} runs "
            f"({parts}); {verdict} the {GOAL_SECONDS:.0f} s goal"
        )


def run(engine: str = "podman", runs: int = 3, log: Log = print) -> RebuildFigures:
    """Measure `runs` code-only rebuilds of broker and agent (native arch) with `engine`."""
    if runs < 1:
        raise ContainerError(f"runs must be at least 1, not {runs}")
    arch = images.native_arch()
    setup = images.prepare(builder=engine, arches=[arch], log=log)
    storage = f"{podman_storage.current().driver} podman storage"
    if setup.builder == "buildx":
        storage = f"engine layer cache, hand-over to {storage}"
    figures = RebuildFigures(setup.builder, storage, arch)
    info = bench_info(images.read_build_info())
    with tempfile.TemporaryDirectory(prefix="brokkr-rebuild-bench-") as tmp:
        context = images.copy_build_context(Path(tmp))
        requests = [setup.request(t, arch, info, context=context) for t in images.TARGETS]
        try:
            log("warm-up build (not counted)")
            for request in requests:
                setup.build_one(request)
            for number in range(1, runs + 1):
                _touch_code(context, number)
                total = 0.0
                for request in requests:
                    started = time.monotonic()
                    setup.build_one(request)
                    seconds = time.monotonic() - started
                    figures.per_target.setdefault(request.target, []).append(round(seconds, 1))
                    total += seconds
                figures.totals.append(round(total, 1))
                log(f"run {number}: {total:.1f} s")
        finally:
            for request in requests:
                for reference in request.references:
                    untag = podman("untag", reference, reference)
                    subprocess.run(untag, capture_output=True, check=False)
    return figures


def bench_info(real: images.BuildInfo) -> images.BuildInfo:
    """The checkout's build info under the benchmark's own revision and branch (tags)."""
    return dataclasses.replace(real, revision=REVISION, branch=BRANCH)


def _touch_code(context: Path, number: int) -> None:
    """A code-only change: a new comment line at the end of the package's __init__.py."""
    init = context / "src" / "brokkr" / "__init__.py"
    with init.open("a") as handle:
        handle.write(f"# rebuild benchmark change {number} {time.time_ns()}\n")
