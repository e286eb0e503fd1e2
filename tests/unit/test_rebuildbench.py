"""The rebuild benchmark's verdict against the 30 s goal."""

from __future__ import annotations

import pytest

from brokkr_dev.bench import rebuild as rebuildbench
from brokkr_dev.containers import images
from brokkr_dev.containers.podman import ContainerError


def _figures(totals: list[float]) -> rebuildbench.RebuildFigures:
    figures = rebuildbench.RebuildFigures("podman", "overlay podman storage", "amd64")
    figures.totals = totals
    figures.per_target = {"broker": [t * 0.6 for t in totals], "agent": [t * 0.4 for t in totals]}
    return figures


def test_the_median_decides_and_the_range_is_shown():
    summary = _figures([17.3, 17.7, 40.0]).summary()
    assert "median 17.7 s" in summary and "17.3-40.0 s over 3 runs" in summary
    assert "meets the 30 s goal" in summary


def test_a_median_at_the_goal_misses_it():
    assert "misses the 30 s goal" in _figures([30.0, 30.0, 55.0]).summary()


def test_no_runs_is_refused():
    with pytest.raises(ContainerError, match="at least 1"):
        rebuildbench.run(runs=0)


def test_the_benchmark_never_tags_the_checked_out_commit():
    # Its images are untagged afterwards: with the commit's own sha tag that would
    # take the tag from a real build of the same commit in a shared store.
    real = images.read_build_info()
    info = rebuildbench.bench_info(real)
    assert info.arch_tags("amd64") == ["sha-bebebeb-amd64", "rebuild-bench-amd64"]
    assert images.sha_tag(real.revision) not in info.tags
