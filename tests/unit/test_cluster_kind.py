"""The kind provider's and node image's pure decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from brokkr_dev.clusters import ClusterError, KindProvider
from brokkr_dev.clusters.kind import kind_config, ready_workload
from brokkr_dev.containers.nodeimage import build, recipe

PINS = {
    "kubernetes-node": "v1.36.3",
    "etcd": "v3.6.16",
    "coredns": "v1.14.2",
    "pause": "v3.10.2",
    "kube-router": "v2.1.0",
    "local-path-provisioner": "v0.0.30",
    "kind": "v0.33.0",
}


def test_kind_config_patches_kubelet_and_etcd() -> None:
    config = yaml.safe_load(kind_config("3.6.16-0"))
    assert config["kind"] == "Cluster"
    assert [n["role"] for n in config["nodes"]] == ["control-plane"]
    patches = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"]]
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches
    assert {"kind": "ClusterConfiguration", "etcd": {"local": {"imageTag": "3.6.16-0"}}} in patches
    published = yaml.safe_load(kind_config(None))
    assert len(published["kubeadmConfigPatches"]) == 1


def test_ready_workloads() -> None:
    assert ready_workload("deployments", {"spec": {"replicas": 2}, "status": {"readyReplicas": 2}})
    assert not ready_workload("deployments", {"spec": {"replicas": 2}, "status": {}})
    ready = {"status": {"desiredNumberScheduled": 1, "numberReady": 1}}
    assert ready_workload("daemonsets", ready)
    assert not ready_workload("daemonsets", {"status": {"desiredNumberScheduled": 0}})


def test_image_names_are_what_kubeadm_asks_for() -> None:
    names = {i.name for i in recipe.component_images(PINS)}
    assert "registry.k8s.io/kube-apiserver:v1.36.3" in names
    assert "registry.k8s.io/kube-proxy:v1.36.3" in names
    assert "registry.k8s.io/etcd:3.6.16-0" in names
    assert "registry.k8s.io/coredns/coredns:v1.14.2" in names
    assert "registry.k8s.io/pause:3.10.2" in names
    assert recipe.TOOLS_IMAGE in names


def test_the_cache_key_covers_pins_and_files() -> None:
    files = {"kind/etc/kubelet": b"a", "brokkr/build.py": b"b"}
    key = recipe.input_digest(PINS, "amd64", files)
    assert key == recipe.input_digest(dict(reversed(PINS.items())), "amd64", dict(files))
    assert key != recipe.input_digest({**PINS, "coredns": "v1.14.3"}, "amd64", files)
    assert key != recipe.input_digest(PINS, "arm64", files)
    assert key != recipe.input_digest(PINS, "amd64", {**files, "brokkr/build.py": b"c"})
    assert recipe.image_tag(PINS, key) == f"{recipe.REPOSITORY}:v1.36.3-{key}"


def test_our_build_files_are_part_of_the_key() -> None:
    names = {p.name for p in build.OUR_BUILD_FILES}
    assert {
        "build.py",
        "recipe.py",
        "assemble.py",
        "default-cni.yaml",
        "default-storage.yaml",
    } <= names


KIND_CONTAINERD = """version = 2
[plugins."io.containerd.grpc.v1.cri"]
  # use fixed sandbox image
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = false
"""


def test_containerd_config_uses_our_pause_and_restricts_oom_scores() -> None:
    text = recipe.containerd_config(KIND_CONTAINERD, "registry.k8s.io/pause:3.10.2")
    assert '  sandbox_image = "registry.k8s.io/pause:3.10.2"\n' in text
    assert "  restrict_oom_score_adj = true\n" in text
    assert "# use fixed sandbox image" in text
    with pytest.raises(ValueError, match="sandbox_image"):
        recipe.containerd_config("version = 2\nrestrict_oom_score_adj = false\n", "p")


def test_manifests_are_valid_yaml_with_placeholders_to_fill() -> None:
    for name, placeholders in (
        ("default-cni.yaml", ["KUBE_ROUTER_IMAGE"]),
        ("default-storage.yaml", ["LOCAL_PATH_IMAGE", "HELPER_IMAGE"]),
    ):
        text = (build.FILES / name).read_text()
        assert all(p in text for p in placeholders)
        assert "{{" not in text  # kind renders these files as Go templates
        assert all(doc["kind"] for doc in yaml.safe_load_all(text))


def test_invalid_cluster_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="invalid cluster name"):
        KindProvider("Bad_Name", base=tmp_path)
