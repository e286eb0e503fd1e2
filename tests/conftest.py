"""Shared pytest configuration; fixtures for real services live in tests/fixtures."""

from __future__ import annotations

import contextlib

import pytest

from brokkr_dev.containers import podman
from brokkr_dev.containers.engine import session_engine

# Lines for the end of the run: which Docker engine the tests used, and whether the
# dockerd they started (if any) was stopped, as the session promised.
ENGINE_GUARD = pytest.StashKey[contextlib.ExitStack]()
ENGINE_LINES = pytest.StashKey[list[str]]()

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.http",
    "tests.fixtures.images",
    "tests.fixtures.kube",
    "tests.fixtures.kind",  # after kube: it builds on KubeCluster
    "tests.fixtures.postgres",
    "tests.fixtures.registry",
    "tests.fixtures.mirror",  # after registry: it builds on LocalRegistry
    "tests.fixtures.release",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (never skip) the `kind` tests unless the run asks for them with `-m`:
    a cold node image takes the better part of an hour to build (docs/kubernetes.md)."""
    if "kind" in (config.getoption("markexpr") or ""):
        return
    chosen = [item for item in items if item.get_closest_marker("kind") is None]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in chosen])
        items[:] = chosen


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note whether our dockerd runs before the tests, to stop it after them if they
    started it (BROKKR_KEEP_ENGINE=1 keeps it)."""
    lines: list[str] = []
    guard = contextlib.ExitStack()
    guard.enter_context(session_engine(lines.append))
    guard.enter_context(podman.session_pause_process(lines.append))
    session.config.stash[ENGINE_GUARD] = guard
    session.config.stash[ENGINE_LINES] = lines


def pytest_sessionfinish(session: pytest.Session) -> None:
    guard = session.config.stash.get(ENGINE_GUARD, None)
    if guard is not None:
        guard.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in terminalreporter.config.stash.get(ENGINE_LINES, []):
        if line.startswith("engine: none"):
            continue  # nothing to say when the tests used no engine
        terminalreporter.write_line(line)
