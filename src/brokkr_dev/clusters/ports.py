"""Free TCP ports for one cluster, picked at start and remembered in its directory.

Several clusters (and test runs) share this machine, so no port is fixed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

HOST = "127.0.0.1"


def allocate(names: Iterable[str], host: str = HOST) -> dict[str, int]:
    """One distinct free port per name.

    All sockets stay bound until every port is chosen, so the kernel cannot hand the
    same port out twice; they are closed before the caller binds them itself.
    """
    ports: dict[str, int] = {}
    with ExitStack() as stack:
        for name in names:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports[name] = sock.getsockname()[1]
    return ports


def in_use(port: int, host: str = HOST) -> bool:
    """True when something accepts connections on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def save(path: Path, ports: dict[str, int]) -> None:
    path.write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")


def load(path: Path) -> dict[str, int]:
    """The ports a cluster was started with, or an empty dict if it never started."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete it and start again") from exc
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in raw.items()
    ):
        raise ValueError(f"{path} must map names to port numbers; delete it and start again")
    return raw
