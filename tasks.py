"""Invoke tasks: the discrete steps that nox sessions and maintainers run.

Every task is a thin wrapper around a function in `src/brokkr_dev`, where the logic
lives and is unit-tested. `invoke --list` shows them by namespace.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "src"))

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

from brokkr_dev import (
    agentbench,
    bench,
    charts,
    cluster,
    localstack,
    postgres,
    system,
    toolchain,
)
from brokkr_dev.cluster import bench as cluster_benchmark
from brokkr_dev.cluster import pin


def _fail(exc: Exception) -> Exit:
    """Turn a known automation error into a clean non-zero exit with its message."""
    return Exit(f"error: {exc}", code=1)


# --- tools: pinned external CLIs --------------------------------------------------


@task(help={"names": "comma-separated tool names (default: all in tools.toml)"})
def tools_install(c, names=""):
    """Install the pinned CLI tools into bin/ (no-op for tools already there)."""
    try:
        for tool in toolchain.select(toolchain.load_manifest(), _split(names)):
            toolchain.ensure(tool)
    except toolchain.ToolError as exc:
        raise _fail(exc) from exc


@task(help={"names": "comma-separated tool names (default: all in tools.toml)"})
def tools_status(c, names=""):
    """Print a table of each pinned tool: version pinned and found, path, status."""
    try:
        selected = toolchain.select(toolchain.load_manifest(), _split(names))
    except toolchain.ToolError as exc:
        raise _fail(exc) from exc
    print(toolchain.format_table([toolchain.status(t) for t in selected]))


# --- system: Debian packages ------------------------------------------------------


@task(help={"features": f"comma-separated, from: {', '.join(system.FEATURES)} (default: all)"})
def system_install(c, features=""):
    """Install the Debian packages that the named features need (root or sudo)."""
    try:
        system.ensure(_split(features) or list(system.FEATURES))
    except system.SystemError as exc:
        raise _fail(exc) from exc


# --- broker: benchmark -----------------------------------------------------------


@task(
    help={
        "agents": "registered agents in the database (default 10000)",
        "concurrency": "simulated agents polling at once (default 32)",
        "duration": "seconds of measurement after a 3 s warm-up (default 20)",
        "pool_size": "broker database pool size per worker (default 10)",
        "workers": "broker worker processes (default 1)",
    }
)
def broker_bench(c, agents=10_000, concurrency=32, duration=20.0, pool_size=10, workers=1):  # noqa: PLR0917
    """Benchmark agent traffic (heartbeat + target-state) on a throw-away PostgreSQL."""
    bench.run(
        registered=int(agents),
        concurrency=int(concurrency),
        duration=float(duration),
        pool_size=int(pool_size),
        workers=int(workers),
    )


# --- cluster: Kubernetes for tests and development (docs/kubernetes.md) -------------

_CLUSTER_HELP = {
    "provider": "local (real control plane + kwok, no container engine) or kind",
    "name": "cluster name; its files are in .local/clusters/<name>/ (default: dev)",
}


@task(help=_CLUSTER_HELP)
def cluster_up(c, provider="local", name=cluster.DEFAULT_NAME):
    """Start a cluster and wait for a Ready node; prints its kubeconfig path (no-op if up)."""
    try:
        cluster.get_provider(provider, name).up()
    except (cluster.ClusterError, TimeoutError) as exc:
        raise _fail(exc) from exc


@task(help=_CLUSTER_HELP)
def cluster_down(c, provider="local", name=cluster.DEFAULT_NAME):
    """Stop every process of a cluster (by PID); its data stays for the next `up`."""
    try:
        cluster.get_provider(provider, name).down()
    except cluster.ClusterError as exc:
        raise _fail(exc) from exc


@task(help=_CLUSTER_HELP)
def cluster_status(c, provider="local", name=cluster.DEFAULT_NAME):
    """Print whether a cluster runs: processes, memory, API version, Ready nodes."""
    try:
        print(cluster.get_provider(provider, name).status().render())
    except cluster.ClusterError as exc:
        raise _fail(exc) from exc


@task(
    help={
        "runs": "clusters started (and restarts) to measure",
        "settle": "seconds before memory is read",
    }
)
def cluster_bench(c, runs=3, settle=30.0):
    """Measure a local cluster: seconds to a Ready node (new and restarted), memory."""
    try:
        print(cluster_benchmark.run(int(runs), float(settle)).render())
    except (cluster.ClusterError, TimeoutError) as exc:
        raise _fail(exc) from exc


@task()
def cluster_pin(c):
    """Regenerate go/kubernetes/go.mod for the Kubernetes version in tools.toml."""
    try:
        version = toolchain.load_manifest()["kubernetes"].version
        pin.pin(version)
    except (toolchain.ToolError, pin.PinError) as exc:
        raise _fail(exc) from exc
    print(f"go/kubernetes/go.mod now builds Kubernetes {version}")


# --- charts: Helm charts (docs/charts.md) ------------------------------------------


@task()
def charts_generate(c):
    """Regenerate each chart's values.schema.json and README values table from values.yaml."""
    try:
        for chart in charts.find_charts():
            for path in charts.generate(chart):
                print(f"updated {path.relative_to(charts.CHARTS_DIR.parent)}")
    except charts.ChartError as exc:
        raise _fail(exc) from exc


@task()
def charts_check(c):
    """The chart gate: generated files, dead values, helm 3/4 lint, kubeconform, bad values."""
    try:
        charts.check_all()
    except charts.ChartError as exc:
        raise _fail(exc) from exc


# --- stack: a complete local Brokkr; agent: its benchmark (issue 5) ----------------


@task(help={"interval": "the agent's polling interval in seconds (default 2)"})
def stack_up(c, interval=2.0):
    """Start PostgreSQL, the broker, the local cluster and an ACTIVE agent; apply a sample stack."""
    try:
        info = localstack.up(options=localstack.Options(interval=float(interval)))
    except (
        localstack.StackError,
        cluster.ClusterError,
        postgres.PostgresError,
        toolchain.ToolError,
        TimeoutError,
    ) as exc:
        raise _fail(exc) from exc
    print(localstack.summary(info))


@task()
def stack_down(c):
    """Stop everything `stack.up` started (by PID) and remove its state in .local/stack/."""
    try:
        localstack.down()
    except cluster.ClusterError as exc:
        raise _fail(exc) from exc


@task(
    help={
        "intervals": "comma-separated polling intervals in seconds (default 10,1)",
        "runs": "deployment objects posted per interval (default 20)",
    }
)
def agent_bench(c, intervals="10,1", runs=20):
    """Time from posting a deployment object to its objects in the cluster, and agent memory."""
    try:
        results = agentbench.run([float(i) for i in _split(intervals)], int(runs))
    except localstack.StackError as exc:
        raise _fail(exc) from exc
    print(agentbench.table(results))


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


tools = Collection("tools")
tools.add_task(tools_install, "install")
tools.add_task(tools_status, "status", default=True)

system_ns = Collection("system")
system_ns.add_task(system_install, "install", default=True)

broker_ns = Collection("broker")
broker_ns.add_task(broker_bench, "bench")

cluster_ns = Collection("cluster")
cluster_ns.add_task(cluster_up, "up")
cluster_ns.add_task(cluster_down, "down")
cluster_ns.add_task(cluster_status, "status", default=True)
cluster_ns.add_task(cluster_pin, "pin")
cluster_ns.add_task(cluster_bench, "bench")

charts_ns = Collection("charts")
charts_ns.add_task(charts_generate, "generate")
charts_ns.add_task(charts_check, "check", default=True)

stack_ns = Collection("stack")
stack_ns.add_task(stack_up, "up")
stack_ns.add_task(stack_down, "down")

agent_ns = Collection("agent")
agent_ns.add_task(agent_bench, "bench")

namespace = Collection(tools, system_ns, cluster_ns, broker_ns, charts_ns, stack_ns, agent_ns)
