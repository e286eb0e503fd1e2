"""Graceful-shutdown signal handling for asyncio services (broker and agent).

`GracefulShutdown` turns the first SIGTERM/SIGINT into an orderly stop: it runs
`on_drain` at once (for example: mark not ready), waits `delay` seconds so load
balancers notice, then runs `on_stop`. A second signal runs `on_force`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)


class GracefulShutdown:
    """Install with `install(loop)` once the event loop runs."""

    def __init__(
        self,
        on_drain: Callable[[], None],
        on_stop: Callable[[], None],
        on_force: Callable[[], None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.on_drain = on_drain
        self.on_stop = on_stop
        self.on_force = on_force
        self.delay = delay
        self.received: signal.Signals | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def install(
        self,
        loop: asyncio.AbstractEventLoop,
        signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
    ) -> None:
        for sig in signals:
            loop.add_signal_handler(sig, self._handle, sig)

    def _handle(self, sig: signal.Signals) -> None:
        if self.received is not None:
            log.warning("second %s: stopping without waiting for requests", sig.name)
            if self.on_force:
                self.on_force()
            return
        self.received = sig
        log.info("%s received: draining (not ready), stopping in %.1fs", sig.name, self.delay)
        self.on_drain()
        task = asyncio.get_running_loop().create_task(self._stop_later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_later(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.on_stop()
