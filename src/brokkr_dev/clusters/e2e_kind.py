"""`nox -s e2e-kind`: both charts on real pods of a kind cluster, with timings.

The session runs these phases and prints how long each took:

1. images: the broker and agent images (podman, the same build as `nox -s images`)
   and the PostgreSQL image from Debian's packages, for the node's architecture
   (this host's: kind runs the node here); their references go to a file the tests read;
2. cluster: the Docker engine and the kind cluster `brokkr-<name>-<minor>`, e.g.
   `brokkr-e2e-1-37` (KindProvider: the engine is reused or started, the node image of
   that Kubernetes minor is built once and cached; `--kubernetes 1.NN` picks one of
   the minors tools.toml pins, the newest by default);
3. tests: `pytest -m kind tests/e2e_kind` on that cluster (the `kind_cluster`
   fixture reuses it), which loads the images, installs both charts and proves them;
4. down: the cluster is deleted (unless kept), so nothing is left running.

Tests record figures with `record()` into a JSON file named by $BROKKR_E2E_TIMINGS
(default .local/e2e-kind/timings.json), which the session prints at the end.

`run_matrix` (`nox -s e2e-kind-matrix`) does phases 2-4 for every pinned minor, on
one build of the images, with the chart install, quick start and upgrade tests, and
prints one line per minor.
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
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.log import Log
from brokkr_dev.clusters import ClusterError, KindProvider
from brokkr_dev.containers import images, postgres_image
from brokkr_dev.containers.engine import session_engine
from brokkr_dev.containers.nodeimage import kube_versions
from brokkr_dev.containers.nodeimage.kube_versions import NodeKubernetes

TIMINGS_ENV = "BROKKR_E2E_TIMINGS"
IMAGES_ENV = "BROKKR_E2E_IMAGES"  # JSON file with the references the session built
CLUSTER_ENV = "BROKKR_KIND_CLUSTER"  # the kind_cluster fixture's cluster name
KUBERNETES_ENV = "BROKKR_KIND_KUBERNETES"  # its node's Kubernetes minor, e.g. 1.35
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
FLUX_TOOLS = ("source-controller", "helm-controller", "cosign")  # the test signs charts


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


# The upgrade tests publish N-1 through the real release pipeline, which signs.
UPGRADE_TESTS = "test_upgrade.py"
UPGRADE_TOOLS = ("cosign",)
HELM4_TESTS, HELM4_TOOLS = "test_helm4.py", ("helm4",)
# The air-gapped guide's test releases signed images with SBOMs, copies them with oras
# and verifies them with cosign.
AIRGAP_TESTS, AIRGAP_TOOLS = "test_airgapped_on_kind.py", ("cosign", "syft", "oras")


def tools_for(tests: Sequence[str]) -> list[str]:
    """Pinned tools the selected tests need before they start: Flux's two controllers
    (a long cold build) and cosign only when a Flux test is selected, cosign when an
    upgrade test is, helm4 for the Helm 4 test, cosign, syft and oras for the air-gapped
    guide's (each job of the workflow starts from an empty bin/)."""
    needed: list[str] = []
    by_file = (
        (FLUX_TESTS, FLUX_TOOLS),
        (UPGRADE_TESTS, UPGRADE_TOOLS),
        (HELM4_TESTS, HELM4_TOOLS),
        (AIRGAP_TESTS, AIRGAP_TOOLS),
    )
    for file, tools in by_file:
        if any(file in test for test in tests):
            needed += [tool for tool in tools if tool not in needed]
    return needed


@dataclass(frozen=True)
class Arguments:
    """`nox -s e2e-kind -- [--name N] [--keep] [--kubernetes 1.NN] [PYTEST ARGS...]`,
    parsed once, here."""

    name: str = DEFAULT_CLUSTER
    keep: bool = False
    kubernetes: str | None = None  # a pinned minor, e.g. "1.35"; None: the newest
    pytest: tuple[str, ...] = ()


def parse_arguments(argv: Sequence[str]) -> Arguments:
    """Our three options; everything else (and all after `--`) goes to pytest unchanged.
    An unpinned Kubernetes version is refused here, naming the pinned ones."""
    name, keep, kubernetes, rest = DEFAULT_CLUSTER, False, None, list(argv)
    pytest_args: list[str] = []
    while rest:
        item = rest.pop(0)
        if item == "--":
            pytest_args += rest
            break
        if item == "--keep":
            keep = True
        elif item in ("--name", "--kubernetes") or item.startswith(("--name=", "--kubernetes=")):
            option = item.partition("=")[0]
            value = item.partition("=")[2] if "=" in item else (rest.pop(0) if rest else "")
            if not value:
                example = "NAME" if option == "--name" else "1.NN"
                raise ClusterError(
                    f"{option} needs a value: `nox -s e2e-kind -- {option} {example}`"
                )
            if option == "--name":
                name = value
            else:
                kubernetes = kube_versions.choose(value).minor
        else:
            pytest_args.append(item)
    return Arguments(name=name, keep=keep, kubernetes=kubernetes, pytest=tuple(pytest_args))


def cluster_name(name: str, node: NodeKubernetes) -> str:
    """`e2e` on Kubernetes 1.35 -> `e2e-1-35`: clusters of two minors never collide."""
    return f"{name}-{node.slug}"


def run(
    extra: Sequence[str] = (),
    *,
    name: str = DEFAULT_CLUSTER,
    keep: bool = False,
    kubernetes: str | None = None,
    log: Log = print,
) -> int:
    """Images, cluster, kind tests, cluster down; print the timings; pytest's exit status.

    The cluster is `<name>-<minor>` on the node Kubernetes `kubernetes` names (a pinned
    minor; the newest when None)."""
    node = kube_versions.choose(kubernetes)
    state = paths.state_dir() / "e2e-kind"
    timings, refs = timings_file(), state / "images.json"
    timings.unlink(missing_ok=True)
    phases = Phases()
    _tools_and_images(extra, refs, phases, log)
    with session_engine(log, keep=keep or None):
        outcome = _cluster_and_tests(
            extra,
            name=cluster_name(name, node),
            node=node,
            keep=keep,
            timings=timings,
            refs=refs,
            phases=phases,
            log=log,
        )
    return outcome.code


def _tools_and_images(extra: Sequence[str], refs: Path, phases: Phases, log: Log) -> None:
    """Build what the selected tests need before any cluster: the tools of `tools_for`,
    and the broker, agent and PostgreSQL images."""
    needed = tools_for(selected_tests(extra))
    if needed:
        manifest = toolchain.load_manifest()
        phases.run("tools", lambda: [toolchain.ensure(manifest[n], log=log) for n in needed])
    arch = images.arch_of(platform.machine())  # kind's node runs on this host
    built = phases.run("images", lambda: build_images(arch, log=log))
    built.save(refs)


@dataclass(frozen=True)
class Outcome:
    """One Kubernetes minor's run: pytest's exit status, or why no test ran."""

    kubernetes: str  # the minor, e.g. 1.35
    version: str  # the pinned release, e.g. v1.35.4
    code: int  # pytest's exit status; 1 when the cluster did not come up
    seconds: float
    image: str = ""  # the node image the cluster ran
    problem: str = ""  # why no test ran


def _cluster_and_tests(
    extra: Sequence[str],
    *,
    name: str,
    node: NodeKubernetes,
    keep: bool,
    timings: Path,
    refs: Path,
    phases: Phases,
    log: Log,
) -> Outcome:
    provider = KindProvider(name, log=log, kubernetes=node.minor)
    started = time.monotonic()
    code = 1
    try:
        phases.run("cluster", provider.up)
        env = {
            **os.environ,
            TIMINGS_ENV: str(timings),
            IMAGES_ENV: str(refs),
            CLUSTER_ENV: name,
            KUBERNETES_ENV: node.minor,
        }
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
        log(
            report(
                phases.seconds, figures, title=f"e2e-kind timings (s), Kubernetes {node.version}"
            )
        )
    seconds = round(time.monotonic() - started, 1)
    return Outcome(node.minor, node.version, int(code), seconds, provider.image or "")


# The matrix: on every pinned minor, the tests that prove a user's path on it.
MATRIX_TESTS = "test_charts_on_kind or quick_start or test_upgrade"
MATRIX_PROVES = "chart install, quick start, upgrade and rollback"


def matrix_arguments(argv: Sequence[str]) -> Arguments:
    """`nox -s e2e-kind-matrix -- [--name N] [PYTEST ARGS...]`: the matrix's selection
    first, then the given pytest arguments (e.g. -x). It runs every pinned minor and
    deletes each cluster, so --kubernetes and --keep are refused."""
    parsed = parse_arguments(argv)
    if parsed.kubernetes or parsed.keep:
        raise ClusterError(
            "the matrix runs every pinned Kubernetes minor and deletes each cluster: drop "
            "--kubernetes and --keep, or run one minor with "
            "`nox -s e2e-kind -- --kubernetes 1.NN --keep`"
        )
    selection = ("-k", MATRIX_TESTS, *parsed.pytest)
    return Arguments(name=parsed.name, pytest=selection)


def run_matrix(
    extra: Sequence[str] = (), *, name: str = DEFAULT_CLUSTER, log: Log = print
) -> list[Outcome]:
    """The tests `extra` selects on a kind cluster of each pinned Kubernetes minor,
    oldest first, one after the other, on one build of the images; every minor runs
    even when an earlier one failed. Prints the table of `matrix_report`."""
    state = paths.state_dir() / "e2e-kind"
    refs = state / "images.json"
    shared = Phases()
    _tools_and_images(extra, refs, shared, log)
    outcomes = []
    with session_engine(log):
        for node in kube_versions.pinned():
            timings = state / f"timings-{node.slug}.json"
            timings.unlink(missing_ok=True)
            started = time.monotonic()
            try:
                outcome = _cluster_and_tests(
                    extra,
                    name=cluster_name(name, node),
                    node=node,
                    keep=False,
                    timings=timings,
                    refs=refs,
                    phases=Phases(),
                    log=log,
                )
            except (AutomationError, TimeoutError) as exc:
                seconds = round(time.monotonic() - started, 1)
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                outcome = Outcome(node.minor, node.version, 1, seconds, problem=first_line)
                log(f"Kubernetes {node.version}: {first_line}")
            outcomes.append(outcome)
    log(matrix_report(outcomes, shared.seconds))
    return outcomes


def _verdict(code: int) -> str:
    return {0: "passed", 1: "FAILED", 5: "NO TESTS"}.get(code, f"ERROR ({code})")


def matrix_report(outcomes: Sequence[Outcome], shared: dict[str, float] | None = None) -> str:
    """One line per Kubernetes minor: release, verdict, seconds, node image or problem."""
    lines = ["", f"e2e-kind matrix: {MATRIX_PROVES} (-k {MATRIX_TESTS!r})"]
    lines += [f"  {name} (all minors): {seconds:.1f} s" for name, seconds in (shared or {}).items()]
    lines.append(f"  {'minor':6} {'release':9} {'result':10} {'seconds':>8}  node image")
    for o in outcomes:
        detail = o.image or (f"- ({o.problem})" if o.problem else "-")
        lines.append(
            f"  {o.kubernetes:6} {o.version:9} {_verdict(o.code):10} {o.seconds:8.1f}  {detail}"
        )
    return "\n".join(lines)


def matrix_passed(outcomes: Sequence[Outcome]) -> bool:
    return bool(outcomes) and all(o.code == 0 for o in outcomes)


def report(
    phases: dict[str, float], figures: dict[str, float], title: str = "e2e-kind timings (s)"
) -> str:
    """The timing table printed at the end of the session."""
    lines = ["", title]
    lines += [f"  {name:32} {seconds:7.1f}" for name, seconds in phases.items()]
    lines.append(f"  {'total':32} {sum(phases.values()):7.1f}")
    if figures:
        lines.append(RECORDED_HEADER)
        lines += [f"  {name:32} {value:7.1f}" for name, value in sorted(figures.items())]
    return "\n".join(lines)
