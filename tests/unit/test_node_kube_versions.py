"""Which node Kubernetes `--kubernetes 1.NN` picks, from tools.toml's entries per minor."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from brokkr_dev.base import toolchain
from brokkr_dev.charts import lint as charts
from brokkr_dev.containers.nodeimage import kube_versions
from brokkr_dev.containers.nodeimage.kube_versions import NodeVersionError

NODE = toolchain.Tool(name="", version="", binary="kubelet", version_args=("--version",))


def manifest(**pins: str) -> dict[str, toolchain.Tool]:
    """Entries `kubernetes-node-1.NN` (keyword 1_NN) and one unrelated tool."""
    entries = {"kind": dataclasses.replace(NODE, name="kind", version="v0.33.0")}
    for key, version in pins.items():
        name = "kubernetes-node-" + key.removeprefix("m").replace("_", ".")
        entries[name] = dataclasses.replace(NODE, name=name, version=version)
    return entries


# Deliberately out of order: 1.9 < 1.10 numerically, not as text.
PINS = manifest(m1_10="v1.10.2", m1_9="v1.9.11", m1_11="v1.11.0")


def test_pinned_minors_are_sorted_by_number_oldest_first():
    assert [(n.minor, n.version) for n in kube_versions.pinned(PINS)] == [
        ("1.9", "v1.9.11"),
        ("1.10", "v1.10.2"),
        ("1.11", "v1.11.0"),
    ]
    assert kube_versions.newest(PINS).minor == "1.11"


@pytest.mark.parametrize(
    ("asked", "minor"),
    [
        (None, "1.11"),
        ("", "1.11"),
        ("newest", "1.11"),
        ("oldest", "1.9"),
        ("1.9", "1.9"),
        ("v1.10", "1.10"),
        ("v1.10.2", "1.10"),
    ],
)
def test_a_minor_or_its_exact_pinned_release_is_chosen(asked, minor):
    assert kube_versions.choose(asked, PINS).minor == minor


@pytest.mark.parametrize("asked", ["1.8", "1.10.1", "1.10.2.1", "latest", "v2.10"])
def test_anything_else_names_every_choice_and_the_fix(asked):
    with pytest.raises(NodeVersionError) as error:
        kube_versions.choose(asked, PINS)
    message = str(error.value)
    assert f"Kubernetes {asked!r} is not pinned for the kind node" in message
    assert (
        "choose one of: 1.9 (v1.9.11), 1.10 (v1.10.2), 1.11 (v1.11.0), oldest or newest" in message
    )
    assert "`--kubernetes 1.11`" in message and "invoke cluster.pin" in message


def test_an_entry_named_for_another_minor_is_refused():
    with pytest.raises(NodeVersionError, match=r"\[kubernetes-node-1.9\] pins v1.10.0"):
        kube_versions.pinned(manifest(m1_9="v1.10.0"))
    with pytest.raises(NodeVersionError, match=r"\[kubernetes-node-1.x\] pins"):
        kube_versions.pinned(manifest(m1_x="v1.10.0"))


def test_no_entry_at_all_says_what_to_add():
    with pytest.raises(NodeVersionError, match=r"add an entry \[kubernetes-node-1.NN\]"):
        kube_versions.pinned(manifest())


def test_the_slug_fits_a_cluster_name():
    assert kube_versions.choose("1.10", PINS).slug == "1-10"


def test_tools_toml_pins_the_minors_upstream_supports_newest_by_default():
    pinned = kube_versions.pinned()
    assert [n.minor for n in pinned] == ["1.35", "1.36", "1.37"]
    assert kube_versions.choose(None).version == "v1.37.2"


def test_the_charts_claim_exactly_the_minors_e2e_kind_proves():
    """Chart.yaml's kubeVersion floor is the oldest pinned node minor, and kubeconform
    checks every pinned minor (docs/e2e.md, "Kubernetes versions")."""
    minors = [n.minor for n in kube_versions.pinned()]
    assert [kube_versions.minor_of(v) for v in charts.KUBE_VERSIONS] == minors
    for chart in charts.find_charts():
        claim = yaml.safe_load((chart.path / "Chart.yaml").read_text())["kubeVersion"]
        assert claim == f">={minors[0]}.0-0", f"{chart.name}: kubeVersion {claim}"
        readme = (chart.path / "README.md").read_text()
        assert f"Needs Kubernetes {minors[0]} or newer" in readme, chart.name
