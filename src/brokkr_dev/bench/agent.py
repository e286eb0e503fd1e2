"""Agent latency and memory benchmark against a running local stack (`nox -s up`).

For each polling interval it starts one extra agent (its own agent record, its own
generator and stack), then `runs` times waits a random part of the interval, posts
a new deployment object holding a ConfigMap with a new name and measures the time
until that ConfigMap exists in the cluster. Memory is the agent's resident set size (current and peak) at the end.
"""

from __future__ import annotations

import json
import random
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

from brokkr_dev.base import process as proc
from brokkr_dev.base.log import Log
from brokkr_dev.clusters.api import ClusterClient
from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.local.services import LocalAgent
from brokkr_dev.local.stack import StackDir, StackError

NAMESPACE = "brokkr-bench"


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def measure(
    info: dict[str, Any], interval: float, runs: int, where: StackDir, log: Log
) -> dict[str, Any]:
    admin = BrokerAdmin(info["broker_url"], Path(info["admin_pak_file"]).read_text().strip())
    suffix = secrets.token_hex(3)
    generator_id = admin.generator(f"bench-{suffix}")
    agent_id, agent_pak = admin.agent(f"bench-{suffix}", "bench")
    admin.register(generator_id, agent_id)
    pak_file = where.root / f"bench-{suffix}.pak"
    pak_file.touch(mode=0o600)
    pak_file.write_text(agent_pak)
    log_path = where.logs / f"bench-agent-{suffix}.log"
    agent = LocalAgent(
        {
            "agent": {
                "broker_url": info["broker_url"],
                "pak_file": pak_file,
                "agent_name": f"bench-{suffix}",
                "cluster_name": "bench",
                "kubeconfig": info["kubeconfig"],
                "polling_interval": interval,
            },
            "log": {"level": "WARNING"},
        },
        log_file=log_path,
    )
    kube = ClusterClient.from_kubeconfig(Path(info["kubeconfig"]))
    try:
        agent.start()
        stack_id = admin.stack(f"bench-{suffix}", generator_id)
        admin.target(agent_id, stack_id)
        samples = []
        for run in range(runs):
            name = f"bench-{suffix}-{run}"
            yaml_text = (
                f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n---\n"
                f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n"
                f"data: {{run: '{run}'}}\n"
            )
            path = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}"
            # Post at a random point of the agent's cycle: posting right after the
            # previous object appeared would lock every run to the same phase.
            time.sleep(random.uniform(0, interval))  # noqa: S311
            started = time.monotonic()
            admin.deploy(stack_id, yaml_text)
            deadline = started + interval * 3 + 60
            while not kube.exists(path):
                if time.monotonic() > deadline:
                    raise StackError(f"run {run}: {path} did not appear; see {log_path}")
                time.sleep(0.02)
            samples.append(time.monotonic() - started)
            log(f"  interval {interval:g} s, run {run + 1}/{runs}: {samples[-1]:.2f} s")
        rss, peak = _rss_kib(agent.pid)
        admin.deploy(stack_id, "", deletion=True)
    finally:
        kube.close()
        agent.stop(timeout=30)
        pak_file.unlink(missing_ok=True)
    return {
        "interval_s": interval,
        "runs": runs,
        "p50_s": round(statistics.median(samples), 2),
        "max_s": round(max(samples), 2),
        "min_s": round(min(samples), 2),
        "rss_mib": round(rss / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
    }


def run(intervals: list[float], runs: int, log: Log = print) -> list[dict[str, Any]]:
    """Measure each interval against the running local stack; raise StackError if it is not up."""
    where = StackDir.default()
    if not where.info.exists():
        raise StackError("no local stack is running; start it with `nox -s up` first")
    info = json.loads(where.info.read_text())
    if not all(proc.alive(r) for r in proc.records(where.pids)):
        raise StackError("the local stack is not fully running; run `nox -s down` then `nox -s up`")
    return [measure(info, interval, runs, where, log) for interval in intervals]


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| polling interval | runs | p50 | max | min | agent RSS at end | agent peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['interval_s']:g} s | {r['runs']} | {r['p50_s']} s | {r['max_s']} s | "
            f"{r['min_s']} s | {r['rss_mib']} MiB | {r['peak_rss_mib']} MiB |"
        )
    return "\n".join(lines)
