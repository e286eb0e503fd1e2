"""`nox -s e2e-kind -- ...` reaches the task unchanged and is parsed once."""

from __future__ import annotations

import pytest

from brokkr_dev.clusters import ClusterError
from brokkr_dev.clusters.e2e_kind import (
    DEFAULT_CLUSTER,
    cluster_name,
    parse_arguments,
    tools_for,
)
from brokkr_dev.containers.nodeimage.kube_versions import NodeVersionError, choose


def test_our_options_are_taken_and_the_rest_goes_to_pytest_in_order():
    parsed = parse_arguments(["-x", "--name", "raw", "-k", "quick_start or raw", "--keep"])
    assert parsed.name == "raw" and parsed.keep
    assert parsed.pytest == ("-x", "-k", "quick_start or raw")


def test_after_a_double_dash_everything_is_pytests_even_our_option_names():
    parsed = parse_arguments(["--name=a", "--", "--keep", "-k", "flux"])
    assert parsed.name == "a" and not parsed.keep
    assert parsed.pytest == ("--keep", "-k", "flux")


def test_defaults_and_a_missing_value():
    assert parse_arguments([]).name == DEFAULT_CLUSTER
    assert parse_arguments([]).kubernetes is None  # the newest pinned minor
    with pytest.raises(ClusterError, match="--name needs a value"):
        parse_arguments(["--name"])
    with pytest.raises(ClusterError, match=r"`nox -s e2e-kind -- --kubernetes 1.NN`"):
        parse_arguments(["-x", "--kubernetes"])


@pytest.mark.parametrize("given", [["--kubernetes", "1.35"], ["--kubernetes=v1.35"]])
def test_kubernetes_picks_a_pinned_minor(given):
    parsed = parse_arguments([*given, "-k", "helm"])
    assert parsed.kubernetes == "1.35" and parsed.pytest == ("-k", "helm")


def test_an_unpinned_kubernetes_is_refused_naming_the_pinned_ones():
    with pytest.raises(NodeVersionError, match=r"Kubernetes '1.29' is not pinned") as error:
        parse_arguments(["--kubernetes", "1.29"])
    assert "choose one of: 1.35 (v1.35.4), 1.36 (v1.36.3), 1.37 (v1.37.2)," in str(error.value)
    assert parse_arguments(["--kubernetes", "oldest"]).kubernetes == "1.35"


def test_a_cluster_name_carries_the_minor():
    assert cluster_name("e2e", choose("1.35")) == "e2e-1-35"


def test_flux_controllers_are_built_only_when_a_flux_test_is_selected():
    assert tools_for(["tests/e2e_kind/test_rollout.py::test_x"]) == []
    flux = "tests/e2e_kind/test_flux.py::test_helmrelease_installs_the_broker"
    assert tools_for([flux, "tests/e2e_kind/test_rollout.py::test_x"]) == [
        "source-controller",
        "helm-controller",
        "cosign",  # the Flux test signs the charts it publishes
    ]


def test_cosign_is_installed_when_an_upgrade_test_is_selected():
    upgrade = "tests/e2e_kind/test_upgrade.py::test_upgrade_from_the_previous_release"
    assert tools_for([upgrade]) == ["cosign"]
    assert "cosign" not in tools_for(["tests/e2e_kind/test_charts_on_kind.py::test_x"])


def test_helm4_is_installed_when_the_helm4_test_is_selected():
    helm4 = "tests/e2e_kind/test_helm4.py::test_helm4_installs_upgrades_and_uninstalls_both_charts"
    assert tools_for([helm4]) == ["helm4"]


def test_the_air_gapped_guide_gets_cosign_syft_and_oras_once_beside_an_upgrade_test():
    airgap = "tests/e2e_kind/test_airgapped_on_kind.py::test_air_gapped_guide_installs"
    upgrade = "tests/e2e_kind/test_upgrade.py::test_upgrade_from_the_previous_release"
    assert tools_for([airgap]) == ["cosign", "syft", "oras"]
    assert tools_for([upgrade, airgap]) == ["cosign", "syft", "oras"]
