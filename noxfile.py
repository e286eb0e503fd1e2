"""Brokkr's sessions: what maintainers and CI run. `nox -l` lists them.

Sessions stay thin: they install the locked development environment once (see
`install`) and call Invoke tasks from tasks.py, whose logic lives in src/brokkr_dev.
Heavy sessions (images, clusters, releases, benchmarks) are opt-in: a bare `nox`
runs only `lint` and `unit`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import nox

ROOT = Path(__file__).parent
BIN = ROOT / "bin"
# Pinned tools live in bin/ (see tools.toml); nox looks programs up on this PATH.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "unit"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.needs_version = ">=2025.2.9"

PYTHON = "3.11"


def install(session: nox.Session) -> None:
    """Install the locked dev dependency group and the project (editable) into the venv.

    The single place where sessions get their packages, so every session runs the
    same versions that uv.lock pins.
    """
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--quiet",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def invoke(session: nox.Session, *args: str) -> None:
    """Run an Invoke task from tasks.py inside the session's environment."""
    session.run("invoke", *args)


@contextlib.contextmanager
def green_record(session: nox.Session, check: str) -> Iterator[None]:
    """Record a green run of `check` for the release gate when the body passes.

    The record is keyed by the git tree and written only for a full run on a clean
    work tree (src/brokkr_dev/base/green.py); a failing step raises, so no record.
    """
    invoke(session, "green.begin", "--check", check, "--args", shlex.join(session.posargs))
    yield
    invoke(session, "green.finish", "--check", check)


def refuse_posargs(session: nox.Session) -> None:
    """Fail clearly when a session that takes no arguments is given some."""
    if session.posargs:
        session.error(
            f"session {session.name!r} takes no arguments, got {session.posargs!r}; "
            "run `nox -l` to see which sessions take arguments after `--`"
        )


def tools(session: nox.Session, *names: str) -> None:
    """Make the named pinned CLI tools available in bin/ and on the session's PATH."""
    invoke(session, "tools.install", "--names", ",".join(names))


def files(pattern: str) -> list[str]:
    """Tracked-or-new files matching a glob, relative to the repository root.

    Not under .nox/ or build/ (the scan stages copies of the Dockerfiles there).
    """
    found = (p.relative_to(ROOT) for p in ROOT.glob(pattern))
    return sorted(str(p) for p in found if p.parts[0] not in {".nox", "build"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Static checks: ruff, mypy, yamllint, actionlint, chart/Dockerfile checks, promtool.

    Also the offline security config scans of docker/ and the charts (trivy config,
    Checkov; docs/security.md).
    """
    refuse_posargs(session)
    install(session)
    with green_record(session, "lint"):
        lint_steps(session)


def lint_steps(session: nox.Session) -> None:
    """Every step of `lint`, in order."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("yamllint", "--strict", ".")
    dockerfiles = files("**/Dockerfile") + files("**/*.Dockerfile")
    if dockerfiles:
        tools(session, "hadolint")
        session.run("hadolint", *dockerfiles, external=True)
        invoke(session, "images.requirements", "--check")
    workflows = files(".github/workflows/*.yml")
    if workflows:
        tools(session, "actionlint")
        session.run("actionlint", *workflows, external=True)
    if files("charts/*/Chart.yaml"):
        tools(session, "helm", "helm4", "kubeconform")
        invoke(session, "charts.check")
    if dockerfiles or files("charts/*/Chart.yaml"):
        # The offline config scans of docker/ and the rendered charts (docs/security.md).
        tools(session, "helm", "trivy", "checkov")
        invoke(session, "scan", "--scanners", "trivy,checkov")
    if files("monitoring/prometheus/*.yaml"):
        tools(session, "promtool")
        invoke(session, "monitoring.check")


@nox.session(python=PYTHON)
def scan(session: nox.Session) -> None:
    """Security scans (docs/security.md): `nox -s scan -- [--images] [--mode ci|release]`.

    Always: trivy config and Checkov on docker/ and every chart rendering (as in
    `lint`), and the vulnerability data for the images' Python pins and the Go tools
    (the publishing ones are installed here, so they are always scanned). --images
    adds SBOM, licence, misconfiguration and vulnerability scans of this revision's
    images (build them first: `nox -s images`). Unreachable vulnerability data is
    "not scanned": a warning locally, a failure with --mode ci or release.
    """
    install(session)
    with green_record(session, "scan"):
        tools(session, "helm", "trivy", "checkov", "govulncheck", "cosign", "syft", "buildx")
        invoke(session, "scan", "--sources", *session.posargs)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Fast unit tests only (no database, cluster or images); posargs go to pytest."""
    install(session)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, starting what it needs; posargs go to pytest.

    Installs missing Debian packages (as root or with sudo) and the pinned tools,
    then runs pytest; fixtures start PostgreSQL, the local Kubernetes cluster and
    the local registry on demand. Example: `nox -s tests -- -m "not images" -x`.
    Tests marked `kind` (real pods on kind) are deselected (tests/conftest.py) and
    left to `nox -s e2e-kind`.
    """
    install(session)
    with green_record(session, "tests"):
        invoke(session, "system.install")
        tools(session)
        session.run("pytest", *session.posargs)


@nox.session(name="tools", python=PYTHON)
def tools_session(session: nox.Session) -> None:
    """Install the pinned CLI tools (posargs: tool names) and print their status table."""
    install(session)
    names = ",".join(session.posargs)
    invoke(session, "tools.install", "--names", names)
    invoke(session, "tools.status", "--names", names)


# --- release ------------------------------------------------------------------------


@nox.session(python=PYTHON)
def release(session: nox.Session) -> None:
    """Cut a release: `nox -s release -- v1.2.3 [--dry-run] [--prepare] [options]`.

    First runs the test gate on the commit and refuses a red one. Options:
    --registry HOST/PATH (default ghcr.io/colliery-io), --skip-github-release,
    --cosign-key FILE (default keyless in GitHub Actions), --no-sign, --no-sbom,
    --github-repo OWNER/NAME, --builder auto|buildx|podman (`-- --help` lists them).
    Env: BROKKR_RELEASE_WEBHOOK_URL (notification). See docs/releasing.md.
    """
    install(session)
    # The arguments go to the task unchanged; brokkr_dev.release.cli parses them.
    invoke(session, "release", "--", *session.posargs)


@nox.session(python=PYTHON)
def verify(session: nox.Session) -> None:
    """Verify a published release: `nox -s verify -- v1.2.3 [--registry HOST/PATH]
    [--key cosign.pub] [--assets DIR]`.

    Checks every image and chart signature, the provenance, SBOM and VEX attestations,
    the checksums of the release assets, the air-gap bundles (their checksums, and
    their images against the published digests) and the tag fan-out; prints one table
    and fails on any miss (docs/releasing.md, "Verifying a release"). `-- --help` lists options.
    """
    install(session)
    invoke(session, "release.verify", "--", *session.posargs)


@nox.session(name="publish-dev", python=PYTHON)
def publish_dev(session: nox.Session) -> None:
    """Push a development build: `nox -s publish-dev -- [--registry HOST/PATH] [--builder B]`.

    Tags `sha-<7 hex>` and the branch name, never a release tag; CI runs it on pushes
    to main and develop.
    """
    install(session)
    invoke(session, "system.install", "--features", "base,containers")
    invoke(session, "release.dev", *session.posargs)


# --- cluster: Kubernetes for tests and development (docs/kubernetes.md) -------------

CLUSTER_COMMANDS = ("up", "down", "status", "bench")


@nox.session(python=PYTHON)
def cluster(session: nox.Session) -> None:
    """Start, stop, inspect or measure a local Kubernetes cluster: `nox -s cluster --
    up|down|status|bench [--name NAME] [--provider local|kind]`. Builds the pinned
    binaries the first time."""
    if not session.posargs or session.posargs[0] not in CLUSTER_COMMANDS:
        session.error(
            f"say what to do: `nox -s cluster -- {'|'.join(CLUSTER_COMMANDS)} "
            "[--name NAME] [--provider local|kind]`"
        )
    install(session)
    command, *options = session.posargs
    invoke(session, f"cluster.{command}", *options)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Opt-in broker benchmark: simulated agents against a real broker and PostgreSQL.

    Reports CPU-ms/request of the broker and of PostgreSQL, RSS, req/s, p50/p99 for
    heartbeats, target-state polls and both mixed, at 1,000 and 10,000 agents, and
    writes JSON. Posargs go to `invoke broker.bench`, e.g. `nox -s bench -- --workers 2
    --compare .local/bench/old.json`; `invoke --help broker.bench` lists the options.
    See docs/broker.md.
    """
    install(session)
    invoke(session, "system.install", "--features", "postgres")
    invoke(session, "broker.bench", *session.posargs)


@nox.session(python=PYTHON)
def up(session: nox.Session) -> None:
    """Bring up a complete local Brokkr and apply a sample stack to it.

    PostgreSQL, the broker, the local Kubernetes cluster (real control plane + kwok)
    and an ACTIVE agent, as background processes tracked by PID files; prints where
    the admin PAK is, the URLs and the next commands. `nox -s down` stops it all.
    """
    refuse_posargs(session)
    install(session)
    invoke(session, "system.install", "--features", "postgres")
    invoke(session, "stack.up")


@nox.session(python=PYTHON)
def down(session: nox.Session) -> None:
    """Stop everything `nox -s up` started and remove its state."""
    refuse_posargs(session)
    install(session)
    invoke(session, "stack.down")


@nox.session(name="agent-bench", python=PYTHON)
def agent_bench(session: nox.Session) -> None:
    """Measure the agent's apply latency and memory against a running `nox -s up` stack."""
    refuse_posargs(session)
    install(session)
    invoke(session, "agent.bench")


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build the broker and agent images for linux/amd64 and linux/arm64 (heavy, opt-in).

    Uses Docker Buildx when a Docker engine answers, else podman with qemu emulation
    and local debootstrap base images; posargs go to `invoke images.build`, e.g.
    `nox -s images -- --platforms linux/amd64 --targets broker`.
    """
    install(session)
    invoke(session, "system.install", "--features", "containers")
    invoke(session, "images.build", *session.posargs)
    invoke(session, "images.measure")


@nox.session(name="rebuild-bench", python=PYTHON)
def rebuild_bench(session: nox.Session) -> None:
    """Time code-only rebuilds of the amd64 broker and agent against the 30 s goal.

    Posargs go to `invoke images.rebuild-bench`, e.g. `-- --builder buildx --runs 5`;
    BROKKR_PODMAN_STORAGE=vfs measures the vfs store (docs/images.md).
    """
    install(session)
    invoke(session, "system.install", "--features", "containers")
    invoke(session, "images.rebuild-bench", *session.posargs)


@nox.session(name="e2e-kind", python=PYTHON)
def e2e_kind(session: nox.Session) -> None:
    """Both charts on real pods of a kind cluster, offline (docs/e2e.md).

    Installs the Debian packages and pinned tools it needs, builds (or reuses) the
    broker, agent and PostgreSQL images for the node's architecture, then runs the
    tests marked `kind`: their fixture ensures the Docker engine and the kind cluster
    and loads the images. Prints the time of each phase and the install-to-Ready
    figures. `-- --kubernetes 1.NN` picks the node's Kubernetes among the minors
    tools.toml pins (default: the newest; docs/e2e.md, "Kubernetes versions"); other
    posargs go to pytest, e.g. `nox -s e2e-kind -- -x -k helm_test`.
    """
    install(session)
    with green_record(session, "e2e-kind"):
        invoke(session, "system.install", "--features", "base,containers")
        # The node binaries and Flux's controllers are built by the task, and only when
        # needed (no pullable kindest/node; Flux tests selected).
        tools(session, "helm", "kind")
        # Arguments go to the task unchanged: --name N, --keep, --kubernetes 1.NN, pytest's.
        invoke(session, "e2e.kind", "--", *session.posargs)


@nox.session(name="e2e-kind-matrix", python=PYTHON)
def e2e_kind_matrix(session: nox.Session) -> None:
    """The Kubernetes version matrix on real pods (docs/e2e.md, "Kubernetes versions").

    For every Kubernetes minor tools.toml pins for the kind node, oldest first: a kind
    cluster of that minor, the chart install, quick start, upgrade and rollback tests
    (`-k "test_charts_on_kind or quick_start or test_upgrade"`), cluster down; the images
    are built once. Prints one line per minor (release, result, seconds, node image) and
    fails if any minor failed. Each minor's node image is built once per machine (our
    own, except where kind's published image is of that minor and can be pulled).
    Posargs: `--name N` and pytest's, e.g. `nox -s e2e-kind-matrix -- -x`.
    """
    install(session)
    invoke(session, "system.install", "--features", "base,containers")
    tools(session, "helm", "kind")
    invoke(session, "e2e.kind-matrix", "--", *session.posargs)


@nox.session(name="node-image-key", python=PYTHON)
def node_image_key(session: nox.Session) -> None:
    """Print the kind node image's cache key: `nox -s node-image-key -- [--github-output FILE]
    [--kubernetes 1.NN]` (default: the newest pinned minor, e2e-kind's default).

    The input digest its saved tar is named by; CI keys the node image cache with it.
    Needs Go (downloads kind's module once); builds nothing.
    """
    install(session)
    invoke(session, "e2e.node-image-key", *session.posargs)


@nox.session(name="node-image", python=PYTHON)
def node_image(session: nox.Session) -> None:
    """Build (once) and check our kind node image for an architecture:
    `nox -s node-image -- [--arch arm64] [--kubernetes 1.NN]` (docs/e2e.md, "The arm64
    node image"; default: this machine's architecture and the newest pinned minor).

    Every binary in the image, and in the component images inside it, must be of that
    architecture, and so must the image's config; for another architecture than this
    machine's, the tools are cross-built, and the node's Kubernetes binaries run once
    in QEMU when the machine has it (Debian: qemu-user-static).
    """
    install(session)
    invoke(session, "system.install", "--features", "base,containers")
    invoke(session, "e2e.node-image", *session.posargs)
