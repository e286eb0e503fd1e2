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
    """Records what the session asks of the kind provider (the real one needs an engine
    and a node image); a cluster whose name is in `broken` does not come up."""

    calls: ClassVar[list[str]] = []
    broken: ClassVar[set[str]] = set()

    def __init__(self, name, log=print, kubernetes=None):
        self.name = name
        self.kubernetes = kubernetes
        self.image = None

    def up(self):
        FakeProvider.calls.append(f"up {self.name} on {self.kubernetes}")
        if self.name in FakeProvider.broken:
            raise e2e_kind.ClusterError(f"no kind node image: build of {self.name} failed\nmore")
        self.image = f"node:{self.kubernetes}"

    def down(self):
        FakeProvider.calls.append(f"down {self.name}")
        raise e2e_kind.ClusterError("engine gone")


BUILT = e2e_kind.KindImages(
    "amd64", "localhost/b:1", "localhost/a:1", e2e_kind.postgres_image.PostgresImage("amd64")
)


@pytest.fixture
def fake_session(tmp_path, monkeypatch):
    """The session with its images, provider, engine and pytest replaced; returns the
    pytest calls (command, environment) and the exit status each one gives."""
    monkeypatch.setenv("BROKKR_STATE_DIR", str(tmp_path))
    monkeypatch.setenv(e2e_kind.TIMINGS_ENV, str(tmp_path / "timings.json"))
    monkeypatch.setattr(e2e_kind, "build_images", lambda arch, log=print: BUILT)
    monkeypatch.setattr(e2e_kind, "KindProvider", FakeProvider)
    FakeProvider.calls, FakeProvider.broken = [], set()
    runs: list[tuple[list[str], dict[str, str]]] = []
    codes: dict[str, int] = {}

    def fake_pytest(command, cwd, env=None, check=False, **collect_only):
        class Done:
            returncode = 0
            stdout = "tests/e2e_kind/test_charts_on_kind.py::test_a\n"

        if collect_only:  # the selection step: no Flux test, so no controller is built
            return Done()
        runs.append((command, env))
        e2e_kind.record("both_install_to_ready_s", 42.0, e2e_kind.Path(env[e2e_kind.TIMINGS_ENV]))
        Done.returncode = codes.get(env[e2e_kind.KUBERNETES_ENV], 0)
        return Done()

    @contextlib.contextmanager
    def engine_report(log, keep=None):
        yield

    monkeypatch.setattr(e2e_kind.subprocess, "run", fake_pytest)
    monkeypatch.setattr(e2e_kind, "session_engine", engine_report)
    return runs, codes


def test_the_matrix_runs_every_pinned_minor_oldest_first_on_one_image_build(
    fake_session, monkeypatch
):
    runs, codes = fake_session
    builds = []
    monkeypatch.setattr(e2e_kind, "build_images", lambda arch, log=print: builds.append(1) or BUILT)
    codes["1.36"] = 1
    FakeProvider.broken = {"m-1-35"}
    lines: list[str] = []
    arguments = e2e_kind.matrix_arguments(["--name", "m", "-x"])
    outcomes = e2e_kind.run_matrix(arguments.pytest, name=arguments.name, log=lines.append)
    assert builds == [1]
    assert FakeProvider.calls == [
        "up m-1-35 on 1.35",
        "down m-1-35",
        "up m-1-36 on 1.36",
        "down m-1-36",
        "up m-1-37 on 1.37",
        "down m-1-37",
    ]
    # 1.35's cluster did not come up, so pytest ran on 1.36 and 1.37 only.
    assert [env[e2e_kind.KUBERNETES_ENV] for _, env in runs] == ["1.36", "1.37"]
    assert [env[e2e_kind.CLUSTER_ENV] for _, env in runs] == ["m-1-36", "m-1-37"]
    assert all(command[-3:] == ["-k", e2e_kind.MATRIX_TESTS, "-x"] for command, _ in runs)
    assert [(o.kubernetes, o.code) for o in outcomes] == [("1.35", 1), ("1.36", 1), ("1.37", 0)]
    assert outcomes[0].problem == "no kind node image: build of m-1-35 failed"
    assert not e2e_kind.matrix_passed(outcomes)
    table = lines[-1].splitlines()
    assert table[1].startswith("e2e-kind matrix: chart install, quick start, upgrade")
    rows = [line.split() for line in table if line.startswith("  1.")]
    assert [row[:3] for row in rows] == [
        ["1.35", "v1.35.4", "FAILED"],
        ["1.36", "v1.36.3", "FAILED"],
        ["1.37", "v1.37.2", "passed"],
    ]
    assert rows[0][4:] == ["-", "(no", "kind", "node", "image:", "build", "of", "m-1-35", "failed)"]
    assert rows[2][-1] == "node:1.37"


def test_the_matrix_refuses_one_minor_or_keep_and_says_what_to_run():
    for argv in (["--kubernetes", "1.35"], ["--keep"]):
        with pytest.raises(e2e_kind.ClusterError, match="--kubernetes 1.NN --keep`"):
            e2e_kind.matrix_arguments(argv)
    parsed = e2e_kind.matrix_arguments(["-x"])
    assert parsed.pytest == ("-k", e2e_kind.MATRIX_TESTS, "-x")


def test_the_session_runs_the_tests_on_its_cluster_and_always_deletes_it(tmp_path, fake_session):
    runs, codes = fake_session
    codes["1.37"] = 1
    lines = []
    assert e2e_kind.run(["-x"], name="t1", log=lines.append) == 1
    assert FakeProvider.calls == ["up t1-1-37 on 1.37", "down t1-1-37"]
    ((command, seen),) = runs
    assert command[-1] == "-x"
    assert seen[e2e_kind.CLUSTER_ENV] == "t1-1-37" and seen[e2e_kind.KUBERNETES_ENV] == "1.37"
    assert e2e_kind.KindImages.load(e2e_kind.Path(seen[e2e_kind.IMAGES_ENV])) == BUILT
    assert any("could not delete kind cluster t1-1-37: engine gone" in line for line in lines)
    assert "e2e-kind timings (s), Kubernetes v1.37.2" in lines[-1]
    assert "both_install_to_ready_s" in lines[-1]


def test_the_session_runs_the_minor_asked_for(fake_session):
    runs, _ = fake_session
    arguments = e2e_kind.parse_arguments(["--kubernetes", "v1.35"])
    assert e2e_kind.run([], name="e2e", kubernetes=arguments.kubernetes, log=lambda _: None) == 0
    assert FakeProvider.calls == ["up e2e-1-35 on 1.35", "down e2e-1-35"]
    assert runs[0][1][e2e_kind.KUBERNETES_ENV] == "1.35"


def test_the_matrix_selects_the_install_quick_start_and_upgrade_tests_only():
    selected = e2e_kind.selected_tests(["-k", e2e_kind.MATRIX_TESTS])
    files = {test.split("::")[0].rsplit("/", 1)[-1] for test in selected}
    assert files == {"test_charts_on_kind.py", "test_guides_on_kind.py", "test_upgrade.py"}
    names = {test.split("::")[1] for test in selected}
    assert "test_quick_start_runs_word_for_word_on_kind" in names
    assert "test_helm_test_passes[broker]" in names
    assert "test_raw_manifests_run_word_for_word_on_kind" not in names
    assert {
        "test_upgrade_from_the_previous_release_keeps_data_pak_and_reconciling",
        "test_rollback_brings_the_previous_release_back_with_its_data",
    } <= names
