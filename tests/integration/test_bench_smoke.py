"""`nox -s bench` for a few seconds: a real broker on a real PostgreSQL, tiny settings.

The smoke run must measure every traffic kind with zero errors; a run whose answers
are errors (a wrong PAK: 401; no broker listening: connection errors) must fail
with the count, and write no figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from brokkr.broker import pak
from brokkr_dev.base.localnet import free_port
from brokkr_dev.bench import broker as bench


def tiny(tmp_path: Path, **overrides: object) -> bench.Options:
    """Options for a run of a few seconds: a handful of agents, 1 s windows."""
    settings: dict = {
        "sizes": [12],
        "duration": 1.0,
        "warmup": 0.5,
        "connections": 2,
        "stacks": 3,
        "pool_size": 2,
        "output": tmp_path / "bench.json",
    }
    settings.update(overrides)
    return bench.Options(**settings)


def test_a_short_bench_against_a_real_broker_measures_every_kind_without_errors(
    tmp_path: Path,
):
    result = bench.run(tiny(tmp_path))
    runs = {run["phase"]: run for run in result["runs"]}
    assert set(runs) == set(bench.PHASES)
    for run in runs.values():
        assert run["requests"] > 0 and run["errors"] == 0, run
        assert run["broker_cpu_ms_per_request"] is not None, run
    assert (tmp_path / "bench.json").exists()


def stale_fleet(database_url: str, tmp_path: Path) -> Path:
    """An agents file whose ids are real but whose PAKs are not the agents' own."""
    seeded = bench.seed(database_url, 6, 2)
    path = tmp_path / "agents.json"
    bench.save_agents(path, [(agent_id, pak.generate().pak) for agent_id, _ in seeded])
    return path


def test_a_wrong_pak_makes_the_bench_fail_with_the_count(database_url: str, tmp_path: Path):
    options = tiny(
        tmp_path, sizes=[6], dsn=database_url, agents_file=stale_fleet(database_url, tmp_path)
    )
    with pytest.raises(bench.BenchError, match=r"warm-up: (\d+) of \1 requests failed \(401"):
        bench.run(options)
    assert not (tmp_path / "bench.json").exists()


def test_connection_errors_make_the_bench_fail_with_the_count(database_url: str, tmp_path: Path):
    options = tiny(
        tmp_path,
        sizes=[6],
        url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        agents_file=stale_fleet(database_url, tmp_path),
    )
    with pytest.raises(bench.BenchError, match=r"warm-up: 2 of 2 requests failed \(connect: "):
        bench.run(options)
    assert not (tmp_path / "bench.json").exists()
