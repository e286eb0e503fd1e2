"""Leases of the sessions that use our dockerd: real processes, a real directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from brokkr_dev.containers.engine import leases

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_live_session_counts_and_a_finished_one_is_forgotten(tmp_path: Path) -> None:
    mine = leases.take(tmp_path)
    other = subprocess.Popen(SLEEPER)
    try:
        assert leases.take(tmp_path, pid=other.pid) is not None
        assert leases.others(tmp_path) == [other.pid]
    finally:
        other.kill()
        other.wait()
    assert leases.others(tmp_path) == []
    # the stale lease is removed, ours stays until released
    assert sorted(p.name for p in leases.lease_dir(tmp_path).iterdir()) == [mine.name]
    leases.release(mine)
    assert list(leases.lease_dir(tmp_path).iterdir()) == []


def test_our_own_lease_is_not_another_session(tmp_path: Path) -> None:
    leases.take(tmp_path)
    assert leases.others(tmp_path) == []


def test_no_lease_where_the_run_directory_cannot_be_written(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert leases.take(blocked) is None
    leases.release(None)
