"""`nox -s e2e-kind -- ...` reaches the task unchanged and is parsed once."""

from __future__ import annotations

import pytest

from brokkr_dev.clusters import ClusterError
from brokkr_dev.clusters.e2e_kind import DEFAULT_CLUSTER, parse_arguments, tools_for


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
    with pytest.raises(ClusterError, match="--name needs a value"):
        parse_arguments(["--name"])


def test_flux_controllers_are_built_only_when_a_flux_test_is_selected():
    assert tools_for(["tests/e2e_kind/test_rollout.py::test_x"]) == []
    flux = "tests/e2e_kind/test_flux.py::test_helmrelease_installs_the_broker"
    assert tools_for([flux, "tests/e2e_kind/test_rollout.py::test_x"]) == [
        "source-controller",
        "helm-controller",
    ]
