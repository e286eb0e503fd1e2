"""CPU time and memory of process trees, read from /proc (Linux).

The one parser of /proc/<pid>/stat: base/process.py reads start times through it.

The broker benchmark charges CPU to the broker (its process and forked workers)
and to PostgreSQL (the postmaster and every backend and helper process) for a
measured window: snapshot before, snapshot after, difference per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the benchmark and the PID files use."""

    pid: int
    name: str
    state: str  # R, S, D, ...; Z (zombie) and X (dead) have exited
    ppid: int
    cpu_ticks: int  # utime + stime of the process itself (not of reaped children)
    start_ticks: int  # since boot: tells a reused pid from the earlier process
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """Parse one /proc/<pid>/stat line.

    The command name is in parentheses and may itself hold spaces and ")", so the
    fields are counted from the last ")".
    """
    open_at, close_at = text.index("("), text.rindex(")")
    pid = int(text[:open_at])
    name = text[open_at + 1 : close_at]
    # fields after the name start at field 3 (state); see proc(5)
    rest = text[close_at + 2 :].split()
    if len(rest) < 22:
        raise ValueError(f"short /proc stat line for pid {pid}: {len(rest)} fields after name")
    return ProcStat(
        pid=pid,
        name=name,
        state=rest[0],
        ppid=int(rest[1]),
        cpu_ticks=int(rest[11]) + int(rest[12]),
        start_ticks=int(rest[19]),
        rss_pages=int(rest[21]),
    )


def read_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    """The stat of a live process; None when it has exited."""
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def all_stats(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process visible in /proc."""
    stats = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def tree(root: int, stats: dict[int, ProcStat]) -> dict[int, ProcStat]:
    """`root` and all its descendants among `stats`."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: dict[int, ProcStat] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in found:
            found[pid] = stats[pid]
            todo.extend(children.get(pid, []))
    return found


def cpu_seconds(before: dict[int, ProcStat], after: dict[int, ProcStat]) -> float:
    """CPU seconds the processes of `after` used since `before`.

    A process absent from `before` (started in the window) counts in full; one
    that exited in the window is lost, which is why the benchmark keeps its
    connections (and so the PostgreSQL backends) open across the window.
    """
    ticks = 0
    for pid, stat in after.items():
        start = before.get(pid)
        ticks += stat.cpu_ticks - (
            start.cpu_ticks if start and start.start_ticks == stat.start_ticks else 0
        )
    return ticks / TICKS_PER_SECOND


def rss_bytes(stats: dict[int, ProcStat]) -> int:
    """Resident memory of the processes, summed (shared pages count once per process)."""
    return sum(s.rss_pages for s in stats.values()) * PAGE_BYTES
