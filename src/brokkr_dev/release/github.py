"""The GitHub release, created through the REST API (idempotent: an existing release
for the tag is left as it is and its URL returned), and its attached assets (each
uploaded once; an asset already there under its name is kept)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.version import Version

API = "https://api.github.com"
API_VERSION = "2022-11-28"
TIMEOUT = 30
UPLOAD_TIMEOUT = 300
# api.github.com hands out upload URLs on this host; a stand-in uses its own host.
UPLOAD_HOSTS = {"api.github.com": "uploads.github.com"}


@dataclass(frozen=True)
class Asset:
    """A file attached to the GitHub release."""

    name: str
    data: bytes
    content_type: str = "application/octet-stream"


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

    def upload_assets(self, tag: str, assets: Sequence[Asset]) -> list[str]:
        """Attach the assets to the release of `tag`; returns the names uploaded now.

        An asset already attached under the same name is kept (a resumed run); its
        size must match, or the release holds something else and is not touched.
        """
        response = self._call("GET", f"releases/tags/{tag}")
        self._check(response, f"read release {tag}")
        release = response.json()
        upload = str(release["upload_url"]).split("{", 1)[0]
        self._check_upload_host(upload)
        existing = {a["name"]: a for a in self._existing_assets(release["id"])}
        uploaded = []
        for asset in assets:
            if asset.name in existing:
                if int(existing[asset.name].get("size", -1)) != len(asset.data):
                    raise ReleaseError(
                        f"GitHub release {tag} already has an asset {asset.name} of another "
                        "size; a published asset is not replaced: check the release by hand"
                    )
                continue
            try:
                reply = self.session.post(
                    upload,
                    params={"name": asset.name},
                    data=asset.data,
                    headers={"Content-Type": asset.content_type},
                    timeout=UPLOAD_TIMEOUT,
                )
            except requests.RequestException as exc:
                raise ReleaseError(
                    f"GitHub upload of {asset.name} failed ({type(exc).__name__}); re-run to resume"
                ) from exc
            self._check(reply, f"upload asset {asset.name}")
            uploaded.append(asset.name)
        return uploaded

    def _existing_assets(self, release_id: object) -> list[dict]:
        found: list[dict] = []
        page = 1
        while True:
            response = self._call("GET", f"releases/{release_id}/assets?per_page=100&page={page}")
            self._check(response, "list release assets")
            batch = response.json()
            found += batch
            if len(batch) < 100:
                return found
            page += 1

    def _check_upload_host(self, upload: str) -> None:
        """The token goes only to the API host or to GitHub's own upload host."""
        api_host = urlsplit(self.api).netloc
        allowed = {api_host, UPLOAD_HOSTS.get(api_host, api_host)}
        if urlsplit(upload).netloc not in allowed:
            raise ReleaseError(
                f"GitHub gave an upload URL on {urlsplit(upload).netloc}, not on "
                f"{' or '.join(sorted(allowed))}; the token is not sent there"
            )

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
