"""Process tracking by PID file: only the process we started is ever signalled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from brokkr_dev.base import process, procstat
from brokkr_dev.clusters.api import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_start_and_stop_by_pid(tmp_path) -> None:
    record = process.start("sleeper", SLEEPER, tmp_path, tmp_path)
    assert process.alive(record)
    assert process.records(tmp_path) == [record]
    assert process.stop(record, tmp_path, timeout=5)
    assert not process.alive(record)
    assert process.records(tmp_path) == []
    assert (tmp_path / "sleeper.log").read_text().startswith("\n--- starting:")


def test_start_ticks_of_a_live_process_and_of_a_zombie() -> None:
    own = procstat.read_stat(os.getpid())
    assert own is not None
    assert process.start_ticks(os.getpid()) == own.start_ticks
    child = subprocess.Popen(SLEEPER)
    try:
        assert process.start_ticks(child.pid) is not None
        child.kill()  # not reaped yet: a zombie until wait()
        stat = Path(f"/proc/{child.pid}/stat")
        wait_for(lambda: procstat.parse_stat(stat.read_text()).state == "Z", 10, "a zombie")
        assert process.start_ticks(child.pid) is None
    finally:
        child.kill()
        child.wait()
    assert process.start_ticks(child.pid) is None


def test_a_reused_pid_is_not_taken_for_ours(tmp_path) -> None:
    record = process.ProcessRecord("other", os.getpid(), "x", start_ticks=1)
    record.save(tmp_path)
    assert not process.alive(record)
    assert not process.stop(record, tmp_path)  # nothing signalled: we are still here
    assert not (tmp_path / "other.json").exists()


def test_a_process_ignoring_sigterm_is_killed(tmp_path) -> None:
    stubborn = [
        sys.executable,
        "-c",
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)",
    ]
    record = process.start("stubborn", stubborn, tmp_path, tmp_path)
    log = tmp_path / "stubborn.log"
    wait_for(lambda: "ready" in log.read_text(), 10, "the child to ignore SIGTERM")
    assert process.stop(record, tmp_path, timeout=1)
    assert not process.alive(record)
