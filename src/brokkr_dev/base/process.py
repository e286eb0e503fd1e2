"""Starting and stopping the cluster's processes, tracked by PID files.

A PID file records the PID, the executable and the process start time, so a
process is only ever signalled when it is still the one we started (a reused PID
is left alone). Nothing is ever stopped by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from brokkr_dev.base import procstat

STOP_TIMEOUT = 20.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class ProcessRecord:
    """What a PID file says about one started process."""

    name: str
    pid: int
    executable: str
    start_ticks: int

    def save(self, directory: Path) -> None:
        (directory / f"{self.name}.json").write_text(json.dumps(asdict(self)) + "\n")

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat),
    or None when there is no such live process (zombies count as gone)."""
    try:
        stat = procstat.parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None
    return None if stat.state in ("Z", "X") else stat.start_ticks


def alive(record: ProcessRecord) -> bool:
    """True when the recorded process still runs and is the one we started."""
    _reap(record.pid)
    return start_ticks(record.pid) == record.start_ticks


def start(
    name: str, argv: list[str], pid_dir: Path, log_dir: Path, die_with_parent: bool = False
) -> ProcessRecord:
    """Start `argv` in its own session with output appended to `<log_dir>/<name>.log`
    and write its PID file. With `die_with_parent` the kernel kills it when the
    calling process dies, so a killed test run leaves no cluster behind."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        log.write(f"\n--- starting: {' '.join(argv)}\n".encode())
        log.flush()
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed by a Ctrl-C meant for the caller
            preexec_fn=_terminate_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
    ticks = start_ticks(child.pid)
    record = ProcessRecord(name, child.pid, argv[0], ticks if ticks is not None else -1)
    record.save(pid_dir)
    return record


def records(pid_dir: Path) -> list[ProcessRecord]:
    """Every PID file in the directory, in start order."""
    found = [ProcessRecord.load(p) for p in sorted(pid_dir.glob("*.json"))]
    return sorted((r for r in found if r), key=lambda r: r.start_ticks)


def stop(record: ProcessRecord, pid_dir: Path, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the recorded process (SIGTERM, then SIGKILL after `timeout`) and remove
    its PID file. Returns True if it was running."""
    was_running = alive(record)
    if was_running:
        _signal(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(record) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(record):
            _signal(record.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while alive(record) and time.monotonic() < deadline:
                time.sleep(0.05)
    (pid_dir / f"{record.name}.json").unlink(missing_ok=True)
    return was_running


def stop_child(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """Stop a child process we hold a Popen for: SIGTERM, SIGKILL after `timeout`,
    and reap it (a no-op when it has already exited)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _terminate_with_parent() -> None:
    """In the child before exec: ask Linux for SIGKILL when the parent exits.

    Not SIGTERM: all components would get it at once, and the API server's graceful
    shutdown then waits a long time for the etcd that is already gone.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child, so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
