"""The GitHub release, created through the REST API (idempotent: an existing release
for the tag is left as it is and its URL returned)."""

from __future__ import annotations

import requests

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version

API = "https://api.github.com"
API_VERSION = "2022-11-28"
TIMEOUT = 30


class GitHub:
    """Releases of one repository; the token is sent only to `api_url`."""

    def __init__(self, repo: str, token: str, api_url: str = API) -> None:
        if not token:
            raise ReleaseError("GITHUB_TOKEN is empty; set it or pass --skip-github-release")
        self.repo = repo
        self.api = api_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            }
        )

    def _call(
        self, method: str, path: str, payload: dict[str, object] | None = None
    ) -> requests.Response:
        try:
            return self.session.request(
                method, f"{self.api}/repos/{self.repo}/{path}", json=payload, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise ReleaseError(
                f"GitHub API {method} {path} failed ({exc}); re-run to resume"
            ) from exc

    def find_release(self, tag: str) -> str | None:
        """The URL of the release for `tag`, or None."""
        response = self._call("GET", f"releases/tags/{tag}")
        if response.status_code == 404:
            return None
        self._check(response, f"read release {tag}")
        return str(response.json()["html_url"])

    def ensure_release(self, version: Version, body: str, latest: bool = True) -> str:
        """Create the release for the version's tag unless it exists; returns its URL."""
        existing = self.find_release(version.tag)
        if existing:
            return existing
        response = self._call(
            "POST",
            "releases",
            {
                "tag_name": version.tag,
                "name": f"Brokkr {version.tag}",
                "body": body,
                "draft": False,
                "prerelease": version.is_prerelease,
                # Only the release that moved `latest` is GitHub's "latest" too.
                "make_latest": "true" if latest and not version.is_prerelease else "false",
            },
        )
        self._check(response, f"create release {version.tag}")
        return str(response.json()["html_url"])

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code in (401, 403):
            raise ReleaseError(
                f"GitHub refused to {what} ({response.status_code}): the token needs "
                "`contents: write` on " + self.repo
            )
        if response.status_code >= 300:
            raise ReleaseError(
                f"GitHub API: {what} failed: HTTP {response.status_code} {response.text[:300]}"
            )
