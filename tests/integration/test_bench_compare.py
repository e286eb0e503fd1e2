"""`bench --compare` against real broker processes: a regression planted in the hot
path fails the comparison, a second run of the same code passes it.

The regressed broker is a copy of this checkout's broker source with a CPU burn
and a stall added to every heartbeat and target-state answer (hotpath.py),
started by the benchmark itself through `broker_src`, as a before/after run is.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from brokkr_dev.base.paths import REPO_ROOT
from brokkr_dev.bench import broker as bench

ANCHOR = "        request_id = request_id_for(scope)\n"
PLANTED = (
    "        _until = time.process_time() + 0.0005  # planted: 0.5 ms of CPU per request\n"
    "        while time.process_time() < _until:\n"
    "            pass\n"
    "        if hash(request_id) % 25 == 0:  # planted: 4 % of requests wait 0.5 s\n"
    "            await asyncio.sleep(0.5)\n"
)


def _run(tmp_path: Path, name: str, **options: Any) -> dict[str, Any]:
    return bench.run(
        bench.Options(
            sizes=[1000],
            phases=["mixed"],
            duration=5.0,
            warmup=1.0,
            connections=16,
            output=tmp_path / f"{name}.json",
            label=name,
            **options,
        )
    )


def _regressed_source(tmp_path: Path) -> Path:
    source = tmp_path / "regressed" / "src"
    shutil.copytree(REPO_ROOT / "src" / "brokkr", source / "brokkr")
    hot = source / "brokkr" / "broker" / "hotpath.py"
    text = hot.read_text()
    assert text.count(ANCHOR) == 1, "hotpath.py changed: move the planted regression"
    hot.write_text(text.replace(ANCHOR, ANCHOR + PLANTED))
    return source


def test_compare_fails_on_a_planted_regression_and_passes_a_rerun(tmp_path: Path):
    baseline = _run(tmp_path, "baseline")
    assert baseline["runs"][0]["errors"] == 0
    _run(tmp_path, "rerun", compare=tmp_path / "baseline.json")  # raises on a regression

    with pytest.raises(bench.Regression) as failed:
        _run(
            tmp_path,
            "regressed",
            compare=tmp_path / "baseline.json",
            broker_src=_regressed_source(tmp_path),
        )
    message = str(failed.value)
    assert "1000 agents, mixed: broker/PostgreSQL CPU per request" in message
    assert "1000 agents, mixed: p99/p50 latency" in message
