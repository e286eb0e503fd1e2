"""Run the broker: prepare the database, then serve with uvicorn until SIGTERM.

Shutdown order on SIGTERM: /readyz answers 503 at once; after `shutdown_delay`
the listener closes; in-flight requests get `drain_timeout` seconds to finish;
the pool closes; the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator

import uvicorn

from brokkr.broker import bootstrap
from brokkr.broker.app import create_app
from brokkr.broker.db import migrate
from brokkr.broker.settings import Settings
from brokkr.broker.tls import ReloadingContext
from brokkr.common.signals import GracefulShutdown

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling (GracefulShutdown does it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def prepare_database(settings: Settings) -> list[str]:
    """Apply migrations (when enabled) and the admin bootstrap; return warnings."""
    conninfo = settings.database.conninfo()
    if settings.broker.migrate_on_start:
        applied = migrate.apply(conninfo)
        log.info(
            "database schema at version %d (%d migration(s) applied now)",
            migrate.latest_version(),
            len(applied),
        )
    return bootstrap.ensure_admin(conninfo, settings.broker)


async def serve(settings: Settings, warnings: list[str]) -> bool:
    """Serve until stopped; False when the server failed to start."""
    app = create_app(settings, warnings)
    broker = settings.broker
    config = uvicorn.Config(
        app,
        host=broker.host,
        port=broker.port,
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(broker.drain_timeout),
        server_header=False,
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
        await server.serve()
    finally:
        if watcher:
            watcher.cancel()
    if shutdown.received:
        log.info("shutdown complete")
    return server.started
