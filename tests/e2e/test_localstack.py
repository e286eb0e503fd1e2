"""`nox -s up` / `nox -s down` end to end, in a temporary directory with its own cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from brokkr_dev.base import process as proc
from brokkr_dev.clusters import get_provider
from brokkr_dev.clusters.api import ClusterClient
from brokkr_dev.local import stack as localstack

pytestmark = [pytest.mark.postgres, pytest.mark.k8s, pytest.mark.slow]


def test_up_applies_the_sample_stack_and_down_stops_everything(tmp_path: Path):
    where = localstack.StackDir(tmp_path / "stack")
    options = localstack.Options(
        cluster_name=f"stack-{os.getpid()}",
        cluster_base=str(tmp_path / "clusters"),
        broker_port=0,
        health_port=0,
    )
    said: list[str] = []
    try:
        info = localstack.up(said.append, where, options)
        client = ClusterClient.from_kubeconfig(Path(info["kubeconfig"]))
        assert all(client.exists(path) for path in localstack.SAMPLE_OBJECTS)
        client.close()
        health = requests.get(info["agent_health"], timeout=5).json()
        assert health["status"] == "healthy" and health["agent"]["status"] == "ACTIVE"
        assert "DEPLOY SUCCESS" in info["event"]
        assert Path(info["admin_pak_file"]).stat().st_mode & 0o077 == 0
        assert info["admin_pak_file"] in localstack.summary(info)

        localstack.up(said.append, where, options)  # a second `up` changes nothing
        assert said[-1].startswith("local Brokkr is already running")
        started = proc.records(where.pids)
        assert {r.name for r in started} == {"postgres", "broker", "agent"}
    finally:
        localstack.down(said.append, where)
    assert not any(proc.alive(record) for record in started)
    assert not where.root.exists()
    cluster = get_provider("local", options.cluster_name, base=Path(options.cluster_base or ""))
    assert not cluster.status().running
