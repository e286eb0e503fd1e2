"""The admin client against a server that drops a kept-alive connection while idle."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from brokkr_dev.local.broker_admin import BrokerAdmin

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"


class DroppingServer:
    """Answers the first request of each connection, then reads the next request and
    closes the connection without answering (a keep-alive timeout racing the client)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[str] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                self.requests.append(connection.recv(65536).split(b"\r\n", 1)[0].decode())
                connection.sendall(ANSWER)
                second = connection.recv(65536)
                if second:
                    self.requests.append(second.split(b"\r\n", 1)[0].decode() + " (dropped)")


@pytest.fixture
def server() -> Iterator[DroppingServer]:
    running = DroppingServer()
    yield running
    running.listener.close()


def test_a_get_on_a_dropped_connection_is_sent_again_on_a_new_one(server: DroppingServer):
    admin = BrokerAdmin(server.url, "pak")
    assert admin.call("GET", "/agents") == []
    assert admin.call("GET", "/stacks") == []
    assert server.requests == [
        "GET /api/v1/agents HTTP/1.1",
        "GET /api/v1/stacks HTTP/1.1 (dropped)",
        "GET /api/v1/stacks HTTP/1.1",
    ]


def test_a_post_on_a_dropped_connection_is_not_sent_again(server: DroppingServer):
    admin = BrokerAdmin(server.url, "pak")
    admin.call("GET", "/agents")
    with pytest.raises(requests.ConnectionError):
        admin.call("POST", "/stacks", {"name": "x"})
    assert server.requests[-1] == "POST /api/v1/stacks HTTP/1.1 (dropped)"
