"""Agent-traffic benchmark: N simulated agents against a real broker on a real database.

Seeds a throw-away PostgreSQL with `registered` agents (default 10,000), one
generator, stacks with deployment objects and targets, then starts
`brokkr-broker serve` as a separate process and lets `concurrency` simulated
agents loop over heartbeat + target-state polls for `duration` seconds over
keep-alive connections. Prints requests/s and latency percentiles.

The load generator is a minimal HTTP/1.1 client on asyncio so that it costs as
little CPU as possible: on a 2-core machine it shares the cores with the broker
and PostgreSQL, which the printed numbers include.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from brokkr.broker import pak
from brokkr.broker.db import migrate
from brokkr_dev.localnet import free_port
from brokkr_dev.postgres import remove, temporary_server

YAML = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{n}\ndata:\n  k: v\n"


@dataclass
class Result:
    """What one benchmark run measured."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(self.requests / self.seconds, 1),
            "p50_ms": round(self.percentile(0.50), 2),
            "p90_ms": round(self.percentile(0.90), 2),
            "p99_ms": round(self.percentile(0.99), 2),
        }


def seed(dsn: str, registered: int, simulated: int, stacks: int) -> list[tuple[str, str]]:
    """Create the fleet; return (agent id, PAK) for the simulated agents."""
    migrate.apply(dsn)
    paks = [pak.generate() for _ in range(simulated)]
    with psycopg.connect(dsn) as conn, conn.transaction():
        generator = conn.execute(
            "INSERT INTO generators (name, pak_hash) VALUES ('bench', %s) RETURNING id",
            (pak.generate().hash,),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO agents (name, cluster_name, status, pak_hash)"
            " SELECT 'agent-' || n, 'cluster-' || (n %% 50), 'ACTIVE',"
            " md5(n::text) || md5('x' || n)"
            " FROM generate_series(1, %s) AS n",
            (registered - simulated,),
        )
        simulated_ids = []
        for index, new in enumerate(paks):
            row = conn.execute(
                "INSERT INTO agents (name, cluster_name, status, pak_hash)"
                " VALUES (%s, 'sim', 'ACTIVE', %s) RETURNING id",
                (f"sim-{index}", new.hash),
            ).fetchone()
            simulated_ids.append(str(row[0]))  # type: ignore[index]
        conn.execute(
            "INSERT INTO agent_generator_registrations (agent_id, generator_id)"
            " SELECT id, %s FROM agents",
            (generator,),
        )
        stack_ids = [
            conn.execute(
                "INSERT INTO stacks (name, generator_id) VALUES (%s, %s) RETURNING id",
                (f"stack-{n}", generator),
            ).fetchone()[0]  # type: ignore[index]
            for n in range(stacks)
        ]
        for n, stack_id in enumerate(stack_ids):
            for version in range(3):
                content = YAML.format(n=f"{n}-{version}")
                conn.execute(
                    "INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)"
                    " VALUES (%s, %s, md5(%s))",
                    (stack_id, content, content),
                )
            conn.execute(
                "INSERT INTO stack_labels (stack_id, label) VALUES (%s, %s)",
                (stack_id, f"group-{n % 10}"),
            )
        # Every agent: two explicit targets and one label.
        conn.execute(
            "INSERT INTO agent_targets (agent_id, stack_id)"
            " SELECT a.id, s.id FROM (SELECT id, row_number() OVER () AS r FROM agents) a"
            " JOIN (SELECT id, row_number() OVER () - 1 AS i FROM stacks) s"
            "   ON s.i IN (a.r %% %(n)s, (a.r + 1) %% %(n)s)",
            {"n": stacks},
        )
        conn.execute(
            "INSERT INTO agent_labels (agent_id, label)"
            " SELECT id, 'group-' || (row_number() OVER () % 10) FROM agents"
        )
        conn.execute("ANALYZE")
    return list(zip(simulated_ids, (p.pak for p in paks), strict=True))


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
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


async def _agent(port: int, agent_id: str, agent_pak: str, stop_at: float, result: Result) -> None:
    heartbeat = (
        f"POST /api/v1/agents/{agent_id}/heartbeat HTTP/1.1\r\nHost: b\r\n"
        f"Authorization: Bearer {agent_pak}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    poll = (
        f"GET /api/v1/agents/{agent_id}/target-state HTTP/1.1\r\nHost: b\r\n"
        f"Authorization: Bearer {agent_pak}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at:
            for raw, ok in ((heartbeat, 204), (poll, 200)):
                start = time.perf_counter()
                status = await _request(reader, writer, raw)
                result.latencies_ms.append((time.perf_counter() - start) * 1000)
                result.requests += 1
                if status != ok:
                    result.errors += 1
    finally:
        writer.close()


async def load(port: int, agents: list[tuple[str, str]], duration: float) -> Result:
    """Run every simulated agent in a closed loop for `duration` seconds."""
    result = Result(0, 0, duration, [])
    stop_at = time.monotonic() + duration
    await asyncio.gather(*(_agent(port, a, p, stop_at, result) for a, p in agents))
    return result


def run(
    *,
    registered: int = 10_000,
    concurrency: int = 32,
    duration: float = 20.0,
    stacks: int = 100,
    pool_size: int = 10,
    workers: int = 1,
) -> dict[str, float]:
    """The whole benchmark: database, seed, broker process, warm-up, measurement."""
    server = temporary_server()
    broker: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        server.psql("CREATE DATABASE brokkr")
        dsn = server.dsn("brokkr")
        started = time.monotonic()
        agents = seed(dsn, registered, concurrency, stacks)
        print(f"seeded {registered} agents, {stacks} stacks in {time.monotonic() - started:.1f}s")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKKR")}
        env.update(
            BROKKR__DATABASE__URL=dsn,
            BROKKR__DATABASE__POOL_MAX_SIZE=str(pool_size),
            BROKKR__DATABASE__POOL_MIN_SIZE=str(pool_size),
            BROKKR__BROKER__HOST="127.0.0.1",
            BROKKR__BROKER__PORT=str(port),
            BROKKR__BROKER__PAK_HASH=pak.generate().hash,
            BROKKR__LOG__LEVEL="warning",
            BROKKR__BROKER__WORKERS=str(workers),
        )
        log = Path(server.root.parent) / "broker.log"
        with open(log, "wb") as out:
            broker = subprocess.Popen(
                [sys.executable, "-m", "brokkr.broker.cli", "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_for(port, broker, log)
        asyncio.run(load(port, agents, 3.0))  # warm-up: connections, prepared statements
        result = asyncio.run(load(port, agents, duration))
        summary = {
            "registered_agents": registered,
            "concurrency": concurrency,
            "workers": workers,
            "cpus": os.cpu_count() or 0,
            "load_average_1m": round(os.getloadavg()[0], 1),
            **result.summary(),
        }
        print(json.dumps(summary, indent=2))
        return summary
    finally:
        if broker is not None and broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
            broker.wait(30)
        remove(server)


def _wait_for(port: int, broker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if broker.poll() is not None:
            raise RuntimeError(f"broker exited:\n{log.read_text()}")
        try:
            import urllib.request  # noqa: PLC0415 - only needed while waiting

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"broker did not become ready:\n{log.read_text()}")
