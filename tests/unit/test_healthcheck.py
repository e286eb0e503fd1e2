"""The images' HEALTHCHECK probe against a real local HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brokkr.common import healthcheck


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_2xx_is_healthy(server):
    assert healthcheck.main([f"{server}/healthz"]) == 0


def test_5xx_is_unhealthy(server, capsys):
    assert healthcheck.main([f"{server}/readyz", "2"]) == 1
    assert "answered 503" in capsys.readouterr().err


def test_refused_connection_is_unhealthy(capsys):
    assert healthcheck.main(["http://127.0.0.1:1/healthz", "1"]) == 1
    assert "unreachable" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["file:///etc/passwd"], ["http://x", "soon"], ["a", "1", "b"], ["a", "1", "2", "3"]],
)
def test_bad_arguments_fail_with_usage(argv, capsys):
    assert healthcheck.main(argv) in {1, 2}
    assert capsys.readouterr().err


def test_placeholders_follow_the_environment_with_defaults():
    url = "http://127.0.0.1:{BROKKR__BROKER__PORT:3000}/healthz"
    assert healthcheck.expand(url, {}) == "http://127.0.0.1:3000/healthz"
    assert healthcheck.expand(url, {"BROKKR__BROKER__PORT": "4000"}) == (
        "http://127.0.0.1:4000/healthz"
    )


def test_configured_port_is_probed(server, monkeypatch):
    port = server.rsplit(":", 1)[1]
    monkeypatch.setenv("BROKKR_TEST_PORT", port)
    assert healthcheck.main(["http://127.0.0.1:{BROKKR_TEST_PORT:1}/healthz"]) == 0


class _Late(BaseHTTPRequestHandler):
    """Answers 503 to the first two requests, then 200 (a policy that admits late)."""

    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        self.send_response(200 if type(self).seen > 2 else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_retry_window_tries_again_until_healthy(capsys):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Late)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/readyz"
    try:
        assert healthcheck.main([url, "2"]) == 1, "without a window: one try"
        assert healthcheck.main([url, "2", "10"]) == 0
        assert "trying again" in capsys.readouterr().err
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_retry_window_ends_unhealthy_when_nothing_answers(capsys):
    assert healthcheck.main(["http://127.0.0.1:1/healthz", "1", "2.5"]) == 1
    err = capsys.readouterr().err
    assert err.count("trying again") >= 1 and "unreachable" in err.splitlines()[-1]
