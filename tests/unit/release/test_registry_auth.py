"""The Bearer token flow that ghcr.io uses, against a local stand-in (ghcr.io cannot be
reached from tests; the local registry has no authentication)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.registry import Registry
from tests.fixtures.http import QuietHandler, Recorder

USER, PASSWORD = "maintainer", "test-password-not-a-secret"
TOKEN = "issued-token"


class Server(Recorder):
    def __init__(self) -> None:
        super().__init__(Handler)
        self.token_requests: list[dict] = []


class Handler(QuietHandler):
    server: Server

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/token":
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            self.server.token_requests.append(query)
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                return
            self._send(200, {"token": TOKEN})
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = (
                f'Bearer realm="http://{self.server.host}/token",service="stand-in",'
                'scope="repository:org/brokkr-broker:pull"'
            )
            self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge})
            return
        self._send(200, {"name": "org/brokkr-broker", "tags": ["v1.0.0", "latest"]})


@pytest.fixture
def server() -> Iterator[Server]:
    instance = Server()
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    try:
        yield instance
    finally:
        instance.shutdown()
        instance.server_close()
        thread.join(timeout=5)


def test_token_exchange_with_credentials_asks_for_push_scope(server):
    registry = Registry(server.host, USER, PASSWORD)
    assert registry.tags("org/brokkr-broker") == {"v1.0.0", "latest"}
    assert registry.tags("org/brokkr-broker") == {"v1.0.0", "latest"}  # token reused
    assert server.token_requests == [
        {"service": "stand-in", "scope": "repository:org/brokkr-broker:pull,push"}
    ]


def test_wrong_credentials_are_a_clear_error(server):
    registry = Registry(server.host, USER, "wrong")
    with pytest.raises(ReleaseError, match=r"token request failed \(401\)"):
        registry.tags("org/brokkr-broker")


@pytest.mark.parametrize(
    ("host", "plain_http", "base"),
    [
        ("127.0.0.1:5000", None, "http://127.0.0.1:5000/v2"),
        ("localhost:5000", None, "http://localhost:5000/v2"),
        ("ghcr.io", None, "https://ghcr.io/v2"),
        ("172.18.0.1:5000", None, "https://172.18.0.1:5000/v2"),  # private is not trusted
        ("172.18.0.1:5000", True, "http://172.18.0.1:5000/v2"),  # a test mirror, told
        ("127.0.0.1:5000", False, "https://127.0.0.1:5000/v2"),
    ],
)
def test_plain_http_only_for_loopback_unless_the_caller_says(host, plain_http, base):
    assert Registry(host, plain_http=plain_http).base == base
