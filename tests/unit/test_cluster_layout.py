"""Cluster names and directories."""

from __future__ import annotations

import stat

import pytest

from brokkr_dev.clusters import ClusterError, LocalProvider, get_provider
from brokkr_dev.clusters.layout import ClusterDir


@pytest.mark.parametrize("name", ["dev", "test-1", "a", "pytest-12345"])
def test_valid_names(name: str) -> None:
    assert ClusterDir.of(name).name == name


@pytest.mark.parametrize("name", ["", "Dev", "-x", "x-", "a_b", "../etc", "x" * 41])
def test_invalid_names_are_refused_with_an_example(name: str) -> None:
    with pytest.raises(ValueError, match="for example `dev`"):
        ClusterDir.of(name)


def test_cluster_directories_are_private(tmp_path) -> None:
    cluster = ClusterDir.of("dev", tmp_path)
    cluster.create()
    assert cluster.kubeconfig == tmp_path / "dev" / "kubeconfig"
    for directory in (cluster.root, cluster.certs, cluster.pids, cluster.logs, cluster.data):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ClusterError, match="choose one of: local, kind"):
        get_provider("minikube")


def test_bad_name_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError, match="invalid cluster name"):
        LocalProvider("Bad Name")


def test_a_cluster_of_one_provider_is_not_driven_by_another(tmp_path) -> None:
    local = LocalProvider("dev", base=tmp_path, log=lambda _: None)
    local.dir.create()
    local.dir.provider_file.write_text("kind\n")
    with pytest.raises(ClusterError, match="made by the 'kind' provider"):
        local.up()


def test_status_of_a_cluster_never_started(tmp_path) -> None:
    status = LocalProvider("dev", base=tmp_path).status()
    assert not status.running
    assert set(status.processes.values()) == {"stopped"}
    assert "dev (local): stopped" in status.render()


def test_down_of_a_cluster_never_started_is_harmless(tmp_path) -> None:
    said: list[str] = []
    LocalProvider("dev", base=tmp_path, log=said.append).down()
    assert said == ["cluster dev is not running"]
