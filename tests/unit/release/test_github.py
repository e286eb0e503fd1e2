"""The GitHub release through the REST API, against a local HTTP stand-in that
checks every request (GitHub itself cannot be reached from tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.github import GitHub
from brokkr_dev.release.version import parse

TOKEN = "test-token-not-a-secret"


class StandIn(ThreadingHTTPServer):
    """Answers like api.github.com for one repository's releases; records requests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.releases: dict[str, dict] = {}
        self.status_override: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: dict | None) -> bool:
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"message": "Bad credentials"})
            return False
        if self.server.status_override:
            self._reply(self.server.status_override, {"message": "Resource not accessible"})
            return False
        return True

    def do_GET(self) -> None:
        if not self._record(None):
            return
        prefix = "/repos/colliery-io/brokkr/releases/tags/"
        tag = self.path.removeprefix(prefix)
        if self.path.startswith(prefix) and tag in self.server.releases:
            self._reply(200, self.server.releases[tag])
        else:
            self._reply(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._record(body):
            return
        if self.path != "/repos/colliery-io/brokkr/releases":
            self._reply(404, {"message": "Not Found"})
            return
        release = {"html_url": f"https://github.example/releases/{body['tag_name']}", **body}
        self.server.releases[body["tag_name"]] = release
        self._reply(201, release)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_creates_release_with_the_documented_request(stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, stand_in.url)
    url = github.ensure_release(parse("v1.2.0"), "# notes", latest=True)
    assert url == "https://github.example/releases/v1.2.0"
    lookup, create = stand_in.requests
    assert (lookup["method"], lookup["path"]) == (
        "GET",
        "/repos/colliery-io/brokkr/releases/tags/v1.2.0",
    )
    assert (create["method"], create["path"]) == ("POST", "/repos/colliery-io/brokkr/releases")
    assert create["headers"]["Accept"] == "application/vnd.github+json"
    assert create["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    assert create["body"] == {
        "tag_name": "v1.2.0",
        "name": "Brokkr v1.2.0",
        "body": "# notes",
        "draft": False,
        "prerelease": False,
        "make_latest": "true",
    }


def test_prerelease_and_older_line_are_not_latest(stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, stand_in.url)
    github.ensure_release(parse("v1.3.0-rc.1"), "rc", latest=True)
    github.ensure_release(parse("v1.0.5"), "fix", latest=False)
    bodies = [r["body"] for r in stand_in.requests if r["method"] == "POST"]
    assert [(b["prerelease"], b["make_latest"]) for b in bodies] == [
        (True, "false"),
        (False, "false"),
    ]


def test_existing_release_is_left_alone(stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, stand_in.url)
    first = github.ensure_release(parse("v1.0.0"), "one")
    again = github.ensure_release(parse("v1.0.0"), "two")
    assert first == again
    assert [r["method"] for r in stand_in.requests] == ["GET", "POST", "GET"]
    assert stand_in.releases["v1.0.0"]["body"] == "one"


def test_refusals_are_clear(stand_in):
    with pytest.raises(ReleaseError, match="GITHUB_TOKEN is empty"):
        GitHub("colliery-io/brokkr", "", stand_in.url)
    with pytest.raises(ReleaseError, match=r"token needs `contents: write`"):
        GitHub("colliery-io/brokkr", "wrong", stand_in.url).ensure_release(parse("v1.0.0"), "x")
    stand_in.status_override = 422
    with pytest.raises(ReleaseError, match="HTTP 422"):
        GitHub("colliery-io/brokkr", TOKEN, stand_in.url).ensure_release(parse("v1.0.0"), "x")
