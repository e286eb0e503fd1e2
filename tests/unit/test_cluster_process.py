"""Process tracking by PID file: only the process we started is ever signalled."""

from __future__ import annotations

import os
import sys

from brokkr_dev.base import process
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
