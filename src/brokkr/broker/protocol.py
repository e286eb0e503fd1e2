"""uvicorn's httptools protocol with a bound on the request's header section.

httptools (llhttp) has no limit of its own: it gathers a header of any length in
memory before anything above it sees the request, so a 4 MB header used to be
accepted and answered. Here the bytes of the request line and headers are counted
as they arrive, and past `max_bytes` the connection gets 431 and is closed at
once, before the ASGI app runs; other connections (the probes) are not affected.

A header section that is complete is measured from what the parser gathered
(URL, names and values as httptools hands them over, before uvicorn trims trailing
whitespace off a value); one still arriving is counted per read, so a client that
streams megabytes is cut off after at most one read buffer past the bound.

Built on uvicorn 0.55's `HttpToolsProtocol`: its `on_message_begin`,
`on_header`, `on_headers_complete`, `on_body`, `on_message_complete`,
`data_received`, `url`, `cycle` and `transport`. Re-run
tests/integration/test_http_bounds.py when uvicorn changes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

SETTING = "BROKKR__BROKER__MAX_HEADER_BYTES"


def _answer_431(max_bytes: int) -> bytes:
    body = json.dumps(
        {
            "code": "request_header_fields_too_large",
            "message": f"the request line and headers exceed {max_bytes} bytes ({SETTING})",
            "details": {"max_bytes": max_bytes},
        },
        separators=(",", ":"),
    ).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class _BoundedHeaders(HttpToolsProtocol):
    max_bytes = 0  # set by bounded_headers()
    refusal = b""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._idle = True  # between requests: the next byte starts a request line
        self._in_header_section = True
        self._header_bytes = 0
        self._parsed_header_bytes = 0
        self._requests_begun = 0
        self._requests_ended = 0

    # A header section that completes: measured from what the parser gathered.
    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._requests_begun += 1
        self._idle = False
        self._in_header_section = True
        self._header_bytes = 0
        self._parsed_header_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        # Counted here, as received: since 0.55 uvicorn strips trailing spaces and
        # tabs from the value it keeps in self.headers, so padding would not count.
        self._parsed_header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_header_section = False
        if len(self.url) + self._parsed_header_bytes > self.max_bytes:
            self._refuse()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._requests_ended += 1
        self._idle = True
        self._in_header_section = True
        self._header_bytes = 0

    # A header section still arriving: counted per read, so it is cut off early.
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        idle, begun, ended = self._idle, self._requests_begun, self._requests_ended
        super().data_received(data)
        if self._refused or not self._in_header_section or self.transport.is_closing():
            return
        started, finished = self._requests_begun - begun, self._requests_ended - ended
        if started == finished == 0:  # the whole read is in one header section
            self._header_bytes += len(data)
        elif started == 1 and finished == 0 and idle:  # the whole read is the new request's
            self._header_bytes = len(data)
        # else a request ended in this read (its body's tail), or pipelined requests
        # share it: counting starts with the next read
        if self._header_bytes > self.max_bytes:
            self._refuse()

    def _refuse(self) -> None:
        self._refused = True
        log.debug("request header section over %d bytes: 431, connection closed", self.max_bytes)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(self.refusal)
        # else an earlier pipelined request is still being answered: only close.
        self.transport.close()


def bounded_headers(max_bytes: int) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http` setting, refusing larger header sections."""
    return type(
        "BoundedHeadersProtocol",
        (_BoundedHeaders,),
        {"max_bytes": max_bytes, "refusal": _answer_431(max_bytes)},
    )
