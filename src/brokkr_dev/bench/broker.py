"""Agent-traffic benchmark: simulated agents against a real broker on a real PostgreSQL.

For each fleet size (default 1,000 and 10,000 agents, every one with its own PAK,
two explicit targets and one label over 100 stacks) the benchmark seeds a database,
starts `brokkr-broker serve` (N worker processes), warms up, then measures one
window per traffic kind: heartbeats only, target-state polls only, and both
mixed as an agent sends them. `connections` keep-alive connections share the
fleet round-robin. Closed loop (as fast as answers come) by default; `rate`
paces the offered load instead (open loop, latency counted from the scheduled
send time, so a broker that falls behind shows it).

Per window it reads /proc for the CPU time of the broker's processes and of all
PostgreSQL processes, and reports CPU-ms per request for both, the broker's RSS,
req/s and latency percentiles. CPU per request is the stable figure on a shared
machine; req/s moves with whatever else runs.

Pointed elsewhere: `url` uses a running broker (plain HTTP), `dsn` a database
that is seeded by this run or was seeded before (`agents_file`); PostgreSQL CPU
is then found through the backend of the benchmark's own connection, the broker's
through `broker_pid` (both only when on this machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import uvloop

from brokkr.broker import pak
from brokkr.broker.db import migrate
from brokkr_dev.base import procstat
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.paths import REPO_ROOT as ROOT
from brokkr_dev.bench import results as benchresults
from brokkr_dev.bench.results import Window
from brokkr_dev.local.postgres import remove, temporary_server
from brokkr_dev.local.services import LocalBroker

YAML = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{n}\ndata:\n  k: v\n"
PHASES = ("heartbeat", "target-state", "mixed")
# On request (not in the default run): what Brokkr's own agent sends per cycle.
AGENT_CYCLE = "agent-cycle"
# PostgreSQL as production runs it (durable commits), unlike the test server.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
# What the agent sends (src/brokkr/agent/broker_client.py).
HEARTBEAT_BODY = b'{"k8s_reachable":true,"k8s_api_latency_ms":12}'


class BenchError(AutomationError):
    """The benchmark cannot run as asked; the message says why and what to change."""


class Regression(BenchError):
    """The run is worse than the baseline given with `compare` (benchresults.regressions)."""


@dataclass
class Options:
    """What to run; see `invoke broker.bench --help` for the meaning of each."""

    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000])
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    duration: float = 20.0
    warmup: float = 3.0
    connections: int = 32
    rate: float = 0.0
    workers: int = 1
    pool_size: int = 10
    stacks: int = 100
    url: str | None = None
    dsn: str | None = None
    agents_file: Path | None = None
    broker_pid: int | None = None
    broker_src: Path | None = None
    output: Path | None = None
    compare: Path | None = None
    label: str = ""

    def check(self) -> None:
        unknown = set(self.phases) - {*PHASES, AGENT_CYCLE}
        if unknown:
            known = [*PHASES, AGENT_CYCLE]
            raise BenchError(f"unknown phase(s) {sorted(unknown)}; choose from {known}")
        if (self.url or self.dsn or self.agents_file) and len(self.sizes) != 1:
            raise BenchError(
                "with --url, --dsn or --agents-file the fleet is the one in that database: "
                "give a single --agents value"
            )
        if self.url and not (self.dsn or self.agents_file):
            raise BenchError(
                "--url needs the broker's database: --dsn (seeded by this run) or "
                "--agents-file (written by an earlier seeding run)"
            )
        if self.url and not self.url.startswith("http://"):
            raise BenchError(f"--url must be plain http://host:port, got {self.url!r}")
        if self.connections < 1 or self.duration <= 0:
            raise BenchError("--connections must be >= 1 and --duration > 0")


# --- fleet ----------------------------------------------------------------------------


def seed(dsn: str, agents: int, stacks: int) -> list[tuple[str, str]]:
    """Create a fleet of `agents` with their own PAKs; return (agent id, PAK) for each."""
    migrate.apply(dsn)
    tag = pak.generate().pak.split("_")[1].lower()  # keeps repeated seedings apart
    paks = [pak.generate() for _ in range(agents)]
    with psycopg.connect(dsn) as conn, conn.transaction():
        generator = conn.execute(
            "INSERT INTO generators (name, pak_hash) VALUES (%s, %s) RETURNING id",
            (f"bench-{tag}", pak.generate().hash),
        ).fetchone()[0]  # type: ignore[index]
        with conn.cursor().copy(
            "COPY agents (name, cluster_name, status, pak_hash) FROM STDIN"
        ) as copy:
            for n, new in enumerate(paks):
                copy.write_row((f"agent-{n}", f"bench-{tag}-{n % 50}", "ACTIVE", new.hash))
        ids: dict[str, str] = dict(
            conn.execute(
                "SELECT pak_hash, id::text FROM agents WHERE cluster_name LIKE %s",
                (f"bench-{tag}-%",),
            ).fetchall()
        )
        conn.execute(
            "INSERT INTO agent_generator_registrations (agent_id, generator_id)"
            " SELECT id, %s FROM agents WHERE cluster_name LIKE %s",
            (generator, f"bench-{tag}-%"),
        )
        stack_ids = [
            conn.execute(
                "INSERT INTO stacks (name, generator_id) VALUES (%s, %s) RETURNING id",
                (f"stack-{tag}-{n}", generator),
            ).fetchone()[0]  # type: ignore[index]
            for n in range(stacks)
        ]
        for n, stack_id in enumerate(stack_ids):
            for version in range(3):
                content = YAML.format(n=f"{n}-{version}")
                conn.execute(
                    "INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)"
                    " VALUES (%s, %s, encode(sha256(%s::bytea), 'hex'))",
                    (stack_id, content, content),
                )
            conn.execute(
                "INSERT INTO stack_labels (stack_id, label) VALUES (%s, %s)",
                (stack_id, f"group-{tag}-{n % 10}"),
            )
        # Every agent: two explicit targets and one label.
        conn.execute(
            "INSERT INTO agent_targets (agent_id, stack_id)"
            " SELECT a.id, s.id FROM"
            " (SELECT id, row_number() OVER () AS r FROM agents WHERE cluster_name LIKE %(c)s) a"
            " JOIN (SELECT id, row_number() OVER () - 1 AS i FROM unnest(%(s)s::uuid[]) id) s"
            "   ON s.i IN (a.r %% %(n)s, (a.r + 1) %% %(n)s)",
            {"c": f"bench-{tag}-%", "s": stack_ids, "n": stacks},
        )
        conn.execute(
            "INSERT INTO agent_labels (agent_id, label)"
            " SELECT id, %s || (row_number() OVER () %% 10) FROM agents WHERE cluster_name LIKE %s",
            (f"group-{tag}-", f"bench-{tag}-%"),
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return [(ids[new.hash], new.pak) for new in paks]


def save_agents(path: Path, agents: list[tuple[str, str]]) -> None:
    """Keep a seeded fleet for later runs (its PAKs: the file is made owner-only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps({"agents": agents}))


def load_agents(path: Path) -> list[tuple[str, str]]:
    try:
        data = json.loads(path.read_text())
        return [(str(a), str(p)) for a, p in data["agents"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{path} is not an agents file written by the benchmark: {exc}") from None


# --- load generator -------------------------------------------------------------------


def requests_for(phase: str, agent_id: str, agent_pak: str) -> list[tuple[bytes, int]]:
    """The raw HTTP/1.1 requests one agent sends in a phase, with the expected status."""
    auth = f"Host: b\r\nAuthorization: Bearer {agent_pak}\r\n"
    beat = (
        f"POST /api/v1/agents/{agent_id}/heartbeat HTTP/1.1\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(HEARTBEAT_BODY)}\r\n\r\n"
    ).encode() + HEARTBEAT_BODY
    poll = f"GET /api/v1/agents/{agent_id}/target-state HTTP/1.1\r\n{auth}\r\n".encode()
    full = f"GET /api/v1/agents/{agent_id}/target-state?mode=full HTTP/1.1\r\n{auth}\r\n".encode()
    own = f"GET /api/v1/agents/{agent_id} HTTP/1.1\r\n{auth}\r\n".encode()
    return {
        "heartbeat": [(beat, 204)],
        "target-state": [(poll, 200)],
        "mixed": [(beat, 204), (poll, 200)],
        # src/brokkr/agent/service.py: heartbeat, own record, full and incremental state
        AGENT_CYCLE: [(beat, 204), (own, 200), (full, 200), (poll, 200)],
    }[phase]


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(  # noqa: PLR0917 - one call site, all positional
    host: str,
    port: int,
    script: list[tuple[bytes, int]],
    window: Window,
    stop_at: float,
    interval: float,
    offset: float,
) -> None:
    """Send `script` round-robin until `stop_at`; paced every `interval` s when > 0.

    A connection that cannot be (re)opened is recorded as a failed request and ends
    this connection's share of the window: the run then fails on its errors.
    """
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        window.record(0.0, False, f"connect: {exc!r}")
        return
    next_at = time.perf_counter() + offset
    try:
        index = 0
        while time.perf_counter() < stop_at:
            raw, expected = script[index % len(script)]
            index += 1
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                start, next_at = next_at, next_at + interval
            else:
                start = time.perf_counter()
            try:
                status = await _exchange(reader, writer, raw)
            except (OSError, asyncio.IncompleteReadError) as exc:
                window.record((time.perf_counter() - start) * 1000, False, repr(exc))
                writer.close()
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError as again:
                    window.record(0.0, False, f"reconnect: {again!r}")
                    return
                continue
            window.record((time.perf_counter() - start) * 1000, status == expected, str(status))
    finally:
        writer.close()


async def drive(  # noqa: PLR0917
    url: str,
    agents: list[tuple[str, str]],
    phase: str,
    connections: int,
    rate: float,
    seconds: float,
) -> Window:
    """Run one window of traffic and return what it measured."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    scripts: list[list[tuple[bytes, int]]] = [[] for _ in range(connections)]
    for n, (agent_id, agent_pak) in enumerate(agents):
        scripts[n % connections] += requests_for(phase, agent_id, agent_pak)
    scripts = [s for s in scripts if s]
    interval = len(scripts) / rate if rate else 0.0
    window = Window(seconds)
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            _connection(host, port, s, window, stop_at, interval, interval * n / len(scripts))
            for n, s in enumerate(scripts)
        )
    )
    return window


# --- CPU accounting -------------------------------------------------------------------


def postmaster_pid(dsn: str) -> int | None:
    """The PostgreSQL postmaster on this machine behind `dsn`, or None when not local."""
    with psycopg.connect(dsn) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        stat = procstat.read_stat(backend)
        # our own backend answers the query, so if /proc has it the server is local
        return stat.ppid if stat and stat.name.startswith("postgres") else None


@dataclass
class Meter:
    """CPU of the broker's and PostgreSQL's process trees over a window."""

    broker_root: int | None
    postgres_root: int | None

    def snapshot(self) -> tuple[dict[int, procstat.ProcStat], dict[int, procstat.ProcStat]]:
        stats = procstat.all_stats()
        broker = procstat.tree(self.broker_root, stats) if self.broker_root else {}
        postgres = procstat.tree(self.postgres_root, stats) if self.postgres_root else {}
        return broker, postgres

    def measure(self, run: Any) -> tuple[Window, dict[str, Any]]:
        broker0, pg0 = self.snapshot()
        client0 = time.process_time()
        window: Window = run()
        client = time.process_time() - client0
        broker1, pg1 = self.snapshot()
        n = window.requests
        broker_cpu = procstat.cpu_seconds(broker0, broker1) if self.broker_root else None
        pg_cpu = procstat.cpu_seconds(pg0, pg1) if self.postgres_root else None
        rss = procstat.rss_bytes(broker1) / 2**20 if self.broker_root else None
        return window, {
            "broker_cpu_ms_per_request": benchresults.cpu_ms_per_request(broker_cpu, n),
            "postgres_cpu_ms_per_request": benchresults.cpu_ms_per_request(pg_cpu, n),
            "client_cpu_ms_per_request": benchresults.cpu_ms_per_request(client, n),
            "broker_cpu_cores": round(broker_cpu / window.seconds, 2) if broker_cpu else None,
            "postgres_cpu_cores": round(pg_cpu / window.seconds, 2) if pg_cpu else None,
            "broker_rss_mib": round(rss, 1) if rss is not None else None,
            "broker_processes": len(broker1),
        }


# --- broker process -------------------------------------------------------------------


@contextlib.contextmanager
def broker_process(dsn: str, options: Options, workdir: Path) -> Iterator[LocalBroker]:
    """`brokkr-broker serve` on a free port (from `broker_src` when given) until exit."""
    port = free_port()
    broker = LocalBroker(
        {
            "database": {
                "url": dsn,
                "pool_max_size": options.pool_size,
                "pool_min_size": options.pool_size,
            },
            "broker": {"pak_hash": pak.generate().hash, "workers": options.workers},
            "log": {"level": "warning"},
        },
        port=port,
        log_file=workdir / f"broker-{port}.log",
        env={"PYTHONPATH": str(options.broker_src)} if options.broker_src else None,
    )
    broker.start(timeout=30)
    try:
        yield broker
    finally:
        broker.stop(timeout=30)


# --- runs -----------------------------------------------------------------------------


def measure_fleet(
    url: str, agents: list[tuple[str, str]], meter: Meter, options: Options
) -> list[dict[str, Any]]:
    """Warm up, then one measured window per phase against one broker and fleet."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # warm-up: connections, pools, prepared statements, PostgreSQL's cache
    warmup = asyncio.run(drive(url, agents, "mixed", options.connections, 0, options.warmup))
    if warmup.errors:  # e.g. a wrong PAK or a broker that is not there: stop before measuring
        raise BenchError(
            "warm-up: "
            + benchresults.describe_errors(warmup.summary())
            + "; fix the broker, database or agents file before measuring"
        )
    runs = []
    # The load generator's own full collections would show as the broker's tail.
    gc.collect()
    gc.freeze()
    for phase in options.phases:

        def window(phase: str = phase) -> Window:
            return asyncio.run(
                drive(url, agents, phase, options.connections, options.rate, options.duration)
            )

        measured, cpu = meter.measure(window)
        run = {
            "agents": len(agents),
            "phase": phase,
            "rate": options.rate,
            "connections": options.connections,
            "workers": options.workers,
            "pool_size": options.pool_size,
            **measured.summary(),
            **cpu,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        print(benchresults.format_runs([run]).splitlines()[-1], flush=True)
        runs.append(run)
    return runs


def _own_database(options: Options, size: int, workdir: Path) -> list[dict[str, Any]]:
    server = temporary_server()
    try:
        server.start(settings=DURABLE)
        server.psql("CREATE DATABASE brokkr")
        dsn = server.dsn("brokkr")
        started = time.monotonic()
        agents = seed(dsn, size, options.stacks)
        print(f"seeded {size} agents in {time.monotonic() - started:.1f} s", flush=True)
        with broker_process(dsn, options, workdir) as broker:
            postgres = server.process.pid if server.process else None
            return measure_fleet(broker.url, agents, Meter(broker.pid, postgres), options)
    finally:
        remove(server)


def _given_database(options: Options, workdir: Path) -> list[dict[str, Any]]:
    if options.agents_file:
        agents = load_agents(options.agents_file)
    elif options.dsn:
        agents = seed(options.dsn, options.sizes[0], options.stacks)
        save_agents(workdir / "agents.json", agents)
        print(f"seeded {len(agents)} agents; fleet saved to {workdir / 'agents.json'}")
    postgres = postmaster_pid(options.dsn) if options.dsn else None
    if options.url:
        return measure_fleet(options.url, agents, Meter(options.broker_pid, postgres), options)
    if not options.dsn:
        raise BenchError("--agents-file without --url needs --dsn: the database it was seeded in")
    with broker_process(options.dsn, options, workdir) as broker:
        return measure_fleet(broker.url, agents, Meter(broker.pid, postgres), options)


def _source_revision(source: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(source), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def run(options: Options) -> dict[str, Any]:
    """The whole benchmark; writes and compares JSON results when asked."""
    options.check()
    earlier = benchresults.read(options.compare) if options.compare else None
    workdir = ROOT / ".local" / "bench"
    workdir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    if options.url or options.dsn or options.agents_file:
        runs = _given_database(options, workdir)
    else:
        runs = [r for size in options.sizes for r in _own_database(options, size, workdir)]
    result = {
        "label": options.label,
        "started": started.isoformat(timespec="seconds"),
        "broker_source": str(options.broker_src or ROOT / "src"),
        "revision": _source_revision(options.broker_src or ROOT),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "options": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(options).items()
            if k not in {"compare", "output"}
        },
        "runs": runs,
    }
    print(benchresults.format_runs(runs))
    failed = benchresults.failed_runs(runs)
    if failed:
        # Throughput and latency that include error answers measure nothing we ship.
        raise BenchError("error answers, so no figures are written: " + "; ".join(failed))
    output = options.output or workdir / f"bench-{started:%Y%m%dT%H%M%S}.json"
    benchresults.write(output, result)
    print(f"results written to {output}")
    if earlier is not None:
        print(f"compared with {options.compare}:")
        print(benchresults.format_comparison(benchresults.compare(earlier, result)))
        problems = benchresults.regressions(earlier, result)
        if problems:
            raise Regression(
                f"worse than the baseline {options.compare}:\n  " + "\n  ".join(problems)
            )
        print(
            "no regression: "
            + ", ".join(
                f"{check} within +{margin * 100:.0f} %"
                for check, margin in benchresults.MARGINS.items()
            )
        )
    return result
