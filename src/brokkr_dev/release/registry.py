"""A small client for the OCI distribution HTTP API (what every registry speaks).

Enough for releases: list tags, read a manifest and its digest, write a manifest
under another tag (moving a floating tag costs no blob upload, because the manifest
bytes, and so the digest, are identical). Loopback registries are spoken to over
plain HTTP; every other one over HTTPS, with the Bearer token flow that ghcr.io uses,
unless the caller says the registry speaks plain HTTP (a test mirror on a private
address).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import requests

from brokkr_dev.release import ReleaseError

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
TIMEOUT = 30
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_CHALLENGE_FIELD = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes, media type and content digest."""

    body: bytes
    media_type: str
    digest: str


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers fallback tag of a digest: `sha256-<hex>`."""
    return digest.replace(":", "-", 1)


def split_reference(ref: str) -> tuple[str, str]:
    """`host[:port]/path` -> (host, repository path)."""
    host, _, repo = ref.partition("/")
    if not repo or ("." not in host and ":" not in host and host != "localhost"):
        raise ReleaseError(
            f"{ref!r} does not start with a registry host; use e.g. ghcr.io/colliery-io "
            "or 127.0.0.1:5000/brokkr"
        )
    return host, repo


def is_loopback(host: str) -> bool:
    return host.split(":", maxsplit=1)[0] in _LOOPBACK or host.startswith("[::1]")


class Registry:
    """One registry host; credentials (if any) are used only for the token exchange."""

    def __init__(
        self,
        host: str,
        username: str | None = None,
        password: str | None = None,
        session: requests.Session | None = None,
        plain_http: bool | None = None,
    ) -> None:
        self.host = host
        # None: decided by the address; a registry anywhere else is HTTPS unless told.
        if plain_http is None:
            plain_http = is_loopback(host)
        scheme = "http" if plain_http else "https"
        self.base = f"{scheme}://{host}/v2"
        self._auth = (username, password) if username and password else None
        self._session = session or requests.Session()
        self._tokens: dict[str, str] = {}

    # --- transport -----------------------------------------------------------

    def _request(
        self,
        method: str,
        repo: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        url = f"{self.base}/{repo}/{path}"
        headers = dict(headers or {})
        try:
            for attempt in range(2):
                if repo in self._tokens:
                    headers["Authorization"] = f"Bearer {self._tokens[repo]}"
                response = self._session.request(
                    method, url, headers=headers, data=data, timeout=TIMEOUT
                )
                if response.status_code != 401 or attempt:
                    return response
                self._tokens[repo] = self._token(response, repo)  # new or expired token
        except requests.RequestException as exc:
            raise ReleaseError(
                f"registry {self.host} did not answer {method} {path} for {repo} ({exc}); "
                "check the address and the network, then re-run: finished steps are skipped"
            ) from exc
        return response

    def _token(self, challenge: requests.Response, repo: str) -> str:
        header = challenge.headers.get("WWW-Authenticate", "")
        if not header.lower().startswith("bearer "):
            raise ReleaseError(f"registry {self.host} refused access to {repo} (401): {header}")
        # Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a:pull,push"
        fields = dict(_CHALLENGE_FIELD.findall(header))
        params = {k: v for k, v in fields.items() if k in {"service", "scope"}}
        if self._auth or "scope" not in params:
            # one token for the whole release: reading tags, then writing manifests
            params["scope"] = f"repository:{repo}:pull,push"
        realm = fields.get("realm", "")
        response = self._session.get(realm, params=params, auth=self._auth, timeout=TIMEOUT)
        if response.status_code != 200:
            raise ReleaseError(
                f"registry {self.host}: token request failed ({response.status_code}); "
                "log in (REGISTRY_USERNAME/REGISTRY_PASSWORD or `podman login`) with push rights"
            )
        data = response.json()
        return str(data.get("token") or data.get("access_token"))

    # --- API -----------------------------------------------------------------

    def ping(self) -> None:
        """Fail clearly when the registry is unreachable."""
        try:
            response = self._session.get(f"{self.base}/", timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ReleaseError(f"registry {self.host} is not reachable ({exc})") from exc
        if response.status_code not in (200, 401):
            raise ReleaseError(
                f"{self.host} is not an OCI registry (GET /v2/ -> {response.status_code})"
            )

    def tags(self, repo: str) -> set[str]:
        """All tags of a repository (empty when the repository does not exist)."""
        found: set[str] = set()
        path = "tags/list?n=1000"
        while path:
            response = self._request("GET", repo, path)
            if response.status_code == 404:
                return found
            self._check(response, f"list tags of {repo}")
            found.update(response.json().get("tags") or [])
            link = response.headers.get("Link", "")
            # pagination: Link: </v2/<repo>/tags/list?n=..&last=..>; rel="next"
            path = link.split(f"/{repo}/", 1)[1].split(">", 1)[0] if 'rel="next"' in link else ""
        return found

    def manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest stored under a tag or digest, or None when there is none."""
        response = self._request(
            "GET", repo, f"manifests/{reference}", headers={"Accept": MANIFEST_TYPES}
        )
        if response.status_code == 404:
            return None
        self._check(response, f"read manifest {repo}:{reference}")
        digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        return Manifest(response.content, media_type, digest)

    def digest(self, repo: str, reference: str) -> str | None:
        """The digest of what a tag points at, or None when the tag does not exist."""
        found = self.manifest(repo, reference)
        return found.digest if found else None

    def referrers(self, repo: str, digest: str) -> list[dict]:
        """The descriptors of the manifests whose `subject` is repo@digest (OCI 1.1).

        From the referrers API where the registry has one; otherwise from the index
        under the fallback tag `sha256-<hex>`, which clients (cosign v3 through
        go-containerregistry) keep up to date on registries without it, such as
        Distribution 2.x. Empty when nothing refers to the digest.
        """
        response = self._request("GET", repo, f"referrers/{digest}", headers={"Accept": OCI_INDEX})
        content_type = response.headers.get("Content-Type", "").split(";")[0]
        if response.status_code == 200 and content_type == OCI_INDEX:
            index = response.content
        else:
            found = self.manifest(repo, referrers_tag(digest))
            if found is None:
                return []
            index = found.body
        try:
            manifests = json.loads(index).get("manifests") or []
        except (ValueError, AttributeError):
            raise ReleaseError(
                f"{self.host}/{repo}: referrers of {digest} are not an index"
            ) from None
        return [m for m in manifests if isinstance(m, dict) and "digest" in m]

    def put_manifest(self, repo: str, tag: str, manifest: Manifest) -> str:
        """Store the manifest under a tag (creating or moving it); returns the digest."""
        response = self._request(
            "PUT",
            repo,
            f"manifests/{tag}",
            data=manifest.body,
            headers={"Content-Type": manifest.media_type},
        )
        self._check(response, f"write tag {repo}:{tag}")
        stored = response.headers.get("Docker-Content-Digest", manifest.digest)
        if stored != manifest.digest:
            raise ReleaseError(
                f"registry stored {repo}:{tag} as {stored}, expected {manifest.digest}"
            )
        return stored

    def copy_tag(self, repo: str, source: str, tag: str) -> str:
        """Point `tag` at what `source` (a tag or digest) points at."""
        found = self.manifest(repo, source)
        if found is None:
            raise ReleaseError(f"cannot tag {repo}:{tag}: {repo}@{source} does not exist")
        return self.put_manifest(repo, tag, found)

    def blob(self, repo: str, digest: str) -> bytes:
        """A blob's content (registries may redirect to storage; requests follows)."""
        response = self._request("GET", repo, f"blobs/{digest}")
        self._check(response, f"read blob {repo}@{digest}")
        return response.content

    def chart_metadata(self, repo: str, reference: str) -> dict[str, str] | None:
        """A pushed Helm chart's Chart.yaml fields (from its config blob), or None."""
        found = self.manifest(repo, reference)
        if found is None:
            return None
        config = json.loads(found.body).get("config", {})
        if config.get("mediaType") != HELM_CONFIG:
            raise ReleaseError(f"{self.host}/{repo}:{reference} is not a Helm chart")
        return dict(json.loads(self.blob(repo, config["digest"])))

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code >= 300:
            raise ReleaseError(
                f"registry {self.host}: {what} failed: HTTP {response.status_code} "
                f"{response.text[:300]}"
            )


class UnreachableRegistry(Registry):
    """Stands for a registry a dry run cannot reach: it holds nothing, so the plan
    shows a first publication, and the reason is reported with the plan."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(host)
        self.reason = reason

    def tags(self, repo: str) -> set[str]:
        return set()

    def manifest(self, repo: str, reference: str) -> Manifest | None:
        return None

    def referrers(self, repo: str, digest: str) -> list[dict]:
        return []
