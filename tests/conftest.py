"""Shared pytest configuration; fixtures for real services live in tests/fixtures."""

pytest_plugins = [
    "tests.fixtures.http",
    "tests.fixtures.images",
    "tests.fixtures.kube",
    "tests.fixtures.postgres",
    "tests.fixtures.registry",
    "tests.fixtures.release",
]
