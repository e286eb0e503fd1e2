"""`nox -s e2e-kind`'s logic that needs no cluster: timings, the report, the pytest call."""

from __future__ import annotations

import json

import pytest

from brokkr_dev import e2e_kind


def test_figures_accumulate_in_the_timings_file(tmp_path, monkeypatch):
    target = tmp_path / "deep" / "timings.json"
    monkeypatch.setenv(e2e_kind.TIMINGS_ENV, str(target))
    e2e_kind.record("broker_install_to_ready_s", 31.26)
    e2e_kind.record("agent_install_to_ready_s", 9.04)
    assert json.loads(target.read_text()) == {
        "agent_install_to_ready_s": 9.0,
        "broker_install_to_ready_s": 31.3,
    }


def test_report_lists_phases_with_a_total_then_the_recorded_figures():
    text = e2e_kind.report({"images": 12.0, "tests": 80.5}, {"both_install_to_ready_s": 41.2})
    lines = text.splitlines()
    assert any(line.split() == ["total", "92.5"] for line in lines)
    assert lines.index("recorded by the tests (s)") < next(
        i for i, line in enumerate(lines) if "both_install_to_ready_s" in line
    )


def test_pytest_runs_only_the_kind_tests_and_passes_extra_arguments():
    command = e2e_kind.pytest_command(["-x", "-k", "helm"])
    assert command[1:5] == ["-m", "pytest", "-m", "kind"]
    assert e2e_kind.TEST_PATH in command
    assert command[-3:] == ["-x", "-k", "helm"]


def test_node_arch_reads_the_first_node_and_fails_clearly_without_one():
    class Api:
        def __init__(self, items):
            self.items = items

        def get(self, path):
            assert path == "/api/v1/nodes"
            return {"items": self.items}

    node = {"status": {"nodeInfo": {"architecture": "arm64"}}}
    assert e2e_kind.node_arch(Api([node])) == "arm64"
    with pytest.raises(RuntimeError, match="no node"):
        e2e_kind.node_arch(Api([]))


def test_phases_time_each_step_even_when_it_fails():
    phases = e2e_kind.Phases()
    assert phases.run("quick", lambda: 7) == 7

    def broken():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        phases.run("broken", broken)
    assert list(phases.seconds) == ["quick", "broken"]


def test_the_sessions_image_references_reach_the_tests(tmp_path, monkeypatch):
    refs = tmp_path / "images.json"
    built = e2e_kind.BuiltImages(
        "amd64",
        "localhost/brokkr-broker:sha-1234567-amd64",
        "localhost/brokkr-agent:sha-1234567-amd64",
        e2e_kind.postgres_image.PostgresImage("amd64"),
    )
    built.save(refs)
    monkeypatch.setenv(e2e_kind.IMAGES_ENV, str(refs))
    assert e2e_kind.images_for("amd64") == built
    # Another architecture is not served from the file: it would build (not run here).
    monkeypatch.setattr(e2e_kind, "build_images", lambda arch, log=print: f"build {arch}")
    assert e2e_kind.images_for("arm64") == "build arm64"
