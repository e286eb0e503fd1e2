"""The kind provider detects a working container engine, not just a CLI binary."""

from __future__ import annotations

import pytest

from brokkr_dev.cluster import ClusterError, KindProvider
from brokkr_dev.cluster.kind import find_engine


def fake_cli(directory, name: str, exit_code: int, message: str) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit {exit_code}\n")
    script.chmod(0o755)


def test_a_cli_without_a_running_engine_does_not_count(tmp_path, monkeypatch) -> None:
    fake_cli(tmp_path, "docker", 1, "Cannot connect to the Docker daemon. Is it running?")
    monkeypatch.setenv("PATH", str(tmp_path))
    engine, reasons = find_engine(("docker", "podman"))
    assert engine is None
    assert reasons == [
        "docker: `docker info` failed: Cannot connect to the Docker daemon. Is it running?",
        "podman: not installed",
    ]


def test_the_first_engine_that_answers_is_used(tmp_path, monkeypatch) -> None:
    fake_cli(tmp_path, "docker", 1, "no daemon")
    fake_cli(tmp_path, "podman", 0, "ok")
    monkeypatch.setenv("PATH", str(tmp_path))
    engine, reasons = find_engine(("docker", "podman"))
    assert engine == "podman"
    assert reasons == ["docker: `docker info` failed: no daemon"]


def test_up_without_an_engine_fails_clearly_and_points_to_local(tmp_path, monkeypatch) -> None:
    fake_cli(tmp_path, "docker", 1, "Cannot connect to the Docker daemon")
    monkeypatch.setenv("PATH", str(tmp_path))
    provider = KindProvider("dev", base=tmp_path / "clusters", log=lambda _: None)
    with pytest.raises(ClusterError) as caught:
        provider.up()
    message = str(caught.value)
    assert "needs a working container engine" in message
    assert "Cannot connect to the Docker daemon" in message
    assert "--provider local" in message
