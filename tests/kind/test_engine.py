"""Our own dockerd, started and stopped for real beside the machine's engine.

The test engine has its own data root, run directory and socket and no default
bridge, so it never disturbs the machine-wide engine that kind clusters use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokkr_dev.base import toolchain
from brokkr_dev.containers.engine import EngineLayout, daemon, host, leases

pytestmark = pytest.mark.kind


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[EngineLayout]:
    if os.geteuid() != 0:
        pytest.fail("starting dockerd needs root; run the `kind` tests as root")
    # Under /run: containerd's sockets live below the exec root, and a socket path
    # longer than 108 bytes (as pytest's tmp_path can be) is refused.
    run_dir = Path(tempfile.mkdtemp(prefix="brokkr-engine-test-", dir="/run"))
    yield EngineLayout(data_root=tmp_path / "engine", run_dir=run_dir, default_bridge=False)
    daemon.stop_engine(layout=EngineLayout(tmp_path / "engine", run_dir, default_bridge=False))
    shutil.rmtree(run_dir, ignore_errors=True)


def _pause_image_tar(tmp_path: Path) -> Path:
    pause = toolchain.ensure(toolchain.load_manifest()["pause"], log=lambda _: None)
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(pause.resolve(), arcname="pause")
    return archive


def test_engine_starts_runs_privileged_containers_and_stops(
    layout: EngineLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = daemon.start_engine(print, layout)
    assert engine.ours
    assert engine.pid == daemon.running_pid(layout)
    assert engine.pid is not None

    # Idempotent: asked again, it finds the same dockerd instead of starting one.
    monkeypatch.setenv("DOCKER_HOST", layout.host)
    again = daemon.ensure_engine(print, layout)
    assert (again.host, again.pid, again.ours) == (layout.host, engine.pid, True)

    # A privileged container is what kind's nodes are; on hosts without
    # CAP_SYS_RESOURCE it runs only through the runc wrapper.
    engine.docker("import", str(_pause_image_tar(tmp_path)), "brokkr-test/pause:engine")
    output = engine.docker(
        "run",
        "--rm",
        "--privileged",
        "--network",
        "none",
        "brokkr-test/pause:engine",
        "/pause",
        "--version",
    )
    assert output.strip().startswith("pause v")
    if host.host_missing_capabilities():
        assert layout.runtime_wrapper.exists()
        info = engine.docker("info", "--format", "{{.DefaultRuntime}}")
        assert info.strip() == "brokkr-runc"

    assert daemon.stop_engine(print, layout)
    assert daemon.running_pid(layout) is None
    assert not Path(f"/proc/{engine.pid}").exists()
    assert daemon.answers(layout.host) is None
    # The data root stays: images survive a restart.
    assert (layout.docker_root / "image").is_dir()


def test_stop_leaves_an_engine_that_is_not_ours_alone(layout: EngineLayout) -> None:
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    # A pidfile that points at a process that is not our dockerd (this test).
    layout.pidfile.write_text(f"{os.getpid()}\n")
    assert daemon.running_pid(layout) is None
    assert not daemon.stop_engine(print, layout)
    assert Path(f"/proc/{os.getpid()}").exists()


def test_the_last_session_out_stops_the_engine_a_session_started(
    layout: EngineLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKKR_ENGINE_DATA_ROOT", str(layout.data_root))
    monkeypatch.setenv("BROKKR_ENGINE_RUN_DIR", str(layout.run_dir))
    lines: list[str] = []
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with daemon.session_engine(lines.append, keep=False):
            engine = daemon.start_engine(print, layout)
            # A second session starts while this one runs, and outlives it.
            assert leases.take(layout.run_dir, pid=other.pid) is not None
        assert daemon.running_pid(layout) == engine.pid, lines
        assert "still used by the session(s) with pid" in lines[-1]
        assert leases.handover_mark(layout.run_dir).exists()
    finally:
        other.kill()
        other.wait()
    # The second session ends: the engine was there before it, but handed over.
    with daemon.session_engine(lines.append, keep=False):
        pass
    assert daemon.running_pid(layout) is None, lines
    assert not leases.handover_mark(layout.run_dir).exists()


def test_an_engine_started_outside_sessions_outlives_them(layout: EngineLayout) -> None:
    engine = daemon.start_engine(print, layout)
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BROKKR_ENGINE_DATA_ROOT", str(layout.data_root))
        env.setenv("BROKKR_ENGINE_RUN_DIR", str(layout.run_dir))
        with daemon.session_engine(lines.append, keep=False):
            pass
    assert daemon.running_pid(layout) == engine.pid, lines
    assert "ran before this session and still runs" in lines[-1]
