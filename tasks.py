"""Invoke tasks: the discrete steps that nox sessions and maintainers run.

Every task is a thin wrapper around a function in `src/brokkr_dev`, where the logic
lives and is unit-tested. `invoke --list` shows them by namespace.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent / "src"))

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task as invoke_task

from brokkr_dev import clusters as cluster
from brokkr_dev.base import green, paths, system, toolchain
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.bench import agent as agentbench
from brokkr_dev.bench import broker as bench
from brokkr_dev.bench import cluster as cluster_benchmark
from brokkr_dev.bench import rebuild as rebuildbench
from brokkr_dev.bench import soak
from brokkr_dev.charts import lint as charts
from brokkr_dev.clusters import e2e_kind, pin
from brokkr_dev.containers import (
    baseimages,
    engine,
    images,
    postgres_image,
)
from brokkr_dev.containers import (
    podman as containers,
)
from brokkr_dev.containers.nodeimage import build as nodeimage_build
from brokkr_dev.containers.nodeimage import key as node_image_key
from brokkr_dev.containers.nodeimage import kube_versions
from brokkr_dev.local import stack as localstack
from brokkr_dev.monitoring import rules as monitoring
from brokkr_dev.release import cli as release_cli
from brokkr_dev.release import manifests as release_manifests_module
from brokkr_dev.release import run as release
from brokkr_dev.release import verify as release_verify_module
from brokkr_dev.scan import gate as scan_gate


def task(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """Invoke's @task, turning an automation error into a clean non-zero exit, and
    stopping the rootless podman pause process a task started (nothing outlives it)."""

    def decorate(body: Callable[..., Any]) -> Any:
        @functools.wraps(body)
        def run(*call_args: Any, **call_kwargs: Any) -> Any:
            try:
                with containers.session_pause_process():
                    return body(*call_args, **call_kwargs)
            # Errors that say what is wrong and how to fix it: one line, no traceback.
            except (AutomationError, TimeoutError) as exc:
                raise Exit(f"error: {exc}", code=1) from exc

        return invoke_task(*args, **kwargs)(run)

    return decorate


# --- tools: pinned external CLIs --------------------------------------------------


@task(help={"names": "comma-separated tool names (default: all in tools.toml)"})
def tools_install(c, names=""):
    """Install the pinned CLI tools into bin/ (no-op for tools already there)."""
    for tool in toolchain.select(toolchain.load_manifest(), _split(names)):
        toolchain.ensure(tool)


@task(help={"names": "comma-separated tool names (default: all in tools.toml)"})
def tools_status(c, names=""):
    """Print a table of each pinned tool: version pinned and found, path, status."""
    selected = toolchain.select(toolchain.load_manifest(), _split(names))
    print(toolchain.format_table([toolchain.status(t) for t in selected]))


# --- system: Debian packages ------------------------------------------------------


@task(help={"features": f"comma-separated, from: {', '.join(system.FEATURES)} (default: all)"})
def system_install(c, features=""):
    """Install the Debian packages that the named features need (root or sudo)."""
    system.ensure(_split(features) or [f for f in system.FEATURES if f not in system.ON_DEMAND])


# --- engine: the Docker engine kind runs on ----------------------------------------


@task()
def engine_up(c):
    """Use the Docker engine that answers, or start ours (machine-wide, idempotent)."""
    found = engine.ensure_engine()
    print(f"export DOCKER_HOST={found.host}")


@task()
def engine_down(c):
    """Stop OUR dockerd (never another engine); remove its bridges and iptables rules."""
    if not engine.stop_engine():
        print("our dockerd was not running")


@task()
def engine_status(c):
    """Which Docker engine answers, whether it is ours, and how privileged runs work."""
    print(engine.engine_status())


# --- broker: benchmark -----------------------------------------------------------


@task(
    help={
        "agents": "fleet sizes, comma-separated (default 1000,10000); one with url/dsn",
        "phases": "heartbeat,target-state,mixed (default all three)",
        "duration": "seconds per measured window (default 20)",
        "warmup": "seconds of warm-up per fleet (default 3)",
        "connections": "keep-alive connections sharing the fleet (default 32)",
        "rate": "offered requests/s in total, paced (default 0: as fast as answered)",
        "workers": "broker worker processes (default 1)",
        "pool_size": "database connections per worker (default 10)",
        "url": "benchmark this running broker (http://host:port) instead of starting one",
        "dsn": "use this PostgreSQL database (seeded by this run unless agents-file)",
        "agents_file": "the fleet of a pre-seeded database (written by a --dsn run)",
        "broker_pid": "with url: the broker's (supervisor) pid, for its CPU and RSS",
        "broker_src": "run the broker from this src/ directory (e.g. an older checkout)",
        "output": "write the JSON results here (default .local/bench/bench-<time>.json)",
        "compare": "an earlier JSON result: print new/old ratios",
        "label": "a name stored in the results (e.g. main, branch)",
    }
)
def broker_bench(  # noqa: PLR0917
    c,
    agents="1000,10000",
    phases="heartbeat,target-state,mixed",
    duration=20.0,
    warmup=3.0,
    connections=32,
    rate=0.0,
    workers=1,
    pool_size=10,
    url=None,
    dsn=None,
    agents_file=None,
    broker_pid=None,
    broker_src=None,
    output=None,
    compare=None,
    label="",
):
    """Benchmark agent traffic: CPU-ms/request of broker and PostgreSQL, req/s, latency."""
    try:
        sizes = [int(n) for n in str(agents).split(",") if n.strip()]
    except ValueError:
        raise Exit(
            f"error: --agents takes comma-separated numbers, got {agents!r}", code=2
        ) from None
    try:
        bench.run(
            bench.Options(
                sizes=sizes,
                phases=[p.strip() for p in str(phases).split(",") if p.strip()],
                duration=float(duration),
                warmup=float(warmup),
                connections=int(connections),
                rate=float(rate),
                workers=int(workers),
                pool_size=int(pool_size),
                url=url,
                dsn=dsn,
                agents_file=Path(agents_file) if agents_file else None,
                broker_pid=int(broker_pid) if broker_pid else None,
                broker_src=Path(broker_src) if broker_src else None,
                output=Path(output) if output else None,
                compare=Path(compare) if compare else None,
                label=label,
            )
        )
    except (bench.BenchError, ValueError) as exc:
        raise Exit(f"error: {exc}", code=2) from None


@task(
    help={
        "seconds": "how long the soak runs after a 15 s warm-up (default 600)",
        "agents": "well-behaved agents heartbeating and polling (default 20)",
        "output": "also write the JSON result here",
    }
)
def broker_soak(c, seconds=600.0, agents=20, output=None):
    """Soak the broker: agents next to hostile, slow and oversized-header clients (not CI)."""
    try:
        result = soak.run(float(seconds), int(agents), paths.REPO_ROOT / ".local" / "soak")
    except soak.SoakError as exc:
        raise Exit(f"error: {exc}", code=2) from None
    text = json.dumps(result, indent=2)
    print(text)
    if output:
        Path(output).write_text(text + "\n")
    if not result["passed"]:
        raise Exit("soak failed: " + "; ".join(result["problems"]), code=1)


# --- cluster: Kubernetes for tests and development (docs/kubernetes.md) -------------

_CLUSTER_HELP = {
    "provider": "local (real control plane + kwok, no container engine) or kind",
    "name": "cluster name; its files are in .local/clusters/<name>/ (default: dev)",
}


@task(help=_CLUSTER_HELP)
def cluster_up(c, provider="local", name=cluster.DEFAULT_NAME):
    """Start a cluster and wait for a Ready node; prints its kubeconfig path (no-op if up)."""
    cluster.get_provider(provider, name).up()


@task(help=_CLUSTER_HELP)
def cluster_down(c, provider="local", name=cluster.DEFAULT_NAME):
    """Stop a cluster: `local` stops its processes by PID (data stays), `kind` deletes it."""
    cluster.get_provider(provider, name).down()


@task(help=_CLUSTER_HELP)
def cluster_status(c, provider="local", name=cluster.DEFAULT_NAME):
    """Print whether a cluster runs: processes, memory, API version, Ready nodes."""
    print(cluster.get_provider(provider, name).status().render())


@task(
    help={
        "runs": "clusters started (and restarts) to measure",
        "settle": "seconds before memory is read",
    }
)
def cluster_bench(c, runs=3, settle=30.0):
    """Measure a local cluster: seconds to a Ready node (new and restarted), memory."""
    print(cluster_benchmark.run(int(runs), float(settle)).render())


@task()
def cluster_pin(c):
    """Regenerate each Kubernetes wrapper module under go/ ([kubernetes] and the kind
    node's [kubernetes-node-1.NN]) for the versions in tools.toml."""
    pin.pin_all()


# --- charts: Helm charts (docs/charts.md) ------------------------------------------


@task()
def charts_generate(c):
    """Regenerate each chart's schema and README table, the dashboards and the charts' rule copies."""
    for path in monitoring.generate():
        print(f"updated {path.relative_to(charts.CHARTS_DIR.parent)}")
    for chart in charts.find_charts():
        for path in charts.generate(chart):
            print(f"updated {path.relative_to(charts.CHARTS_DIR.parent)}")


@task()
def charts_check(c):
    """The chart gate: generated files, dead values, helm 3/4 lint, kubeconform, bad values."""
    charts.check_all()


@task()
def monitoring_check(c):
    """promtool check rules and promtool test rules; runbook links of every alert."""
    monitoring.check(log=print)


# --- stack: a complete local Brokkr; agent: its benchmark (issue 5) ----------------


@task(help={"interval": "the agent's polling interval in seconds (default 2)"})
def stack_up(c, interval=2.0):
    """Start PostgreSQL, the broker, the local cluster and an ACTIVE agent; apply a sample stack."""
    info = localstack.up(options=localstack.Options(interval=float(interval)))
    print(localstack.summary(info))


@task()
def stack_down(c):
    """Stop everything `stack.up` started (by PID) and remove its state in .local/stack/."""
    localstack.down()


@task(
    help={
        "intervals": "comma-separated polling intervals in seconds (default 10,1)",
        "runs": "deployment objects posted per interval (default 20)",
    }
)
def agent_bench(c, intervals="10,1", runs=20):
    """Time from posting a deployment object to its objects in the cluster, and agent memory."""
    results = agentbench.run([float(i) for i in _split(intervals)], int(runs))
    print(agentbench.table(results))


# --- images: broker and agent container images ------------------------------------


def _arches(platforms: str) -> list[str]:
    return [images.arch_of(p) for p in _split(platforms)] or list(images.ARCHES)


@task(help={"platforms": "comma-separated, e.g. linux/arm64 (default: amd64 and arm64)"})
def images_setup(c, platforms=""):
    """Set this host up for podman builds: containers.conf ulimits, qemu for foreign arches."""
    foreign = [a for a in _arches(platforms) if a != images.native_arch()]
    for change in containers.ensure_podman_host(foreign):
        print(f"changed: {change}")


@task(help={"platforms": "comma-separated, e.g. linux/arm64 (default: amd64 and arm64)"})
def images_base(c, platforms=""):
    """Create the local debootstrap base images (cached in ~/.cache/brokkr/base-images)."""
    arches = _arches(platforms)
    containers.ensure_podman_host([a for a in arches if a != images.native_arch()])
    for arch in arches:
        print(baseimages.ensure(baseimages.for_arch(arch)))


@task(
    help={
        "check": "only check that docker/requirements.txt matches uv.lock (for lint)",
        "build_backend": "also re-pin docker/build-requirements.txt (needs PyPI)",
    }
)
def images_requirements(c, check=False, build_backend=False):
    """Export uv.lock's runtime dependencies to docker/requirements.txt (hash-pinned)."""
    if check:
        if images.stale_requirements():
            raise Exit(
                "error: docker/requirements.txt does not match uv.lock; "
                "run `invoke images.requirements` and commit the result",
                code=1,
            )
        return
    for path in images.write_requirements(build_backend=build_backend):
        print(f"updated {path}")


@task(help={"platforms": "comma-separated, e.g. linux/arm64 (default: amd64 and arm64)"})
def images_wheelhouse(c, platforms=""):
    """Download the locked wheels of both architectures into docker/wheelhouse (offline builds)."""
    print(images.ensure_wheelhouse(_arches(platforms)))


@task(
    help={
        "targets": "comma-separated: broker,agent (default: both)",
        "platforms": "comma-separated: linux/amd64,linux/arm64 (default: both)",
        "builder": "auto (Buildx if a Docker engine answers, else podman), buildx or podman",
        "base_image": "BASE_IMAGE; `{arch}` expands (default: official for Buildx, local for podman)",
        "registry": "image name prefix (default: localhost)",
        "online": "no wheelhouse: pip downloads in the build, trusting --ca-bundle",
        "ca_bundle": "CA bundle passed as build secret `cacert` (default with --online: the host's)",
        "push": "push the manifest lists to --registry",
        "reproducible": "podman: no layer cache, times at the epoch, build identity stripped",
    }
)
def images_build(  # noqa: PLR0917 - Invoke maps each command-line option to a parameter
    c,
    targets="",
    platforms="",
    builder="auto",
    base_image="",
    registry="localhost",
    online=False,
    ca_bundle="",
    push=False,
    reproducible=False,
):
    """Build the broker and agent images for amd64 and arm64 plus their manifest lists
    (--reproducible: podman builds whose digests a rebuild of the commit repeats)."""
    result = images.build(
        targets=_split(targets) or list(images.TARGETS),
        arches=_arches(platforms),
        builder=builder,
        base_image=base_image,
        registry=registry,
        offline=not online,
        ca_bundle=Path(ca_bundle) if ca_bundle else None,
        push=push,
        reproducible=reproducible,
    )
    print(f"\nbuilder: {result.builder}")
    for (target, arch), refs in result.images.items():
        print(f"{target:7} {arch:6} {result.seconds[(target, arch)]:7.1f} s  {', '.join(refs)}")
    for target, refs in result.manifests.items():
        print(f"{target:7} manifest list: {', '.join(refs)}")


@task(
    help={
        "platforms": "comma-separated (default: amd64 and arm64)",
        "tag": "multi-arch tag to measure, e.g. sha-abc1234 or main (default: this commit)",
    }
)
def images_measure(c, platforms="", tag=""):
    """Print each built image's size, compressed and uncompressed, total and over its base."""
    info = images.read_build_info()
    print(images.format_sizes(images.measure_all(info, _arches(platforms), tag)))


@task(
    help={
        "builder": "podman (default), buildx or auto",
        "runs": "measured rebuilds after one warm-up build (default 3)",
    }
)
def images_rebuild_bench(c, builder="podman", runs=3):
    """Time code-only rebuilds of broker and agent (native arch) against the 30 s goal.

    BROKKR_PODMAN_STORAGE=vfs|overlay|auto picks podman's storage (docs/images.md)."""
    figures = rebuildbench.run(engine=builder, runs=int(runs))
    print(figures.summary())


@task(help={"platforms": "comma-separated, e.g. linux/arm64 (default: this host's)"})
def images_postgresql(c, platforms=""):
    """Build the PostgreSQL test image from Debian's packages (skipped when up to date)."""
    for arch in [images.arch_of(p) for p in _split(platforms)] or [images.native_arch()]:
        print(postgres_image.ensure(arch).reference)


# --- e2e: both charts on a real kind cluster (docs/e2e.md) --------------------------


@task()
def e2e_kind_run(c):
    """`invoke e2e.kind -- [--name N] [--keep] [--kubernetes 1.NN] [PYTEST ARGS]`: images,
    kind on that pinned Kubernetes minor (default the newest), the `kind` tests, cluster
    down; prints timings and which engine was used and left running."""
    arguments = e2e_kind.parse_arguments(after_double_dash(c))
    code = e2e_kind.run(
        arguments.pytest,
        name=arguments.name,
        keep=arguments.keep,
        kubernetes=arguments.kubernetes,
    )
    if code != 0:
        raise Exit(f"error: the kind tests failed (pytest exit status {code})", code=code)


@task()
def e2e_kind_matrix(c):
    """`invoke e2e.kind-matrix -- [--name N] [PYTEST ARGS]`: the chart install, quick start
    and upgrade tests on a kind cluster of every pinned Kubernetes minor; one line each."""
    arguments = e2e_kind.matrix_arguments(after_double_dash(c))
    outcomes = e2e_kind.run_matrix(arguments.pytest, name=arguments.name)
    if not e2e_kind.matrix_passed(outcomes):
        failed = [f"{o.kubernetes} ({o.version})" for o in outcomes if o.code != 0]
        raise Exit(f"error: the kind tests failed on Kubernetes {', '.join(failed)}", code=1)


@task(
    help={
        "github_output": "append `key=<key>` to this file (a step's $GITHUB_OUTPUT)",
        "kubernetes": "the node's Kubernetes minor, e.g. 1.35 (default: the newest pinned)",
    }
)
def e2e_node_image_key(c, github_output="", kubernetes=""):
    """Print the kind node image's cache key (its input digest); CI keys its cache by it."""
    key = node_image_key.node_image_key(kubernetes=kubernetes or None)
    print(key)
    if github_output:
        node_image_key.write_github_output(key, Path(github_output))


@task(
    help={
        "arch": "amd64 or arm64 (default: this machine's); another one is cross-built",
        "kubernetes": "the node's Kubernetes minor, e.g. 1.35 (default: the newest pinned)",
    }
)
def e2e_node_image(c, arch="", kubernetes=""):
    """Build (once) and check our kind node image: every binary in it and its config
    are of the architecture; a foreign one's Kubernetes binaries run once in QEMU."""
    arch = arch or toolchain.host_platform()[1]
    with engine.session_engine():
        tag = nodeimage_build.checked_node_image(
            engine.ensure_engine(), arch, kube_versions.choose(kubernetes or None)
        )
    print(tag)


def after_double_dash(c: Any) -> list[str]:
    """The arguments after `--`, exactly as given: Invoke's own remainder joins them
    with spaces, which would split `-k "a or b"` into four words."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1 :]
    return shlex.split(c.remainder)


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


tools = Collection("tools")
tools.add_task(tools_install, "install")
tools.add_task(tools_status, "status", default=True)

system_ns = Collection("system")
system_ns.add_task(system_install, "install", default=True)


# --- release: tags, images, charts, signatures (src/brokkr_dev/release) -----------


@task()
def release_run(c):
    """Release a version: `invoke release -- vX.Y.Z [--dry-run] [options]` (`-- --help`).

    Test gate, stamp, build and push images and charts, sign, notes, assets, GitHub
    release; a webhook in BROKKR_RELEASE_WEBHOOK_URL hears the result. The arguments
    after `--` are parsed once, by brokkr_dev.release.cli.
    """
    request = release_cli.parse(after_double_dash(c))
    system.ensure(request.system_features)
    manifest = toolchain.load_manifest()
    for name in request.tools:
        toolchain.ensure(manifest[name])
    if request.prepare:
        release.prepare(request.options)
    else:
        release.release(request.options)


@task(
    help={
        "registry": "image registry and path, e.g. ghcr.io/colliery-io",
        "builder": "image builder: auto (Buildx when a Docker engine answers), buildx or podman",
    }
)
def release_dev(c, registry="ghcr.io/colliery-io", builder="auto"):
    """Push a development build of both images as `sha-<7 hex>` and the branch name."""
    release.publish_dev(registry, builder_name=builder)


@task(help={"chart": "brokkr-broker or brokkr-agent"})
def release_chart_patch(c, chart=""):
    """Bump one chart's patch version for a chart-only fix, keeping its appVersion."""
    release.chart_patch(paths.REPO_ROOT, chart)


@task(
    help={
        "chart": "brokkr-broker or brokkr-agent",
        "registry": "registry and path; the chart goes to <registry>/charts",
        "cosign_key": "sign with this key file (default keyless in GitHub Actions)",
        "sign": "sign and verify the chart",
        "helm_key": "also sign with Helm (.prov): the GPG key's name",
        "helm_keyring": "the secret keyring holding --helm-key",
    }
)
def release_chart(  # noqa: PLR0917 - Invoke maps each command-line option to a parameter
    c, chart="", registry="ghcr.io/colliery-io", cosign_key="", sign=True, helm_key="",
    helm_keyring="",
):  # fmt: skip
    """Publish one chart at its current version (a chart-only fix); never overwrites."""
    release.release_chart(
        chart,
        registry,
        cosign_key=cosign_key or None,
        sign=sign,
        helm_key=helm_key or None,
        helm_keyring=helm_keyring or None,
    )


@task(help={"out": "folder for brokkr-broker-install.yaml and brokkr-agent-install.yaml"})
def release_manifests(c, out="dist/manifests"):
    """Render the raw install manifests a release attaches (helm template, no secrets)."""
    for path in release_manifests_module.write_install_manifests(
        paths.REPO_ROOT / "charts", paths.REPO_ROOT / out
    ):
        print(path)


@task()
def release_verify(c):
    """Verify a published release: `invoke release.verify -- vX.Y.Z [options]` (`-- --help`).

    Signatures, provenance, SBOM and VEX attestations, asset checksums, the air-gap
    bundles and the tag fan-out, checked with cosign; prints one table and fails on
    any miss.
    """
    argv = after_double_dash(c)
    if "--help" in argv or "-h" in argv:
        print(release_verify_module.usage())
        return
    request = release_verify_module.parse_args(argv)
    manifest = toolchain.load_manifest()
    cosign, helm = toolchain.ensure(manifest["cosign"]), toolchain.ensure(manifest["helm"])
    release_verify_module.verify(request, cosign=str(cosign), helm=str(helm))


release_ns = Collection("release")
release_ns.add_task(release_run, "run", default=True)
release_ns.add_task(release_verify, "verify")
release_ns.add_task(release_dev, "dev")
release_ns.add_task(release_chart_patch, "chart-patch")
release_ns.add_task(release_chart, "chart")
release_ns.add_task(release_manifests, "manifests")

broker_ns = Collection("broker")
broker_ns.add_task(broker_bench, "bench")
broker_ns.add_task(broker_soak, "soak")

engine_ns = Collection("engine")
engine_ns.add_task(engine_up, "up")
engine_ns.add_task(engine_down, "down")
engine_ns.add_task(engine_status, "status", default=True)

cluster_ns = Collection("cluster")
cluster_ns.add_task(cluster_up, "up")
cluster_ns.add_task(cluster_down, "down")
cluster_ns.add_task(cluster_status, "status", default=True)
cluster_ns.add_task(cluster_pin, "pin")
cluster_ns.add_task(cluster_bench, "bench")

charts_ns = Collection("charts")
charts_ns.add_task(charts_generate, "generate")
charts_ns.add_task(charts_check, "check", default=True)

monitoring_ns = Collection("monitoring")
monitoring_ns.add_task(monitoring_check, "check", default=True)

stack_ns = Collection("stack")
stack_ns.add_task(stack_up, "up")
stack_ns.add_task(stack_down, "down")

agent_ns = Collection("agent")
agent_ns.add_task(agent_bench, "bench")

images_ns = Collection("images")
images_ns.add_task(images_build, "build", default=True)
images_ns.add_task(images_setup, "setup")
images_ns.add_task(images_base, "base")
images_ns.add_task(images_requirements, "requirements")
images_ns.add_task(images_wheelhouse, "wheelhouse")
images_ns.add_task(images_measure, "measure")
images_ns.add_task(images_postgresql, "postgresql")
images_ns.add_task(images_rebuild_bench, "rebuild-bench")

e2e_ns = Collection("e2e")
e2e_ns.add_task(e2e_kind_run, "kind")
e2e_ns.add_task(e2e_kind_matrix, "kind-matrix")
e2e_ns.add_task(e2e_node_image_key, "node-image-key")
e2e_ns.add_task(e2e_node_image, "node-image")


# --- scan: security scans (src/brokkr_dev/scan, docs/security.md) ------------------


@task(
    help={
        "config": "trivy config and Checkov on docker/ and the rendered charts (default on)",
        "sources": "vulnerability data for the pinned Python packages and the Go tools",
        "images": "SBOM, licence, misconfiguration and vulnerability scans of the built images",
        "mode": "local (not scanned = warning), ci or release (not scanned = failure); "
        "default ci when $CI is set, else local",
        "scanners": "config scanners, comma-separated: trivy,checkov (default both)",
        "docker_dir": "directory with the Dockerfiles (default docker/)",
        "charts_dir": "directory with the charts (default charts/)",
        "tag": "image tag to scan (default: this revision's sha-<7>)",
        "work_dir": "where renderings, archives and reports go (default build/scan)",
        "tolerate_not_scanned": "vulnerability sources whose absence is only a warning in ci "
        "mode, comma-separated (e.g. trivy-vuln where its DB is unreachable); refused in release",
    }
)
def scan_run(  # noqa: PLR0917 - one keyword option per CLI flag
    c,
    config=True,
    sources=False,
    images=False,
    mode="",
    scanners="trivy,checkov",
    docker_dir="",
    charts_dir="",
    tag="",
    work_dir="",
    tolerate_not_scanned="",
):
    """Run the security scans, print the summary table, fail on what the policy forbids."""
    verdict = scan_gate.run(
        config=config,
        sources=sources,
        image_scans=images,
        mode=scan_gate.mode_from(mode),
        scanners=_split(scanners),
        docker_dir=Path(docker_dir) if docker_dir else scan_gate.DOCKER_DIR,
        charts_dir=Path(charts_dir) if charts_dir else charts.CHARTS_DIR,
        tag=tag,
        workdir=Path(work_dir) if work_dir else scan_gate.WORK_DIR,
        tolerate_not_scanned=_split(tolerate_not_scanned),
    )
    if not verdict.ok:
        raise Exit("scan failed:\n- " + "\n- ".join(verdict.failures), code=1)


scan_ns = Collection("scan")
scan_ns.add_task(scan_run, "run", default=True)

# --- green: records of passed sessions for the release gate (base/green.py) --------


@task(help={"check": "lint, tests, e2e-kind or scan", "args": "the session's arguments"})
def green_begin(c, check, args=""):
    """Note the tree a session starts on (its noxfile wrapper calls this first)."""
    print(green.begin(check, shlex.split(args)))


@task(help={"check": "lint, tests, e2e-kind or scan"})
def green_finish(c, check):
    """Record that the session passed on the tree noted at its start (called last)."""
    print(green.finish(check))


@task()
def green_status(c):
    """Which of the release gate's checks have a green record for this tree."""
    problems = green.missing(paths.REPO_ROOT)
    print("\n".join(problems) or f"every check has a green record: {', '.join(green.REQUIRED)}")


green_ns = Collection("green")
green_ns.add_task(green_begin, "begin")
green_ns.add_task(green_finish, "finish")
green_ns.add_task(green_status, "status", default=True)

namespace = Collection(
    green_ns,
    tools,
    system_ns,
    engine_ns,
    cluster_ns,
    broker_ns,
    charts_ns,
    monitoring_ns,
    stack_ns,
    agent_ns,
    release_ns,
    images_ns,
    scan_ns,
    e2e_ns,
)
