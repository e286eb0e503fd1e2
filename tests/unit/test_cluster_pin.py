"""The Kubernetes wrapper module stays at the version of tools.toml."""

from __future__ import annotations

import pytest

from brokkr_dev.base import paths, toolchain
from brokkr_dev.clusters import pin

UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tgithub.com/x/y v1.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/sample-cli-plugin => ./staging/src/k8s.io/sample-cli-plugin
)
"""


def test_staging_modules_are_those_replaced_and_required() -> None:
    assert pin.staging_modules(UPSTREAM) == ["k8s.io/api", "k8s.io/client-go"]


def test_rendered_go_mod_replaces_staging_with_their_release() -> None:
    text = pin.render("v1.36.3", UPSTREAM)
    assert "require k8s.io/kubernetes v1.36.3\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in text
    assert "sample-cli-plugin" not in text
    assert pin.pinned_version(text) == "v1.36.3"


@pytest.mark.parametrize("version", ["1.36.3", "v2.0.0", "v1.36"])
def test_a_malformed_version_is_refused(version: str) -> None:
    with pytest.raises(pin.PinError, match=r"must look like v1\.Y\.Z"):
        pin.staging_version(version)


def test_wrapper_go_mod_matches_the_manifest() -> None:
    manifest = toolchain.load_manifest()
    go_mod = (paths.REPO_ROOT / "go" / "kubernetes" / "go.mod").read_text()
    assert pin.pinned_version(go_mod) == manifest["kubernetes"].version, (
        "tools.toml [kubernetes].version and go/kubernetes/go.mod differ: run `invoke cluster.pin`"
    )


def test_kubernetes_entry_builds_all_four_binaries_with_the_version_stamped() -> None:
    tool = toolchain.load_manifest()["kubernetes"]
    assert tool.binary == "kube-apiserver"
    assert set(tool.companions) == {"kube-controller-manager", "kube-scheduler", "kubectl"}
    ldflags = tool.expand(tool.go_ldflags)
    assert f"k8s.io/component-base/version.gitVersion={tool.version}" in ldflags
    major, minor = tool.version.lstrip("v").split(".")[:2]
    assert f"k8s.io/component-base/version.gitMinor={minor}" in ldflags
    assert f"k8s.io/client-go/pkg/version.gitMajor={major}" in ldflags


def test_node_binaries_share_the_wrapper_version_and_stamps() -> None:
    manifest = toolchain.load_manifest()
    node, control_plane = manifest["kubernetes-node"], manifest["kubernetes"]
    assert node.version == control_plane.version, (
        "tools.toml [kubernetes-node].version must equal [kubernetes].version"
    )
    assert node.go_dir == control_plane.go_dir
    assert node.go_ldflags == control_plane.go_ldflags
    assert {node.binary, *node.companions} == {
        "kubelet",
        "kubeadm",
        "kube-proxy",
        *(p.rsplit("/", 1)[-1] for p in control_plane.go_packages),
    }
    imports = (paths.REPO_ROOT / "go" / "kubernetes" / "tools.go").read_text()
    for package in (*node.go_packages, *control_plane.go_packages):
        assert f'_ "{package}"' in imports, f"add {package} to go/kubernetes/tools.go"
