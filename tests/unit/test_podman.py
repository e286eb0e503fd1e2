"""Rootless podman's pause process: found where podman records it."""

from __future__ import annotations

from pathlib import Path

from brokkr_dev.containers import podman


def test_the_pause_process_file_follows_the_runtime_dir() -> None:
    """Under XDG_RUNTIME_DIR when set, else podman's /tmp/podman-run-UID."""
    assert podman.pause_pid_file(1002, {}) == Path("/tmp/podman-run-1002/libpod/tmp/pause.pid")
    assert podman.pause_pid_file(1002, {"XDG_RUNTIME_DIR": "/run/user/1002"}) == Path(
        "/run/user/1002/libpod/tmp/pause.pid"
    )


def test_no_pause_process_is_reported_for_a_pid_file_of_another_program(tmp_path: Path) -> None:
    (tmp_path / "libpod" / "tmp").mkdir(parents=True)
    (tmp_path / "libpod" / "tmp" / "pause.pid").write_text("1\n")  # init, not podman
    assert podman.pause_process({"XDG_RUNTIME_DIR": str(tmp_path)}) is None
