"""`nox -s e2e-kind`'s logic that needs no cluster: timings, the report, the pytest call."""

from __future__ import annotations

import contextlib
import json
from typing import ClassVar

import pytest

from brokkr_dev.clusters import e2e_kind


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
    assert lines.index(e2e_kind.RECORDED_HEADER) < next(
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
    built = e2e_kind.KindImages(
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


class FakeProvider:
    """Records what the session asks of the kind provider."""

    calls: ClassVar[list[str]] = []

    def __init__(self, name, log=print):
        self.name = name

    def up(self):
        FakeProvider.calls.append(f"up {self.name}")

    def down(self):
        FakeProvider.calls.append(f"down {self.name}")
        raise e2e_kind.ClusterError("engine gone")


def test_the_session_runs_the_tests_on_its_cluster_and_always_deletes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BROKKR_STATE_DIR", str(tmp_path))
    monkeypatch.setenv(e2e_kind.TIMINGS_ENV, str(tmp_path / "timings.json"))
    built = e2e_kind.KindImages(
        "amd64", "localhost/b:1", "localhost/a:1", e2e_kind.postgres_image.PostgresImage("amd64")
    )
    monkeypatch.setattr(e2e_kind, "build_images", lambda arch, log=print: built)
    monkeypatch.setattr(e2e_kind, "KindProvider", FakeProvider)
    FakeProvider.calls = []
    seen = {}

    def fake_pytest(command, cwd, env=None, check=False, **collect_only):
        class Done:
            returncode = 1
            stdout = "tests/e2e_kind/test_charts_on_kind.py::test_a\n"

        if collect_only:  # the selection step: no Flux test, so no controller is built
            assert "--collect-only" in command
            return Done()
        seen.update(env)
        e2e_kind.record("both_install_to_ready_s", 42.0, tmp_path / "timings.json")
        return Done()

    @contextlib.contextmanager
    def engine_report(log, keep=None):
        yield
        log("engine: reported")

    monkeypatch.setattr(e2e_kind.subprocess, "run", fake_pytest)
    monkeypatch.setattr(e2e_kind, "session_engine", engine_report)
    lines = []
    assert e2e_kind.run(["-x"], name="t1", log=lines.append) == 1
    assert FakeProvider.calls == ["up t1", "down t1"]
    assert seen[e2e_kind.CLUSTER_ENV] == "t1"
    assert e2e_kind.KindImages.load(e2e_kind.Path(seen[e2e_kind.IMAGES_ENV])) == built
    assert any("could not delete kind cluster t1: engine gone" in line for line in lines)
    assert "both_install_to_ready_s" in lines[-2]
    assert lines[-1] == "engine: reported"  # which engine, and whether it still runs
