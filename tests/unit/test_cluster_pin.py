"""Each Kubernetes wrapper module stays at the version of its tools.toml entry."""

from __future__ import annotations

import dataclasses

import pytest

from brokkr_dev.base import toolchain
from brokkr_dev.clusters import pin
from brokkr_dev.containers.nodeimage import kube_versions

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


def wrapper_files(wrapper: pin.Wrapper) -> tuple[str, str]:
    return (wrapper.directory / "go.mod").read_text(), (wrapper.directory / "tools.go").read_text()


def test_every_wrapper_go_mod_matches_its_manifest_entry() -> None:
    manifest = toolchain.load_manifest()
    wrappers = pin.wrappers(manifest)
    assert {w.entry for w in wrappers} >= {"kubernetes", "kubernetes-node-1.37"}
    for wrapper in wrappers:
        go_mod, tools_go = wrapper_files(wrapper)
        fix = f"tools.toml [{wrapper.entry}] and {wrapper.go_dir} differ: run `invoke cluster.pin`"
        assert pin.pinned_version(go_mod) == wrapper.version, fix
        assert pin.module_name(go_mod) == wrapper.module, fix
        assert go_mod.startswith(pin.header(wrapper.entry) + "\n"), fix
        assert tools_go == pin.render_tools_go(pin.commands(manifest)), fix
        assert (wrapper.directory / "go.sum").stat().st_size > 0, fix


def test_two_entries_building_in_one_wrapper_are_refused() -> None:
    manifest = toolchain.load_manifest()
    shared = dataclasses.replace(manifest["kubernetes-node-1.37"], name="kubernetes-node-1.38")
    shared = dataclasses.replace(shared, go_dir=manifest["kubernetes"].go_dir)
    with pytest.raises(pin.PinError, match=r"\[kubernetes\] and \[kubernetes-node-1.38\] both"):
        pin.wrappers({**manifest, shared.name: shared})


def test_tools_go_imports_every_command_sorted() -> None:
    text = pin.render_tools_go(["k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kubeadm"])
    assert text.startswith("//go:build tools\n\n")
    assert (
        'import (\n\t_ "k8s.io/kubernetes/cmd/kubeadm"\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n)\n'
        in text
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


def test_every_node_minor_builds_the_same_binaries_with_the_same_stamps() -> None:
    manifest = toolchain.load_manifest()
    control_plane = manifest["kubernetes"]
    nodes = kube_versions.pinned(manifest)
    assert len(nodes) >= 2
    for node in nodes:
        tool = node.tool
        assert tool.go_ldflags == control_plane.go_ldflags, tool.name
        assert tool.go_dir == f"go/{tool.name}", tool.name
        assert (tool.binary, tool.on_demand, tool.bin_link, tool.role) == (
            "kubelet",
            True,
            False,
            "test",
        ), tool.name
        assert {tool.binary, *tool.companions} == {
            "kubelet",
            "kubeadm",
            "kube-proxy",
            *(p.rsplit("/", 1)[-1] for p in control_plane.go_packages),
        }, tool.name


def test_the_local_control_plane_runs_a_minor_that_the_kind_node_proves() -> None:
    manifest = toolchain.load_manifest()
    minors = [node.minor for node in kube_versions.pinned(manifest)]
    assert kube_versions.minor_of(manifest["kubernetes"].version) in minors, (
        "tools.toml [kubernetes] must be one of the node minors e2e-kind proves"
    )
