"""Helpers to run the broker in tests: in-process (TestClient) or as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
from starlette.testclient import TestClient

from brokkr.broker import bootstrap, pak
from brokkr.broker.app import create_app
from brokkr.broker.settings import Settings, load_settings
from brokkr_dev.base.localnet import free_port


def settings_for(database_url: str, admin_hash: str, **broker: Any) -> Settings:
    env = {"BROKKR__DATABASE__URL": database_url, "BROKKR__BROKER__PAK_HASH": admin_hash}
    env.update({f"BROKKR__BROKER__{k.upper()}": str(v) for k, v in broker.items()})
    return load_settings(env)


class Api:
    """A TestClient with PAK helpers: `api.get(path, pak=...)`.

    The TestClient answers with httpx2 responses (Starlette's preferred client);
    calls to a broker process below use plain httpx.
    """

    def __init__(self, client: TestClient, admin: str) -> None:
        self.client = client
        self.admin = admin

    def call(self, method: str, path: str, pak: str | None = "admin", **kw: Any) -> httpx2.Response:
        headers = dict(kw.pop("headers", {}))
        if pak is not None:
            headers["Authorization"] = f"Bearer {self.admin if pak == 'admin' else pak}"
        return self.client.request(method, "/api/v1" + path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx2.Response:
        return self.call("DELETE", path, **kw)


@contextmanager
def in_process(database_url: str, **broker: Any) -> Iterator[Api]:
    """The broker app on a fresh database, with a known admin PAK."""
    admin = pak.generate()
    settings = settings_for(database_url, admin.hash, **broker)
    warnings = bootstrap.ensure_admin(settings.database.conninfo(), settings.broker)
    with TestClient(create_app(settings, warnings), raise_server_exceptions=True) as client:
        yield Api(client, admin.pak)


@dataclass
class BrokerProcess:
    """`brokkr-broker serve` as a child process."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    scheme: str = "http"
    process: subprocess.Popen[str] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, log_path: Path, wait: bool = True, verify: Any = True) -> None:
        self.log_path = log_path
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BROKKR")},
            "BROKKR__BROKER__HOST": "127.0.0.1",
            "BROKKR__BROKER__PORT": str(self.port),
            **self.env,
        }
        log = open(log_path, "w")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "brokkr.broker.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        if wait:
            self.wait_until(lambda: self.healthy(verify), 30, "the broker to answer /healthz")

    def healthy(self, verify: Any = True) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"broker exited {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def wait_until(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log()}")

    def terminate(self, timeout: float = 30) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
