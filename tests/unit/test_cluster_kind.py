"""The kind provider's and node image's pure decisions."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from brokkr_dev.clusters import ClusterError, KindProvider, noderegistries
from brokkr_dev.clusters.kind import kind_config, ready_workload
from brokkr_dev.containers.nodeimage import build, kube_versions, published, recipe
from brokkr_dev.containers.nodeimage.kube_versions import NodeVersionError

PINS = {
    "kubernetes-node": "v1.36.3",
    "etcd": "v3.6.16",
    "coredns": "v1.14.2",
    "pause": "v3.10.2",
    "kube-router": "v2.1.0",
    "local-path-provisioner": "v0.0.30",
    "kind": "v0.33.0",
}


def test_kind_config_patches_kubelet_etcd_and_coredns() -> None:
    config = yaml.safe_load(kind_config("3.6.16-0", "v1.14.2"))
    assert config["kind"] == "Cluster"
    assert [n["role"] for n in config["nodes"]] == ["control-plane"]
    patches = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"]]
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches
    assert {
        "kind": "ClusterConfiguration",
        "etcd": {"local": {"imageTag": "3.6.16-0"}},
        "dns": {"imageTag": "v1.14.2"},
    } in patches
    published = yaml.safe_load(kind_config(None))
    assert len(published["kubeadmConfigPatches"]) == 1


def test_every_cluster_tells_containerd_to_read_per_registry_hosts_files() -> None:
    """Without it a node cannot pull from a plain-HTTP mirror (test_airgapped_on_kind)."""
    for config in (kind_config("3.6.16-0", "v1.14.2", workers=1), kind_config(None)):
        (patch,) = yaml.safe_load(config)["containerdConfigPatches"]
        registry = tomllib.loads(patch)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
        assert registry == {"config_path": noderegistries.HOSTS_DIR}


def test_workers_are_nodes_of_their_own_and_refused_below_zero() -> None:
    config = yaml.safe_load(kind_config("3.6.16-0", "v1.14.2", workers=2))
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    assert len(config["kubeadmConfigPatches"]) == 2  # the same patches for every node
    with pytest.raises(ClusterError, match="workers must be 0 or more"):
        KindProvider("x", workers=-1)


def test_our_node_tells_kubeadm_the_etcd_and_coredns_tags_it_carries() -> None:
    names = {i.name for i in recipe.component_images(PINS)}
    assert f"registry.k8s.io/etcd:{recipe.etcd_image_tag(PINS)}" in names
    assert f"registry.k8s.io/coredns/coredns:{recipe.coredns_image_tag(PINS)}" in names


def test_each_node_minor_has_its_own_pins_image_tag_and_key() -> None:
    files = {"brokkr/build.py": b"b"}
    tags = set()
    for node in kube_versions.pinned():
        pins = build.pins(kubernetes=node)
        assert pins[recipe.KUBERNETES] == node.version
        assert {i.name for i in recipe.component_images(pins)} >= {
            f"registry.k8s.io/kube-apiserver:{node.version}",
            f"registry.k8s.io/kube-proxy:{node.version}",
        }
        tags.add(recipe.image_tag(pins, recipe.input_digest(pins, "amd64", files)))
    assert len(tags) == len(kube_versions.pinned())
    assert build.pins() == build.pins(kubernetes=kube_versions.newest())


class NoEngine:
    """An engine that must not be asked anything."""

    def docker(self, *args, **kwargs):
        raise AssertionError(f"the engine was asked: docker {' '.join(args)}")


def test_another_minor_than_kinds_own_image_goes_to_our_image_without_a_pull() -> None:
    oldest = kube_versions.pinned()[0]
    assert kube_versions.minor_of(published.tag()) != oldest.minor
    lines: list[str] = []
    entered = []

    def build_path(engine, log, arch):
        entered.append(arch)
        return "brokkr.local/kind-node:stand-in"

    chosen = build.ensure_node_image(
        NoEngine(), lines.append, arch="amd64", fallback=build_path, kubernetes=oldest
    )
    assert chosen == "brokkr.local/kind-node:stand-in" and entered == ["amd64"]
    assert lines == [
        f"node image: kind {published.KIND_VERSION}'s own is Kubernetes {published.tag()}, "
        f"not {oldest.minor}: using our own node image ({oldest.version})"
    ]


def test_a_new_saved_image_replaces_only_its_own_minor_and_architecture(tmp_path) -> None:
    names = [
        "node-v1.35.4-amd64-aaaa.tar",
        "node-v1.35.3-amd64-bbbb.tar",
        "node-v1.35.4-arm64-cccc.tar",
        "node-v1.36.3-amd64-dddd.tar",
        "node-v1.3.9-amd64-eeee.tar",
    ]
    for name in names:
        (tmp_path / name).write_text("")
    saved = tmp_path / "node-v1.35.4-amd64-ffff.tar"
    old = build.superseded(saved, "v1.35.4", "amd64")
    assert [p.name for p in old] == ["node-v1.35.3-amd64-bbbb.tar", "node-v1.35.4-amd64-aaaa.tar"]


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


def test_the_provider_runs_the_minor_asked_for_and_refuses_an_unpinned_one(tmp_path) -> None:
    assert KindProvider("a", base=tmp_path).kubernetes == kube_versions.newest()
    assert KindProvider("a", base=tmp_path, kubernetes="1.35").kubernetes.version == "v1.35.4"
    with pytest.raises(NodeVersionError, match="choose one of: 1.35 "):
        KindProvider("a", base=tmp_path, kubernetes="1.29")


def test_a_running_cluster_of_another_minor_is_not_reused(tmp_path) -> None:
    provider = KindProvider("old", base=tmp_path, kubernetes="1.35")
    provider.check_minor("v1.35.4")
    provider.check_minor(None)  # the version could not be read: the name decides
    with pytest.raises(ClusterError, match=r"kind cluster old runs Kubernetes v1.37.2, not 1.35"):
        provider.check_minor("v1.37.2")
