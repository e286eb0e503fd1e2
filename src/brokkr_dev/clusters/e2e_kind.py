"""`nox -s e2e-kind`: both charts on real pods of a kind cluster, with timings.

The session runs these phases and prints how long each took:

1. images: the broker and agent images (podman, the same build as `nox -s images`)
   and the PostgreSQL image from Debian's packages, for the node's architecture
   (this host's: kind runs the node here); their references go to a file the tests read;
2. cluster: the Docker engine and the kind cluster `brokkr-<name>` (KindProvider:
   the engine is reused or started, the node image is built once and cached);
3. tests: `pytest -m kind tests/e2e_kind` on that cluster (the `kind_cluster`
   fixture reuses it), which loads the images, installs both charts and proves them;
4. down: the cluster is deleted (unless kept), so nothing is left running.

Tests record figures with `record()` into a JSON file named by $BROKKR_E2E_TIMINGS
(default .local/e2e-kind/timings.json), which the session prints at the end.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brokkr_dev.base import paths, toolchain
from brokkr_dev.base.log import Log
from brokkr_dev.clusters import ClusterError, KindProvider
from brokkr_dev.containers import images, postgres_image
from brokkr_dev.containers.engine import session_engine

TIMINGS_ENV = "BROKKR_E2E_TIMINGS"
IMAGES_ENV = "BROKKR_E2E_IMAGES"  # JSON file with the references the session built
CLUSTER_ENV = "BROKKR_KIND_CLUSTER"  # the kind_cluster fixture's cluster name
DEFAULT_CLUSTER = "e2e"
TEST_PATH = "tests/e2e_kind"
RECORDED_HEADER = "recorded by the tests (s; MiB where the name ends in _mib)"


def timings_file() -> Path:
    """Where the tests write their figures for this run."""
    explicit = os.environ.get(TIMINGS_ENV)
    return Path(explicit) if explicit else paths.state_dir() / "e2e-kind" / "timings.json"


def record(name: str, seconds: float, path: Path | None = None) -> None:
    """Add one figure (rounded to 0.1) to the run's timings file: seconds, or MiB for a
    name that ends in `_mib`."""
    target = path or timings_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(target.read_text()) if target.exists() else {}
    found[name] = round(seconds, 1)
    target.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")


def node_arch(client: Any) -> str:
    """The Go architecture of the cluster's first node (what its images must be built for)."""
    nodes = client.get("/api/v1/nodes")["items"]
    if not nodes:
        raise RuntimeError("the cluster has no node; is it up?")
    return str(nodes[0]["status"]["nodeInfo"]["architecture"])


@dataclass(frozen=True)
class KindImages:
    """The three images the charts run on the kind cluster: references in podman storage."""

    arch: str
    broker: str
    agent: str
    postgresql: postgres_image.PostgresImage

    def save(self, path: Path) -> None:
        """Write the references for the tests (read back with `load`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"arch": self.arch, "broker": self.broker, "agent": self.agent}
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> KindImages:
        data = json.loads(path.read_text())
        arch = str(data["arch"])
        return cls(arch, data["broker"], data["agent"], postgres_image.PostgresImage(arch))


def build_images(arch: str, log: Log = print) -> KindImages:
    """Build (or reuse from the layer cache) the images for one architecture."""
    result = images.build(
        targets=images.TARGETS, arches=[arch], builder="podman", offline=True, log=log
    )
    pg = postgres_image.ensure(arch, log=log)
    return KindImages(
        arch=arch,
        broker=result.images[("broker", arch)][0],
        agent=result.images[("agent", arch)][0],
        postgresql=pg,
    )


def images_for(arch: str, log: Log = print) -> KindImages:
    """The images the session built for this architecture, else a build now."""
    explicit = os.environ.get(IMAGES_ENV)
    if explicit and Path(explicit).is_file():
        built = KindImages.load(Path(explicit))
        if built.arch == arch:
            return built
    return build_images(arch, log=log)


@dataclass
class Phases:
    """Wall-clock seconds of each phase, in order."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, step: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return step()
        finally:
            self.seconds[name] = round(time.monotonic() - started, 1)


def pytest_command(extra: Sequence[str] = ()) -> list[str]:
    """pytest on the kind tests only; extra arguments come after (and may add -k, -x)."""
    return [sys.executable, "-m", "pytest", "-m", "kind", TEST_PATH, *extra]


FLUX_TESTS = "test_flux.py"
FLUX_TOOLS = ("source-controller", "helm-controller")


def selected_tests(extra: Sequence[str] = ()) -> list[str]:
    """The node IDs pytest would run for these arguments (collection only, no run)."""
    done = subprocess.run(
        [*pytest_command(extra), "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in done.stdout.splitlines() if "::" in line]


def tools_for(tests: Sequence[str]) -> list[str]:
    """Pinned tools the selected tests need built before they start: Flux's two
    controllers (a long cold build) only when a Flux test is selected."""
    return list(FLUX_TOOLS) if any(FLUX_TESTS in test for test in tests) else []


@dataclass(frozen=True)
class Arguments:
    """`nox -s e2e-kind -- [--name N] [--keep] [PYTEST ARGS...]`, parsed once, here."""

    name: str = DEFAULT_CLUSTER
    keep: bool = False
    pytest: tuple[str, ...] = ()


def parse_arguments(argv: Sequence[str]) -> Arguments:
    """Our two options; everything else (and all after `--`) goes to pytest unchanged."""
    name, keep, rest = DEFAULT_CLUSTER, False, list(argv)
    pytest_args: list[str] = []
    while rest:
        item = rest.pop(0)
        if item == "--":
            pytest_args += rest
            break
        if item == "--keep":
            keep = True
        elif item == "--name" or item.startswith("--name="):
            value = item.partition("=")[2] if "=" in item else (rest.pop(0) if rest else "")
            if not value:
                raise ClusterError("--name needs a value: `nox -s e2e-kind -- --name NAME`")
            name = value
        else:
            pytest_args.append(item)
    return Arguments(name=name, keep=keep, pytest=tuple(pytest_args))


def run(
    extra: Sequence[str] = (),
    *,
    name: str = DEFAULT_CLUSTER,
    keep: bool = False,
    log: Log = print,
) -> int:
    """Images, cluster, kind tests, cluster down; print the timings; pytest's exit status."""
    state = paths.state_dir() / "e2e-kind"
    timings, refs = timings_file(), state / "images.json"
    timings.unlink(missing_ok=True)
    phases = Phases()
    needed = tools_for(selected_tests(extra))
    if needed:
        manifest = toolchain.load_manifest()
        phases.run("tools", lambda: [toolchain.ensure(manifest[n], log=log) for n in needed])
    arch = images.arch_of(platform.machine())  # kind's node runs on this host
    built = phases.run("images", lambda: build_images(arch, log=log))
    built.save(refs)
    with session_engine(log, keep=keep or None):
        return _cluster_and_tests(
            extra, name=name, keep=keep, timings=timings, refs=refs, phases=phases, log=log
        )


def _cluster_and_tests(
    extra: Sequence[str],
    *,
    name: str,
    keep: bool,
    timings: Path,
    refs: Path,
    phases: Phases,
    log: Log,
) -> int:
    provider = KindProvider(name, log=log)
    code = 1
    try:
        phases.run("cluster", provider.up)
        env = {**os.environ, TIMINGS_ENV: str(timings), IMAGES_ENV: str(refs), CLUSTER_ENV: name}
        command = pytest_command(extra)
        code = phases.run(
            "tests",
            lambda: subprocess.run(command, cwd=paths.REPO_ROOT, env=env, check=False).returncode,
        )
    finally:
        if not keep:
            try:
                phases.run("down", provider.down)
            except ClusterError as exc:  # never hide the error that got us here
                log(f"could not delete kind cluster {name}: {exc}")
        figures = json.loads(timings.read_text()) if timings.exists() else {}
        log(report(phases.seconds, figures))
    return int(code)


def report(phases: dict[str, float], figures: dict[str, float]) -> str:
    """The timing table printed at the end of the session."""
    lines = ["", "e2e-kind timings (s)"]
    lines += [f"  {name:32} {seconds:7.1f}" for name, seconds in phases.items()]
    lines.append(f"  {'total':32} {sum(phases.values()):7.1f}")
    if figures:
        lines.append(RECORDED_HEADER)
        lines += [f"  {name:32} {value:7.1f}" for name, value in sorted(figures.items())]
    return "\n".join(lines)
