"""A bounded soak of the broker: well-behaved agents next to clients that misbehave.

For `seconds` (default 600) against a broker process on a throw-away PostgreSQL:

- agents heartbeat and poll their target state, each about once a second;
- hostile clients send bodies the broker must refuse (an alias bomb, deep
  nesting, NUL, a 5,000-digit integer, wrong media types, too large), with the
  generator's PAK (so they reach the parsers) and without one;
- slow clients announce a body and stall (with a PAK: 408 after the read
  timeout; without: 401 at once);
- oversized-header clients stream 1 MiB of headers (431);
- a probe asks /healthz five times a second and records its latency.

It reports every status seen, the 5xx (there must be none), /healthz p50/p99/max,
and the broker's memory (RSS of the broker and its YAML worker) and open file
descriptors after the warm-up and at the end; it fails when a 5xx was seen or
memory or descriptors grew past the stated bounds. Not part of CI: it runs for
minutes on purpose (`invoke broker-soak`, docs/broker.md "Soak").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from brokkr.broker import pak
from brokkr_dev.base import procstat
from brokkr_dev.base.localnet import free_port
from brokkr_dev.local.postgres import remove, temporary_server

WARMUP_SECONDS = 15.0
RSS_GROWTH_BOUND_MIB = 64.0
FD_GROWTH_BOUND = 16
BODY_READ_TIMEOUT = 10
YAML = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: soak}\ndata: {k: v}\n"


class SoakError(Exception):
    """The soak could not run, or the broker failed it."""


def _alias_bomb() -> str:
    lines = ["  l0: &l0 [x]"] + [
        f"  l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 10)
    ]
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n" + "\n".join(lines)


# (content type, body) pairs the broker must refuse with a 4xx.
HOSTILE: list[tuple[str, bytes]] = [
    ("application/yaml", _alias_bomb().encode()),
    ("application/json", json.dumps({"yaml_content": _alias_bomb()}).encode()),
    ("application/json", b"[" * 5000 + b"]" * 5000),
    ("application/yaml", b"a: " + b"[" * 20000),
    ("application/json", b'{"yaml_content": "kind: x\\u0000"}'),
    ("application/json", b'{"yaml_content": 1' + b"1" * 5000 + b"}"),
    ("application/x-www-form-urlencoded", b"yaml_content=kind"),
    ("image/yaml", YAML.encode()),
    ("application/json", b'{"yaml_content": "' + b"x" * (11 * 1024 * 1024) + b'"}'),
    ("application/json", b"\xff\xfe not utf-8"),
]


@dataclass
class Tally:
    """What the clients saw; threads add to it under one lock."""

    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    healthz_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int, detail: str = "") -> None:
        with self.lock:
            self.statuses[f"{kind} {status}"] += 1
            if status >= 500:
                self.server_errors.append(f"{kind} {status} {detail[:200]}")


@dataclass
class Fleet:
    """The seeded rows: a generator with its PAK, a stack, agents with their PAKs."""

    generator_pak: str
    stack: str
    agents: list[tuple[str, str]]


def seed(url: str, admin: str, agents: int) -> Fleet:
    # generous timeout: the first upload starts the YAML worker process
    with httpx.Client(
        base_url=url + "/api/v1", headers={"Authorization": admin}, timeout=60
    ) as http:
        made = http.post("/generators", json={"name": "soak"}).json()
        generator, generator_pak = made["generator"]["id"], made["pak"]
        stack = http.post("/stacks", json={"name": "soak", "generator_id": generator}).json()
        http.post(f"/stacks/{stack['id']}/deployment-objects", json={"yaml_content": YAML})
        fleet = []
        for n in range(agents):
            body = {"name": f"a{n}", "cluster_name": "soak", "generator_ids": [generator]}
            created = http.post("/agents", json=body).json()
            agent = created["agent"]["id"]
            http.put(f"/agents/{agent}", json={"status": "ACTIVE"})
            http.post(f"/agents/{agent}/targets", json={"agent_id": agent, "stack_id": stack["id"]})
            fleet.append((agent, created["initial_pak"]))
    return Fleet(generator_pak, stack["id"], fleet)


def _loop(stop: threading.Event, pause: float, step: Callable[[], None]) -> None:
    while not stop.is_set():
        step()
        stop.wait(pause)  # the client's pacing, not a synchronisation


def agents_loop(url: str, agents: list[tuple[str, str]], tally: Tally, stop: threading.Event):
    def step(client: httpx.Client) -> None:
        for agent, agent_pak in agents:
            auth = {"Authorization": agent_pak}
            beat = client.post(
                f"/agents/{agent}/heartbeat", headers=auth, json={"k8s_reachable": True}
            )
            tally.add("heartbeat", beat.status_code, beat.text)
            state = client.get(f"/agents/{agent}/target-state", headers=auth)
            tally.add("target-state", state.status_code, state.text)

    with httpx.Client(base_url=url + "/api/v1", timeout=30) as client:
        _loop(stop, 1.0, lambda: step(client))


def hostile_loop(url: str, fleet: Fleet, tally: Tally, stop: threading.Event) -> None:
    turn = iter(range(10**9))

    def step(client: httpx.Client) -> None:
        n = next(turn)
        content_type, body = HOSTILE[n % len(HOSTILE)]
        headers = {"Content-Type": content_type}
        if n % 3:  # two in three with the generator's PAK, so the body is parsed
            headers["Authorization"] = fleet.generator_pak
        try:
            reply = client.post(
                f"/stacks/{fleet.stack}/deployment-objects", headers=headers, content=body
            )
            tally.add("hostile-body", reply.status_code, reply.text)
        except httpx.TransportError as exc:  # refused before the whole body was sent
            tally.add("hostile-body", 0, type(exc).__name__)

    with httpx.Client(base_url=url + "/api/v1", timeout=60) as client:
        _loop(stop, 0.2, lambda: step(client))


def _status_of(reply: bytes) -> int:
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def slow_loop(port: int, fleet: Fleet, tally: Tally, stop: threading.Event, authed: bool) -> None:
    auth = f"Authorization: {fleet.generator_pak}\r\n" if authed else ""
    head = (
        f"POST /api/v1/stacks/{fleet.stack}/deployment-objects HTTP/1.1\r\nHost: soak\r\n"
        f"{auth}Content-Type: application/yaml\r\nContent-Length: 100000\r\n\r\n"
    ).encode()

    def step() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                sock.sendall(head + b"apiVersion: v1\n")  # then nothing more
                reply = sock.recv(65536)
        except OSError as exc:
            tally.add("slow-body", 0, type(exc).__name__)
            return
        tally.add("slow-body", _status_of(reply), reply[:200].decode(errors="replace"))

    _loop(stop, 0.5, step)


def big_header_loop(port: int, tally: Tally, stop: threading.Event) -> None:
    def step() -> None:
        reply = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(b"GET /api/v1/agents HTTP/1.1\r\nHost: soak\r\nX-Big: ")
                with contextlib.suppress(OSError):  # the broker closes mid-send
                    for _ in range(16):
                        sock.sendall(b"a" * 65536)
                reply = sock.recv(65536)
        except OSError as exc:
            tally.add("big-header", 0, type(exc).__name__)
            return
        tally.add("big-header", _status_of(reply), reply[:200].decode(errors="replace"))

    _loop(stop, 0.5, step)


def probe_loop(url: str, tally: Tally, stop: threading.Event) -> None:
    def step(client: httpx.Client) -> None:
        started = time.perf_counter()
        reply = client.get("/healthz")
        elapsed = (time.perf_counter() - started) * 1000
        tally.add("healthz", reply.status_code)
        with tally.lock:
            tally.healthz_ms.append(elapsed)

    with httpx.Client(base_url=url, timeout=30) as client:
        _loop(stop, 0.2, lambda: step(client))


def footprint(pid: int) -> dict[str, float]:
    """RSS (MiB) of the broker and its children, and the broker's open descriptors."""
    tree = procstat.tree(pid, procstat.all_stats())
    return {
        "rss_mib": round(procstat.rss_bytes(tree) / 2**20, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "processes": len(tree),
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


@contextlib.contextmanager
def broker(dsn: str, workdir: Path) -> Iterator[tuple[str, int, subprocess.Popen[bytes], str]]:
    admin = pak.generate()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKKR")}
    env.update(
        BROKKR__DATABASE__URL=dsn,
        BROKKR__BROKER__HOST="127.0.0.1",
        BROKKR__BROKER__PORT=str(port),
        BROKKR__BROKER__PAK_HASH=admin.hash,
        BROKKR__BROKER__BODY_READ_TIMEOUT=str(BODY_READ_TIMEOUT),
        BROKKR__LOG__LEVEL="warning",
    )
    log = workdir / "broker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "brokkr.broker.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SoakError(f"the broker exited:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SoakError(f"the broker was not ready within 60 s:\n{log.read_text()}")
            time.sleep(0.1)  # waiting for a child process to start
        yield url, port, process, admin.pak
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def run(seconds: float, agents: int, workdir: Path) -> dict[str, Any]:
    """Run the soak; the result dict says what was seen and whether it passed."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = temporary_server()
    try:
        server.start()
        server.psql("CREATE DATABASE brokkr")
        with broker(server.dsn("brokkr"), workdir) as (url, port, process, admin):
            return _soak(url, port, process.pid, admin, seconds=seconds, agents=agents)
    finally:
        remove(server)


def _soak(
    url: str, port: int, pid: int, admin: str, *, seconds: float, agents: int
) -> dict[str, Any]:
    fleet = seed(url, admin, agents)
    tally, stop = Tally(), threading.Event()
    half = max(1, len(fleet.agents) // 2)
    clients: list[Callable[[], None]] = [
        lambda: agents_loop(url, fleet.agents[:half], tally, stop),
        lambda: agents_loop(url, fleet.agents[half:], tally, stop),
        lambda: hostile_loop(url, fleet, tally, stop),
        lambda: hostile_loop(url, fleet, tally, stop),
        lambda: slow_loop(port, fleet, tally, stop, authed=True),
        lambda: slow_loop(port, fleet, tally, stop, authed=True),
        lambda: slow_loop(port, fleet, tally, stop, authed=False),
        lambda: big_header_loop(port, tally, stop),
        lambda: probe_loop(url, tally, stop),
    ]
    threads = [threading.Thread(target=client, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    stop.wait(WARMUP_SECONDS)  # the warm-up: workers started, pools grown
    start = footprint(pid)
    stop.wait(seconds)  # the soak itself
    end = footprint(pid)
    stop.set()
    for thread in threads:
        thread.join(90)
    growth = end["rss_mib"] - start["rss_mib"]
    fd_growth = end["fds"] - start["fds"]
    problems = list(tally.server_errors[:20])
    if growth > RSS_GROWTH_BOUND_MIB:
        problems.append(f"RSS grew {growth:.1f} MiB (bound {RSS_GROWTH_BOUND_MIB})")
    if fd_growth > FD_GROWTH_BOUND:
        problems.append(f"open descriptors grew by {fd_growth} (bound {FD_GROWTH_BOUND})")
    return {
        "seconds": seconds,
        "agents": agents,
        "statuses": dict(sorted(tally.statuses.items())),
        "server_errors": len(tally.server_errors),
        "healthz_ms": {
            "count": len(tally.healthz_ms),
            "p50": percentile(tally.healthz_ms, 0.50),
            "p99": percentile(tally.healthz_ms, 0.99),
            "max": percentile(tally.healthz_ms, 1.0),
        },
        "start": start,
        "end": end,
        "bounds": {"rss_growth_mib": RSS_GROWTH_BOUND_MIB, "fd_growth": FD_GROWTH_BOUND},
        "problems": problems,
        "passed": not problems,
    }
