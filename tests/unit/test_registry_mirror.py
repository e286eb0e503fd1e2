"""Reading the engine's loopback mirror and the test registry's access log."""

from __future__ import annotations

from tests.fixtures.mirror import loopback_mirror
from tests.fixtures.registry import Request, access_log_requests


def test_the_first_plain_http_loopback_mirror_is_chosen():
    assert loopback_mirror(["http://127.0.0.1:5057/"]) == "127.0.0.1:5057"
    assert loopback_mirror(["https://mirror.gcr.io", "http://127.0.0.2:5000"]) == ("127.0.0.2:5000")
    assert loopback_mirror(["http://127.0.0.1"]) == "127.0.0.1:80"


def test_mirrors_a_test_cannot_serve_are_passed_over():
    assert loopback_mirror([]) is None
    assert loopback_mirror(["https://127.0.0.1:5057"]) is None  # needs a trusted certificate
    assert loopback_mirror(["http://localhost:5057"]) is None  # a name, not an address
    assert loopback_mirror(["http://10.0.0.1:5000", "http://mirror.example"]) is None


LOG = """\
time="2026-12-03T16:36:59Z" level=warning msg="No HTTP secret provided"
127.0.0.1 - - [03/Dec/2026:16:37:00 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
time="2026-12-03T16:37:00Z" level=error msg="response completed with error" http.request.uri="/v2/kindest/node/manifests/sha256:00" http.response.status=404
127.0.0.1 - - [03/Dec/2026:16:37:00 +0000] "HEAD /v2/kindest/node/manifests/sha256:00 HTTP/1.1" 404 188 "" "docker/28.2.2"
"""


def test_the_access_log_gives_each_answered_request_once():
    assert access_log_requests(LOG) == [
        Request("GET", "/v2/", 200),
        Request("HEAD", "/v2/kindest/node/manifests/sha256:00", 404),
    ]
