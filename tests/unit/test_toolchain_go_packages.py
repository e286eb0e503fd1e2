"""A manifest entry that builds several binaries from one wrapper module (go_packages)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from brokkr_dev.base import toolchain
from brokkr_dev.base.commands import CommandError

TOOL = toolchain.Tool(
    name="kube",
    version="v1.36.3",
    binary="kube-apiserver",
    version_args=("--version",),
    go_dir="go/kubernetes",
    go_packages=("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"),
    go_ldflags="-X v.gitVersion={version} -X v.gitMajor={major} -X v.gitMinor={minor}",
)


def fake_binary(path: Path, version: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'Kubernetes {version}'\n")
    path.chmod(0o755)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BROKKR_CACHE_DIR", str(tmp_path / "cache"))
    # Keep installed tools (bin/ is on PATH inside nox sessions) out of the lookup.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return tmp_path / "cache" / "tools" / "kube" / "v1.36.3" / "bin"


def test_companions_are_named_after_their_packages() -> None:
    assert TOOL.companions == ("kubectl",)


def test_major_and_minor_expand_from_the_version() -> None:
    assert TOOL.expand(TOOL.go_ldflags) == (
        "-X v.gitVersion=v1.36.3 -X v.gitMajor=1 -X v.gitMinor=36"
    )


def test_cached_build_links_every_binary_without_building(tmp_path, cache) -> None:
    fake_binary(cache / "kube-apiserver", "v1.36.3")
    fake_binary(cache / "kubectl", "v1.36.3")
    bin_dir = tmp_path / "bin"
    link = toolchain.ensure(TOOL, bin_dir=bin_dir, log=lambda _: None, go="/nonexistent/go")
    assert link.resolve() == (cache / "kube-apiserver").resolve()
    assert (bin_dir / "kubectl").resolve() == (cache / "kubectl").resolve()


def test_a_cache_missing_a_companion_is_rebuilt(tmp_path, cache) -> None:
    fake_binary(cache / "kube-apiserver", "v1.36.3")  # kubectl missing
    # /bin/false stands in for go: the attempted command shows one build of both packages.
    pattern = (
        r"false build .* -o \S+/bin/ "
        r"k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl`"
    )
    with pytest.raises(CommandError, match=pattern):
        toolchain.ensure(TOOL, bin_dir=tmp_path / "bin", log=lambda _: None, go="/bin/false")


UNLINKED = dataclasses.replace(TOOL, bin_link=False)


def test_an_unlinked_tool_is_used_from_its_cache_and_bin_is_left_alone(tmp_path, cache) -> None:
    fake_binary(cache / "kube-apiserver", "v1.36.3")
    fake_binary(cache / "kubectl", "v1.36.3")
    bin_dir = tmp_path / "bin"
    fake_binary(bin_dir / "kubectl", "v1.35.4")  # another entry's kubectl stays linked
    found = toolchain.ensure(UNLINKED, bin_dir=bin_dir, log=lambda _: None, go="/nonexistent/go")
    assert found == cache / "kube-apiserver"
    assert sorted(p.name for p in bin_dir.iterdir()) == ["kubectl"]
    assert "v1.35.4" in (bin_dir / "kubectl").read_text()
    status = toolchain.status(UNLINKED, bin_dir=bin_dir)
    assert (status.status, status.path) == ("ok", cache / "kube-apiserver")


def test_an_unlinked_tool_missing_from_its_cache_is_built_there(tmp_path, cache) -> None:
    bin_dir = tmp_path / "bin"
    fake_binary(bin_dir / "kube-apiserver", "v1.36.3")  # the right version in bin/ is not used
    fake_binary(bin_dir / "kubectl", "v1.36.3")
    assert toolchain.status(UNLINKED, bin_dir=bin_dir).status == "missing"
    with pytest.raises(CommandError, match=rf"false build .* -o {cache}/ "):
        toolchain.ensure(UNLINKED, bin_dir=bin_dir, log=lambda _: None, go="/bin/false")


def test_a_cached_build_of_another_version_is_refused_with_the_fix(tmp_path, cache) -> None:
    fake_binary(cache / "kube-apiserver", "v1.36.2")
    fake_binary(cache / "kubectl", "v1.36.2")
    assert toolchain.status(UNLINKED, bin_dir=tmp_path / "bin").status == "wrong version"
    with pytest.raises(
        toolchain.ToolError, match="reports version '1.36.2', expected v1.36.3; delete"
    ):
        toolchain.ensure(UNLINKED, bin_dir=tmp_path / "bin", log=lambda _: None, go="/bin/false")


def test_on_demand_tools_are_left_out_of_install_all() -> None:
    manifest = toolchain.load_manifest()
    everything = {tool.name for tool in toolchain.select(manifest, [])}
    assert not [name for name in everything if name.startswith("kubernetes-node-")]
    assert "helm" in everything
    named = toolchain.select(manifest, ["kubernetes-node-1.37"])
    assert [t.name for t in named] == ["kubernetes-node-1.37"]
