"""The Kubernetes wrapper module stays at the version of tools.toml."""

from __future__ import annotations

import pytest

from brokkr_dev import paths, toolchain
from brokkr_dev.cluster import pin

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
