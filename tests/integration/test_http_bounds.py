"""Bounds of the HTTP layer on a real broker process: the header section (431),
authentication before any body is read (401 at once), media types by parsed type."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from brokkr.broker import pak
from tests.fixtures.broker import AdminBroker, StartBroker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MAX_HEADER_BYTES = 16 * 1024
# The broker waits this long for a body: an answer well before it was not waiting.
BODY_READ_TIMEOUT = 30
HEALTHZ_BOUND = 1.0


@pytest.fixture
def broker(start_broker: StartBroker) -> AdminBroker:
    return start_broker(
        {
            "broker": {
                "max_header_bytes": MAX_HEADER_BYTES,
                "body_read_timeout": BODY_READ_TIMEOUT,
            },
            "log": {"format": "json"},
        }
    )


def read_reply(sock: socket.socket) -> bytes:
    """Everything the broker sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def send_huge_header(port: int, total: int, replies: list[bytes]) -> None:
    """Stream one header of `total` bytes; keep what the broker answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ")
        sent = 0
        try:
            while sent < total:
                sock.sendall(b"a" * 65536)
                sent += 65536
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the broker closed the connection: what we want
        try:
            replies.append(read_reply(sock))
        except ConnectionResetError:
            replies.append(b"")


def test_a_header_section_past_the_bound_is_431_and_healthz_keeps_answering(
    broker: AdminBroker,
):
    process, _ = broker
    # Just under the bound: served as usual.
    fine = httpx.get(process.url + "/healthz", headers={"X-Filler": "a" * (MAX_HEADER_BYTES // 2)})
    assert fine.status_code == 200
    replies: list[bytes] = []
    hostile = [
        threading.Thread(target=send_huge_header, args=(process.port, 4 * 1024 * 1024, replies))
        for _ in range(4)
    ]
    for thread in hostile:
        thread.start()
    slowest = 0.0
    with httpx.Client(base_url=process.url, timeout=10) as probe:
        while any(thread.is_alive() for thread in hostile):
            started = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
    for thread in hostile:
        thread.join()
    assert len(replies) == 4
    for reply in replies:
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), reply[:200]
        assert b"connection: close" in head.lower()
        assert b'"code":"request_header_fields_too_large"' in body
        assert b"BROKKR__BROKER__MAX_HEADER_BYTES" in body
    assert slowest < HEALTHZ_BOUND
    # Sent in one piece, and in the request line: the same bound.
    one_piece = httpx.get(process.url + "/healthz", headers={"X-A": "a" * (2 * MAX_HEADER_BYTES)})
    assert one_piece.status_code == 431
    long_url = httpx.get(process.url + "/healthz?x=" + "a" * (2 * MAX_HEADER_BYTES))
    assert long_url.status_code == 431
    assert process.ready()


def test_trailing_whitespace_of_a_header_value_counts_toward_the_bound(broker: AdminBroker):
    """Trailing spaces and tabs of a value are sent and parsed, so they count, even
    though uvicorn (0.55) drops them from the value it keeps."""
    process, _ = broker
    padding = 2 * MAX_HEADER_BYTES
    for line in (b"X-A: a" + b" " * padding, b"X-A: a" + b"\t" * padding):
        with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n")
            reply = read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert process.ready()


def announce_body(port: int, path: str, authorization: str | None, length: int) -> bytes:
    """Send only the head of a POST announcing `length` bytes; return the answer."""
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/yaml\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_READ_TIMEOUT / 3) as sock:
        sock.sendall(head.encode())
        return read_reply(sock)


def test_an_unknown_client_gets_401_before_its_body_is_read(broker: AdminBroker):
    process, admin = broker
    with httpx.Client(base_url=process.url + "/api/v1", headers={"Authorization": admin}) as http:
        generator = http.post("/generators", json={"name": "g"}).json()["generator"]["id"]
        stack = http.post("/stacks", json={"name": "s", "generator_id": generator}).json()["id"]
    path = f"/api/v1/stacks/{stack}/deployment-objects"
    unknown = pak.generate().pak
    for authorization in (None, "Bearer not-a-pak", unknown):
        started = time.monotonic()
        # 10 MiB announced, not one byte of it sent: the broker must not wait for it.
        reply = announce_body(process.port, path, authorization, 10 * 1024 * 1024)
        seconds = time.monotonic() - started
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401 "), reply[:300]
        assert b"connection: close" in head.lower()
        assert b'"code":"unauthorized"' in body
        assert seconds < 5, seconds
    # The heartbeat authenticates inside its grouped statement (one round trip per
    # group): before its body only the PAK's shape is checked, so a missing or
    # malformed PAK is 401 at once too.
    heartbeat = f"/api/v1/agents/{stack}/heartbeat"
    for authorization in (None, "Bearer not-a-pak"):
        reply = announce_body(process.port, heartbeat, authorization, 200 * 1024)
        assert reply.startswith(b"HTTP/1.1 401 "), reply[:300]
    # The same on a JSON route, and with a chunked body that never comes.
    chunked = (
        "POST /api/v1/generators HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
        sock.sendall(chunked.encode())
        assert read_reply(sock).startswith(b"HTTP/1.1 401 ")
    # With a valid PAK the body is read as before.
    yaml_text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    created = httpx.post(
        process.url + path,
        content=yaml_text,
        headers={"Authorization": admin, "Content-Type": "application/yaml"},
        timeout=60,  # the first upload starts the YAML worker process
    )
    assert created.status_code == 201, created.text


MEDIA_TYPES = [
    ("application/yaml", 201),
    ("text/x-yaml; charset=utf-8", 201),
    ("text/plain", 201),
    # Matched by substring before, and so read as YAML:
    ("application/not-yaml", 415),
    ("text/plainish", 415),
    ("image/yaml", 415),
    # Bodies are read as UTF-8; a client that says otherwise is told so.
    ("text/plain; charset=latin-1", 415),
    ("yaml", 415),
]


def test_deployment_object_media_types_are_matched_by_parsed_type(
    broker: AdminBroker,
):
    process, admin = broker
    with httpx.Client(
        base_url=process.url + "/api/v1", headers={"Authorization": admin}, timeout=60
    ) as http:
        generator = http.post("/generators", json={"name": "g"}).json()["generator"]["id"]
        stack = http.post("/stacks", json={"name": "s", "generator_id": generator}).json()["id"]
        for index, (content_type, status) in enumerate(MEDIA_TYPES):
            reply = http.post(
                f"/stacks/{stack}/deployment-objects",
                content=f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{index}}}\n",
                headers={"Content-Type": content_type},
            )
            assert reply.status_code == status, (content_type, reply.text)
            if status == 415:
                assert reply.json()["code"] == "unsupported_media_type"
                assert content_type in reply.json()["message"]
        # Bodies far larger than the header bound, on the same kept-alive connection:
        # the header count must not run on into them (the end of a body once did).
        large = "---\n".join(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big{n}}}\ndata: {{k: v}}\n"
            for n in range(4000)
        )
        assert len(large) > 10 * MAX_HEADER_BYTES
        for _ in range(3):
            reply = http.post(
                f"/stacks/{stack}/deployment-objects",
                content=large,
                headers={"Content-Type": "application/yaml"},
            )
            assert reply.status_code == 201, reply.text
