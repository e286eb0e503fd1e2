"""A local cluster starts, stops completely, and starts again with its data kept;
`up` on a running cluster changes nothing. Uses its own cluster, not the session's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokkr_dev.base import process
from brokkr_dev.clusters import LocalProvider, ports
from brokkr_dev.clusters.api import ClusterClient
from tests.k8s.conftest import configmap


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[tuple[LocalProvider, list[str]]]:
    said: list[str] = []
    cluster = LocalProvider(
        f"life-{os.getpid()}", base=tmp_path, log=said.append, die_with_parent=True
    )
    yield cluster, said
    cluster.down()


def test_start_stop_start_keeps_data_and_second_up_is_a_no_op(
    provider: tuple[LocalProvider, list[str]],
) -> None:
    cluster, said = provider
    first = cluster.up()
    assert first.running
    assert first.ready_nodes == ["kwok-node-0"]
    records = process.records(cluster.dir.pids)
    assert {r.name for r in records} == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    client = ClusterClient.from_kubeconfig(cluster.kubeconfig)
    client.create("/api/v1/namespaces/default/configmaps", configmap("survivor"))

    said.clear()
    again = cluster.up()
    assert said[0] == f"cluster {cluster.name} is already running; nothing to do"
    assert [r.pid for r in process.records(cluster.dir.pids)] == [r.pid for r in records]
    assert again.server == first.server

    cluster.down()
    for record in records:
        assert not process.alive(record), f"{record.name} still runs after down"
    assert process.records(cluster.dir.pids) == []
    used = ports.load(cluster.dir.ports_file)
    assert not any(ports.in_use(port) for port in used.values())
    assert not cluster.status().running

    second = cluster.up()
    assert second.running
    assert second.ready_nodes == ["kwok-node-0"]
    client = ClusterClient.from_kubeconfig(cluster.kubeconfig)  # ports may have changed
    assert client.exists("/api/v1/namespaces/default/configmaps/survivor")
