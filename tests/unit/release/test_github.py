"""The GitHub release through the REST API, against a local HTTP stand-in that
checks every request (GitHub itself cannot be reached from tests)."""

from __future__ import annotations

import pytest

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.github import Asset, GitHub
from brokkr_dev.release.version import parse
from tests.fixtures.http import GITHUB_TOKEN as TOKEN


def test_creates_release_with_the_documented_request(github_stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, github_stand_in.url)
    url = github.ensure_release(parse("v1.2.0"), "# notes", latest=True)
    assert url == "https://github.example/releases/v1.2.0"
    lookup, create = github_stand_in.requests
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


def test_prerelease_and_older_line_are_not_latest(github_stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, github_stand_in.url)
    github.ensure_release(parse("v1.3.0-rc.1"), "rc", latest=True)
    github.ensure_release(parse("v1.0.5"), "fix", latest=False)
    bodies = [r["body"] for r in github_stand_in.requests if r["method"] == "POST"]
    assert [(b["prerelease"], b["make_latest"]) for b in bodies] == [
        (True, "false"),
        (False, "false"),
    ]


def test_existing_release_is_left_alone(github_stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, github_stand_in.url)
    first = github.ensure_release(parse("v1.0.0"), "one")
    again = github.ensure_release(parse("v1.0.0"), "two")
    assert first == again
    assert [r["method"] for r in github_stand_in.requests] == ["GET", "POST", "GET"]
    assert github_stand_in.releases["v1.0.0"]["body"] == "one"


def test_refusals_are_clear(github_stand_in):
    with pytest.raises(ReleaseError, match="GITHUB_TOKEN is empty"):
        GitHub("colliery-io/brokkr", "", github_stand_in.url)
    with pytest.raises(ReleaseError, match=r"token needs `contents: write`"):
        GitHub("colliery-io/brokkr", "wrong", github_stand_in.url).ensure_release(
            parse("v1.0.0"), "x"
        )
    github_stand_in.status_override = 422
    with pytest.raises(ReleaseError, match="HTTP 422"):
        GitHub("colliery-io/brokkr", TOKEN, github_stand_in.url).ensure_release(
            parse("v1.0.0"), "x"
        )


def test_assets_are_uploaded_once_with_their_content_type(github_stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, github_stand_in.url)
    github.ensure_release(parse("v1.2.0"), "notes")
    assets = [
        Asset("brokkr-broker-1.2.0.tgz", b"\x1f\x8b chart", "application/gzip"),
        Asset("SHA256SUMS", b"abc  brokkr-broker-1.2.0.tgz\n", "text/plain"),
    ]
    assert github.upload_assets("v1.2.0", assets) == ["brokkr-broker-1.2.0.tgz", "SHA256SUMS"]
    assert github_stand_in.assets[1] == {a.name: a.data for a in assets}
    uploads = [r for r in github_stand_in.requests if r["path"].startswith("/uploads/")]
    assert [u["body"]["content_type"] for u in uploads] == ["application/gzip", "text/plain"]
    assert all(u["headers"]["Authorization"] == f"Bearer {TOKEN}" for u in uploads)
    # a resumed run uploads only what is missing
    more = [*assets, Asset("brokkr-agent-1.2.0.tgz", b"agent")]
    assert github.upload_assets("v1.2.0", more) == ["brokkr-agent-1.2.0.tgz"]
    # an asset of the same name but other content is never replaced
    with pytest.raises(ReleaseError, match="already has an asset SHA256SUMS of another size"):
        github.upload_assets("v1.2.0", [Asset("SHA256SUMS", b"different and longer\n")])
    assert github_stand_in.assets[1]["SHA256SUMS"] == assets[1].data


def test_the_token_is_not_sent_to_a_foreign_upload_host(github_stand_in):
    github = GitHub("colliery-io/brokkr", TOKEN, github_stand_in.url)
    github.ensure_release(parse("v1.2.0"), "notes")
    github_stand_in.releases["v1.2.0"]["upload_url"] = "https://elsewhere.example/up{?name}"
    with pytest.raises(ReleaseError, match=r"upload URL on elsewhere\.example"):
        github.upload_assets("v1.2.0", [Asset("x", b"x")])
    assert github_stand_in.assets.get(1, {}) == {}  # nothing uploaded anywhere
