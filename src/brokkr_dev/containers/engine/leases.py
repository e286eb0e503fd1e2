"""Which sessions use our dockerd right now, so the last one out stops it.

The engine is machine-wide; two sessions on one machine (a laptop user's `nox -s
tests` and `nox -s e2e-kind`, side by side) share it. Each session holds a lease, a
file named after its PID under the engine's run directory; a lease whose process is
gone no longer counts. A session that started the engine stops it at its end only
when no other lease is alive; otherwise it leaves a hand-over mark, and the last
session out stops it instead.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def lease_dir(run_dir: Path) -> Path:
    return run_dir / "sessions"


def handover_mark(run_dir: Path) -> Path:
    """Present while a session-started engine waits for its last user to stop it."""
    return run_dir / "stop-when-unused"


def take(run_dir: Path, pid: int | None = None) -> Path | None:
    """This process's lease; None where the run directory is not ours to write (a
    normal user's session never stops root's engine anyway)."""
    lease = lease_dir(run_dir) / str(pid or os.getpid())
    try:
        lease.parent.mkdir(parents=True, exist_ok=True)
        lease.touch()
    except OSError:
        return None
    return lease


def release(lease: Path | None) -> None:
    if lease is not None:
        lease.unlink(missing_ok=True)


def others(run_dir: Path, pid: int | None = None) -> list[int]:
    """PIDs of the other sessions whose process still runs; stale leases are removed."""
    me = pid or os.getpid()
    alive = []
    with contextlib.suppress(FileNotFoundError):
        for lease in lease_dir(run_dir).iterdir():
            if not lease.name.isdigit() or int(lease.name) == me:
                continue
            if Path(f"/proc/{lease.name}").exists():
                alive.append(int(lease.name))
            else:
                with contextlib.suppress(OSError):
                    lease.unlink()
    return sorted(alive)
