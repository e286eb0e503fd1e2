"""The pure parts of the broker benchmark: /proc parsing, statistics, comparison."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokkr_dev.base import procstat
from brokkr_dev.bench import results as benchresults

# A real line from Linux (proc(5) layout); the command name holds a space and ")".
STAT = (
    "4242 (post gres) x) S 4200 4242 4242 0 -1 4194560 1000 0 0 0 "
    "150 50 0 0 20 0 1 0 987654 223000000 3300 18446744073709551615 "
    "1 1 0 0 0 0 0 16781312 134 0 0 0 17 1 0 0 0 0 0"
)


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    stat = procstat.parse_stat(STAT)
    assert stat.pid == 4242
    assert stat.name == "post gres) x"
    assert stat.state == "S"
    assert stat.ppid == 4200
    assert stat.cpu_ticks == 200  # utime 150 + stime 50
    assert stat.start_ticks == 987654
    assert stat.rss_pages == 3300


def test_parse_stat_refuses_a_truncated_line() -> None:
    with pytest.raises(ValueError, match="short /proc stat line for pid 7"):
        procstat.parse_stat("7 (x) S 1 2 3")


def test_read_stat_of_this_process_and_of_a_gone_one() -> None:
    own = procstat.read_stat(os.getpid())
    assert own is not None
    assert own.ppid == os.getppid()
    assert own.rss_pages > 0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert procstat.read_stat(child.pid) is None


def _stat(pid: int, ppid: int, ticks: int, start: int = 1, rss: int = 10) -> procstat.ProcStat:
    return procstat.ProcStat(pid, "p", "S", ppid, ticks, start, rss)


def test_tree_holds_root_and_every_descendant_only() -> None:
    stats = {s.pid: s for s in [_stat(1, 0, 0), _stat(10, 1, 0), _stat(11, 10, 0), _stat(20, 1, 0)]}
    assert set(procstat.tree(10, stats)) == {10, 11}
    assert procstat.tree(99, stats) == {}


def test_cpu_seconds_counts_new_processes_in_full_and_reused_pids_anew() -> None:
    hz = procstat.TICKS_PER_SECOND
    before = {1: _stat(1, 0, 100), 2: _stat(2, 1, 50), 3: _stat(3, 1, 70, start=5)}
    after = {
        1: _stat(1, 0, 100 + hz),  # one second more
        3: _stat(3, 1, 10, start=9),  # pid reused by a new process: all of its 10 ticks
        4: _stat(4, 1, hz),  # started in the window: one second
    }
    assert procstat.cpu_seconds(before, after) == pytest.approx(2 + 10 / hz)


def test_cpu_seconds_of_a_busy_child_from_the_real_proc() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt=time.process_time()\nwhile time.process_time()-t<0.5: pass\ntime.sleep(30)",
        ]
    )
    try:
        before = procstat.tree(os.getpid(), procstat.all_stats())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            after = procstat.tree(os.getpid(), procstat.all_stats())
            if procstat.cpu_seconds(before, after) >= 0.4:
                break
            time.sleep(0.05)
        assert child.pid in after
        assert procstat.cpu_seconds(before, after) >= 0.4
        assert procstat.rss_bytes(after) > 0
    finally:
        child.kill()
        child.wait()


def test_percentile_by_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert benchresults.percentile(values, 0.5) == 50
    assert benchresults.percentile(values, 0.99) == 99
    assert benchresults.percentile(values, 1.0) == 100
    assert benchresults.percentile([7.0], 0.0) == 7
    assert math.isnan(benchresults.percentile([], 0.5))


def test_window_summary_counts_errors_and_keeps_samples() -> None:
    window = benchresults.Window(seconds=2.0)
    for n in range(10):
        window.record(float(n + 1), ok=n != 3, what="503" if n == 3 else "")
    summary = window.summary()
    assert summary["requests"] == 10
    assert summary["requests_per_second"] == 5.0
    assert summary["errors"] == 1
    assert summary["error_samples"] == ["503"]
    assert summary["p50_ms"] == 5.0
    assert summary["max_ms"] == 10.0


def test_cpu_ms_per_request() -> None:
    assert benchresults.cpu_ms_per_request(1.5, 1000) == 1.5
    assert benchresults.cpu_ms_per_request(None, 1000) is None
    assert benchresults.cpu_ms_per_request(1.0, 0) is None


def _run(agents: int, phase: str, **figures: float | None) -> dict[str, object]:
    return {"agents": agents, "phase": phase, "rate": 0.0, **figures}


def test_compare_matches_runs_by_fleet_and_phase_and_gives_ratios() -> None:
    old = {"runs": [_run(1000, "mixed", requests_per_second=1000, broker_cpu_ms_per_request=1.0)]}
    new = {
        "runs": [
            _run(1000, "mixed", requests_per_second=1500, broker_cpu_ms_per_request=0.5),
            _run(10000, "mixed", requests_per_second=900),  # no counterpart: left out
        ]
    }
    rows = benchresults.compare(old, new)
    assert len(rows) == 1
    assert rows[0]["ratios"]["requests_per_second"] == 1.5
    assert rows[0]["ratios"]["broker_cpu_ms_per_request"] == 0.5
    assert rows[0]["ratios"]["p99_ms"] is None  # not in either run
    table = benchresults.format_comparison(rows)
    assert "1000    mixed" in table and "1.50" in table and "0.50" in table
    assert "no comparable runs" in benchresults.format_comparison([])


def test_results_file_round_trip_and_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    benchresults.write(path, {"runs": [_run(1, "mixed")]})
    assert benchresults.read(path)["runs"][0]["phase"] == "mixed"
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="bad.json is not a broker benchmark result"):
        benchresults.read(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="cannot read benchmark results"):
        benchresults.read(tmp_path / "missing.json")


def _figures(broker: float, postgres: float, p50: float, p99: float) -> dict[str, float]:
    return {
        "broker_cpu_ms_per_request": broker,
        "postgres_cpu_ms_per_request": postgres,
        "p50_ms": p50,
        "p99_ms": p99,
    }


def test_regressions_compare_ratios_within_each_run_not_absolute_figures() -> None:
    baseline = {"runs": [_run(10000, "mixed", **_figures(0.30, 0.25, 10.0, 25.0))]}
    # A machine twice as busy: every figure doubles, no ratio moves.
    slower = {"runs": [_run(10000, "mixed", **_figures(0.60, 0.50, 20.0, 50.0))]}
    assert benchresults.regressions(baseline, slower) == []
    # Broker CPU up 40 % against PostgreSQL's, p99 up 120 % against p50.
    worse = {"runs": [_run(10000, "mixed", **_figures(0.42, 0.25, 10.0, 55.0))]}
    problems = benchresults.regressions(baseline, worse)
    assert len(problems) == 2
    assert problems[0].startswith("10000 agents, mixed: broker/PostgreSQL CPU per request 1.68")
    assert "baseline 1.20 (+40 %, margin 25 %)" in problems[0]
    assert "p99/p50 latency 5.50, baseline 2.50 (+120 %, margin 100 %)" in problems[1]


def test_regressions_within_the_margin_pass_and_margins_can_be_given() -> None:
    baseline = {"runs": [_run(1000, "heartbeat", **_figures(0.30, 0.25, 10.0, 25.0))]}
    near = {"runs": [_run(1000, "heartbeat", **_figures(0.36, 0.25, 10.0, 49.0))]}
    assert benchresults.regressions(baseline, near) == []
    strict = {"broker/PostgreSQL CPU per request": 0.1}
    assert len(benchresults.regressions(baseline, near, strict)) == 1


def test_regressions_fail_when_nothing_could_be_checked() -> None:
    baseline = {"runs": [_run(1000, "mixed", **_figures(0.3, 0.25, 10.0, 25.0))]}
    other_fleet = {"runs": [_run(10000, "mixed", **_figures(0.3, 0.25, 10.0, 25.0))]}
    no_cpu = {"runs": [_run(1000, "mixed", p50_ms=10.0, p99_ms=25.0)]}
    assert "nothing to check" in benchresults.regressions(baseline, other_fleet)[0]
    assert benchresults.regressions(baseline, no_cpu) == []  # the latency check ran
    assert "nothing to check" in benchresults.regressions({"runs": []}, no_cpu)[0]


def test_every_run_with_an_error_answer_is_named_with_its_count() -> None:
    window = benchresults.Window(1.0)
    for status in ("204", "401", "204", "503"):
        window.record(1.0, status == "204", status)
    runs = [
        {"agents": 10, "phase": "heartbeat", **window.summary()},
        {"agents": 10, "phase": "mixed", **benchresults.Window(1.0).summary()},
    ]
    assert benchresults.failed_runs(runs) == [
        "heartbeat at 10 agents: 2 of 4 requests failed (401, 503)"
    ]
