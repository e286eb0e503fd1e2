"""Loopback ports and condition polling shared by the automation and the tests.

Services here (PostgreSQL, the broker, the agent, registries, clusters) start on
ports picked at run time, because several runs share one machine; callers then poll
for a condition with a deadline instead of sleeping for a fixed time.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

HOST = "127.0.0.1"
T = TypeVar("T")

# Errors that mean "not yet" while a service starts: refused connections and
# request errors (requests' exceptions are OSErrors), or a JSON key not there yet.
NOT_YET: tuple[type[Exception], ...] = (OSError, KeyError)


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_or_free(preferred: int) -> int:
    """`preferred` when nothing listens there, else a free port picked by the kernel."""
    with socket.socket() as sock:
        try:
            sock.bind((HOST, preferred))
        except OSError:
            sock.bind((HOST, 0))
        return int(sock.getsockname()[1])  # the kernel's pick when preferred is 0


def wait_for(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
    not_yet: tuple[type[Exception], ...] = NOT_YET,
) -> T:
    """Call `condition` until it returns something truthy; TimeoutError naming `what`.

    Exceptions of the `not_yet` kinds count as "not yet"; the last one is reported.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    last_value: T | None = None
    while True:
        try:
            last_value = condition()
            if last_value:
                return last_value
        except not_yet as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f"last error: {last_error}" if last_error else f"last: {last_value!r}"
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} ({detail})")
        time.sleep(interval)
