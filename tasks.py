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

from brokkr_dev import charts, system, toolchain


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


# --- charts: Helm charts ---------------------------------------------------------


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


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


tools = Collection("tools")
tools.add_task(tools_install, "install")
tools.add_task(tools_status, "status", default=True)

system_ns = Collection("system")
system_ns.add_task(system_install, "install", default=True)

charts_ns = Collection("charts")
charts_ns.add_task(charts_generate, "generate")
charts_ns.add_task(charts_check, "check", default=True)

namespace = Collection(tools, system_ns, charts_ns)
