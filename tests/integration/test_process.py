"""The broker as a real process: SIGTERM drain, database outage, admin bootstrap."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from brokkr.broker import pak
from brokkr_dev.local.postgres import PostgresServer, remove, temporary_server
from brokkr_dev.local.services import LocalBroker
from tests.fixtures.broker import StartBroker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def broker_for(
    database_url: str,
    log_file: Path,
    database: dict[str, Any] | None = None,
    log_level: str | None = None,
    **broker: Any,
) -> LocalBroker:
    return LocalBroker(
        {
            "database": {"url": database_url, **(database or {})},
            "broker": broker,
            "log": {"format": "json", "level": log_level},
        },
        log_file=log_file,
    )


def test_sigterm_marks_not_ready_finishes_in_flight_request_and_exits_zero(
    start_broker: StartBroker,
):
    broker, admin = start_broker(
        {"broker": {"shutdown_delay": 3, "drain_timeout": 20}, "log": {"format": "json"}}
    )
    assert httpx.get(broker.url + "/readyz").status_code == 200
    body = b'{"name": "in-flight"}'
    request = (
        f"POST /api/v1/generators HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {admin}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as sock:
        sock.sendall(request + body[:5])  # the request is now in flight
        assert broker.process is not None
        broker.process.send_signal(15)
        broker.wait_until(
            lambda: httpx.get(broker.url + "/readyz").status_code == 503,
            5,
            "/readyz to turn 503 after SIGTERM",
        )
        sock.sendall(body[5:])
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 201"), reply
    assert broker.process.wait(30) == 0
    assert "shutdown complete" in broker.log()


@pytest.fixture
def own_postgres() -> PostgresServer:
    server = temporary_server()
    server.start()
    server.psql("CREATE DATABASE brokkr")
    yield server
    remove(server)


# Long enough that psycopg_pool's own doubling delays (1, 2, 4, 8, 16 s after the
# first failure) would next try at about 31 s, 14 s after the database is back.
OUTAGE_SECONDS = 17
# The promise in docs/broker.md: RECONNECT_MAX_DELAY (default 4 s) plus the time a
# request waits for a connection, with room for a loaded machine.
RECOVERY_BOUND_SECONDS = 8


def test_database_outage_is_503_and_recovers_without_restart(
    own_postgres: PostgresServer, tmp_path: Path
):
    admin = pak.generate()
    broker = broker_for(
        own_postgres.dsn("brokkr"),
        tmp_path / "broker.log",
        database={"pool_timeout": 1},
        pak_hash=admin.hash,
    )
    broker.start()
    headers = {"Authorization": admin.pak}

    def agents() -> int:
        return httpx.get(broker.url + "/api/v1/agents", headers=headers, timeout=5).status_code

    try:
        assert agents() == 200
        own_postgres.stop()
        stopped = time.monotonic()

        assert httpx.get(broker.url + "/healthz", timeout=2).status_code == 200
        broker.wait_until(
            lambda: httpx.get(broker.url + "/readyz", timeout=5).status_code == 503,
            5,
            "/readyz to report the outage",
        )
        ready = httpx.get(broker.url + "/readyz", timeout=5)
        assert "database unreachable" in ready.json()["reason"]
        api = httpx.get(broker.url + "/api/v1/agents", headers=headers, timeout=5)
        assert api.status_code == 503
        assert api.json()["code"] == "service_unavailable"
        assert httpx.get(broker.url + "/health", timeout=5).json()["database"]["status"] == (
            "unreachable"
        )
        # The outage lasts OUTAGE_SECONDS; every answer meanwhile stays a clean 503.
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            assert agents() == 503

        own_postgres.start()
        back = time.monotonic()
        broker.wait_until(lambda: agents() == 200, RECOVERY_BOUND_SECONDS, "the API to recover")
        print(f"API answered {time.monotonic() - back:.1f} s after PostgreSQL was back")
        broker.wait_until(
            lambda: httpx.get(broker.url + "/readyz", timeout=5).status_code == 200,
            RECOVERY_BOUND_SECONDS,
            "/readyz to recover",
        )
        assert broker.process is not None and broker.process.poll() is None
    finally:
        broker.kill()


# The promise of issue-level readiness: /readyz is 200 this soon after PostgreSQL is
# back, however many idle connections died with it.
READY_AFTER_RESTART_SECONDS = 10


def pool_connections(broker: LocalBroker) -> dict[str, float]:
    """The pool gauges from /metrics: {"used": n, "idle": n}."""
    found: dict[str, float] = {}
    for line in httpx.get(broker.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("brokkr_db_pool_connections{"):
            state = line.split('state="', 1)[1].split('"', 1)[0]
            found[state] = float(line.rsplit(" ", 1)[1])
    return found


def grow_pool_to(broker: LocalBroker, admin: str, database_url: str, size: int) -> None:
    """Make `size` requests hold a connection at once: each waits on a row lock we hold."""
    http = httpx.Client(base_url=broker.url + "/api/v1", headers={"Authorization": admin})
    generator = http.post("/generators", json={"name": "g"}).json()["generator"]["id"]
    stack = http.post("/stacks", json={"name": "s", "generator_id": generator}).json()["id"]
    statuses: list[int] = []

    def update(index: int) -> None:
        with httpx.Client(headers={"Authorization": admin}, timeout=60) as own:
            reply = own.put(f"{broker.url}/api/v1/stacks/{stack}", json={"description": str(index)})
            statuses.append(reply.status_code)

    with psycopg.connect(database_url) as lock:
        lock.execute("SELECT 1 FROM stacks WHERE id = %s FOR UPDATE", (stack,))
        threads = [threading.Thread(target=update, args=(i,)) for i in range(size)]
        for thread in threads:
            thread.start()
        broker.wait_until(
            lambda: pool_connections(broker).get("used") == size, 30, f"{size} busy connections"
        )
        lock.rollback()
    for thread in threads:
        thread.join(60)
    http.close()
    assert statuses == [200] * size, statuses
    assert pool_connections(broker) == {"used": 0, "idle": size}


def test_readiness_recovers_from_a_database_restart_with_a_full_idle_pool(
    own_postgres: PostgresServer, tmp_path: Path
):
    """Only /readyz is probed after the restart: no API request helps the pool."""
    admin = pak.generate()
    pool_max = 20
    broker = broker_for(
        own_postgres.dsn("brokkr"),
        tmp_path / "broker.log",
        database={"pool_max_size": pool_max, "pool_timeout": 30},
        pak_hash=admin.hash,
    )
    broker.start()
    try:
        grow_pool_to(broker, admin.pak, own_postgres.dsn("brokkr"), pool_max)
        assert httpx.get(broker.url + "/readyz", timeout=5).status_code == 200
        own_postgres.stop()
        own_postgres.start()
        back = time.monotonic()
        broker.wait_until(
            lambda: httpx.get(broker.url + "/readyz", timeout=5).status_code == 200,
            READY_AFTER_RESTART_SECONDS,
            "/readyz to answer 200 after the restart",
        )
        print(f"/readyz answered 200 {time.monotonic() - back:.1f} s after PostgreSQL was back")
    finally:
        broker.kill()


def test_public_default_admin_hash_is_refused(database_url: str, tmp_path: Path):
    broker = broker_for(database_url, tmp_path / "broker.log", pak_hash=pak.PUBLIC_DEFAULT_HASH)
    broker.start(wait=False)
    assert broker.process is not None
    assert broker.process.wait(30) == 1
    assert "publicly known default" in broker.log()
    assert "ALLOW_INSECURE_DEFAULT_PAK" in broker.log()


def test_public_default_admin_hash_allowed_for_development_warns(database_url: str, tmp_path: Path):
    broker = broker_for(
        database_url,
        tmp_path / "broker.log",
        pak_hash=pak.PUBLIC_DEFAULT_HASH,
        allow_insecure_default_pak=True,
    )
    broker.start()
    try:
        health = httpx.get(broker.url + "/health").json()
        assert health["status"] == "degraded"
        assert any("publicly known default" in w for w in health["warnings"])
        assert "publicly known default" in broker.log()
        who = httpx.post(
            broker.url + "/api/v1/auth/pak", headers={"Authorization": pak.PUBLIC_DEFAULT_PAK}
        )
        assert who.json()["admin"] is True
    finally:
        broker.kill()


def test_first_start_mints_admin_pak_into_a_private_file_and_never_logs_it(
    database_url: str, tmp_path: Path
):
    pak_file = tmp_path / "secrets" / "admin.pak"
    broker = broker_for(
        database_url, tmp_path / "broker.log", log_level="debug", admin_pak_file=pak_file
    )
    broker.start()
    try:
        assert stat.S_IMODE(os.stat(pak_file).st_mode) == 0o600
        minted = pak_file.read_text().strip()
        who = httpx.post(broker.url + "/api/v1/auth/pak", headers={"Authorization": minted})
        assert who.status_code == 200 and who.json()["admin"] is True
        assert str(pak_file) in broker.log()
        assert minted not in broker.log()
        lines = broker.log().splitlines()
        assert lines and all(json.loads(line)["level"] for line in lines)
        assert pak.long_part(minted) not in broker.log()
    finally:
        broker.kill()


def test_no_admin_hash_and_no_pak_file_is_a_clear_error(database_url: str, tmp_path: Path):
    broker = broker_for(database_url, tmp_path / "broker.log")
    broker.start(wait=False)
    assert broker.process is not None
    assert broker.process.wait(30) == 1
    assert "BROKKR__BROKER__ADMIN_PAK_FILE" in broker.log()


def test_workers_share_the_port_and_stop_together(start_broker: StartBroker):
    broker, admin = start_broker({"broker": {"workers": 2}, "log": {"format": "json"}})
    for _ in range(10):
        reply = httpx.get(broker.url + "/api/v1/agents", headers={"Authorization": admin})
        assert reply.status_code == 200
    assert "started 2 workers" in broker.log()
    assert broker.stop(timeout=30) == 0
