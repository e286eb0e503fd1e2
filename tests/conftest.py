"""Shared pytest configuration; fixtures for real services live in tests/fixtures."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.images",
    "tests.fixtures.kube",
    "tests.fixtures.kind",  # after kube: it builds on KubeCluster
    "tests.fixtures.postgres",
    "tests.fixtures.registry",
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
