"""Run the broker: prepare the database, then serve with uvicorn until SIGTERM.

Shutdown order on SIGTERM: /readyz answers 503 at once; after `shutdown_delay`
the listener closes; in-flight requests get `drain_timeout` seconds to finish;
the pool closes; the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import uvicorn

from brokkr.broker import bootstrap
from brokkr.broker.app import create_app
from brokkr.broker.db import migrate
from brokkr.broker.protocol import bounded_headers
from brokkr.broker.settings import Settings
from brokkr.broker.tls import ReloadingContext
from brokkr.common import telemetry
from brokkr.common.signals import GracefulShutdown

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling (GracefulShutdown does it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def prepare_database(settings: Settings) -> list[str]:
    """Apply migrations (when enabled) and the admin bootstrap; return warnings.

    An unreachable database is retried with backoff for `database.startup_wait`
    seconds, then the error propagates (the CLI exits 1 naming the fix).
    """
    deadline = time.monotonic() + settings.database.startup_wait
    delay = 0.5
    while True:
        try:
            return _prepare_database(settings)
        except psycopg.OperationalError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning(
                "database not reachable yet (%s); retrying for up to %.0f s", reason, remaining
            )
            time.sleep(min(delay, remaining))  # product back-off, not test syncing
            delay = min(delay * 2, 5.0)


def _prepare_database(settings: Settings) -> list[str]:
    conninfo = settings.database.conninfo()
    # A schema from a newer broker that breaks this one stops the start here
    # (SchemaTooNewError: the CLI names what to do); a compatible one only warns.
    warnings = migrate.check(conninfo)
    if settings.broker.migrate_on_start:
        applied = migrate.apply(conninfo)
        log.info(
            "database schema at version %d (%d migration(s) applied now)",
            migrate.latest_version(),
            len(applied),
        )
    return warnings + bootstrap.ensure_admin(conninfo, settings.broker)


async def serve(settings: Settings, warnings: list[str], sock: socket.socket | None = None) -> bool:
    """Serve until stopped (on `sock` when given); False when the server failed to start."""
    with telemetry.traced(settings.telemetry, "brokkr-broker") as tracing:
        return await _serve(settings, warnings, sock, tracing)


async def _serve(
    settings: Settings, warnings: list[str], sock: socket.socket | None, tracing: bool
) -> bool:
    app = create_app(settings, warnings)
    tune_garbage_collector()
    broker = settings.broker
    served: Any = app
    if tracing:
        from brokkr.broker.tracing import TracingApp  # noqa: PLC0415

        served = TracingApp(app)
        log.info("tracing to %s", settings.telemetry.endpoint)
    config = uvicorn.Config(
        served,
        host=broker.host,
        port=broker.port,
        # httptools, with the header section bounded (431 past max_header_bytes)
        http=bounded_headers(broker.max_header_bytes),
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(broker.drain_timeout),
        server_header=False,
        # nothing reads the client address: skip X-Forwarded-* handling per request
        proxy_headers=False,
    )
    config.load()
    tls: ReloadingContext | None = None
    if broker.tls.enabled:
        tls = ReloadingContext(broker.tls.cert_file or "", broker.tls.key_file or "")
        config.ssl = tls.context
    server = _Server(config)

    def force() -> None:
        server.force_exit = True

    def stop() -> None:
        server.should_exit = True

    shutdown = GracefulShutdown(
        on_drain=lambda: setattr(app.state.health, "draining", True),
        on_stop=stop,
        on_force=force,
        delay=broker.shutdown_delay,
    )
    shutdown.install(asyncio.get_running_loop())
    watcher = asyncio.create_task(tls.watch(broker.tls.reload_interval)) if tls else None
    log.info(
        "broker listening on %s://%s:%d",
        "https" if tls else "http",
        broker.host,
        broker.port,
    )
    try:
        await server.serve(sockets=[sock] if sock else None)
    finally:
        if watcher:
            watcher.cancel()
    if shutdown.received:
        log.info("shutdown complete")
    return server.started


# Young objects between collections (Python's default 700). A request in flight
# holds a few dozen, so with the default a collection ran every ~15 requests and
# walked the objects of all requests in flight; garbage here is nearly all freed
# by reference counting, so collecting rarely costs no memory worth counting.
YOUNG_OBJECTS_BETWEEN_COLLECTIONS = 10_000


def tune_garbage_collector() -> None:
    """Keep the objects made at start-up (modules, app, routes) out of every later
    garbage collection, and collect young objects less often. Without the freeze
    each full collection walked ~49k objects (30 ms of CPU on the loaded test
    machine) while every request in flight waited: the slowest 1-2 %."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_BETWEEN_COLLECTIONS, older, oldest)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket that forked workers share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_workers(settings: Settings, warnings: list[str], run: Any) -> int:
    """Fork `workers` server processes on one shared socket and supervise them.

    SIGTERM/SIGINT are forwarded to every worker, which drains as a single
    server would; the supervisor exits 0 when all workers exited 0. A worker
    that dies on its own stops the others, so the orchestrator restarts the pod.
    """
    sock = listen(settings.broker.host, settings.broker.port)
    children: dict[int, int] = {}
    for index in range(settings.broker.workers):
        pid = os.fork()
        if pid == 0:  # worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0 if run(serve(settings, warnings, sock)) else 3
            os._exit(code)
        children[pid] = index
    log.info("started %d workers: %s", len(children), ", ".join(map(str, children)))
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        pid, raw = os.wait()
        children.pop(pid, None)
        code = os.waitstatus_to_exitcode(raw)
        if code != 0:
            status = status or (code if code > 0 else 1)
        if not stopping:
            log.error("worker %d exited with %d; stopping the others", pid, code)
            forward(signal.SIGTERM, None)
            status = status or 1
    sock.close()
    return status
