"""A small Kubernetes API client: discovery, server-side apply, get, delete, list.

Built on `requests` rather than the official client to stay small. Every request
has a bounded timeout; 429 and 5xx answers and connection failures are retried a
few times with exponential backoff and jitter (honouring Retry-After), then raised
as a *transient* KubeError so the caller can retry on its next cycle.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3
import yaml

from brokkr.agent.broker_client import describe
from brokkr.agent.manifests import FIELD_MANAGER, split_api_version

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class KubeConfigError(RuntimeError):
    """No usable cluster credentials; the message says where we looked and what to set."""


class KubeError(RuntimeError):
    """A Kubernetes API call failed.

    `status` is the HTTP status (0 for no answer); `transient` says whether retrying
    later may help (429, 5xx, timeouts, connection errors) or the request itself is
    wrong (400, 403, 404, 409, 422, ...).
    """

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status in _TRANSIENT_STATUS


def _no_token() -> str | None:
    return None


@dataclass
class ClusterAccess:
    """Where the API server is and how to authenticate to it."""

    server: str
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    token: Callable[[], str | None] = _no_token
    source: str = ""


def _fixed_token(value: str) -> Callable[[], str | None]:
    return lambda: value


def _token_file_reader(path: Path) -> Callable[[], str | None]:
    # Projected service account tokens rotate; read the file at most once a minute.
    cache: dict[str, Any] = {"at": 0.0, "token": None}

    def read() -> str | None:
        if time.monotonic() - cache["at"] > 60:
            cache["token"] = path.read_text().strip()
            cache["at"] = time.monotonic()
        return cache["token"]

    return read


def in_cluster() -> ClusterAccess | None:
    """The pod's service account access, or None outside a pod."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token = SERVICE_ACCOUNT_DIR / "token"
    if not host or not token.exists():
        return None
    if ":" in host:
        host = f"[{host}]"
    return ClusterAccess(
        server=f"https://{host}:{port}",
        verify=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        token=_token_file_reader(token),
        source="in-cluster service account",
    )


def from_kubeconfig(path: Path) -> ClusterAccess:
    """Access for the current context of a kubeconfig file (token, token file or client cert)."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"kubeconfig {path}: cannot read it: {exc}") from None

    def named(section: str, name: str) -> dict[str, Any]:
        for entry in config.get(section) or []:
            if entry.get("name") == name:
                return dict(entry.get(section[:-1]) or {})
        raise KubeConfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")

    context_name = config.get("current-context")
    if not context_name:
        raise KubeConfigError(f"kubeconfig {path}: no current-context set")
    context = named("contexts", context_name)
    cluster = named("clusters", context.get("cluster", ""))
    user = named("users", context.get("user", "")) if context.get("user") else {}
    base = path.parent
    private = Path(tempfile.mkdtemp(prefix="brokkr-agent-kube-"))

    def file_or_data(key: str) -> str | None:
        data = (
            cluster.get(f"{key}-data")
            if key == "certificate-authority"
            else user.get(f"{key}-data")
        )
        if data:
            target = private / key
            target.write_bytes(base64.b64decode(data))
            target.chmod(0o600)
            return str(target)
        value = cluster.get(key) if key == "certificate-authority" else user.get(key)
        return str(base / value) if value else None

    verify: bool | str = True
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    ca = file_or_data("certificate-authority")
    if ca:
        verify = ca
    cert_file, key_file = file_or_data("client-certificate"), file_or_data("client-key")
    token: Callable[[], str | None] = _no_token
    if user.get("token"):
        token = _fixed_token(str(user["token"]))
    elif user.get("tokenFile"):
        token = _token_file_reader(base / user["tokenFile"])
    server = cluster.get("server")
    if not server:
        raise KubeConfigError(
            f"kubeconfig {path}: cluster of context {context_name!r} has no server"
        )
    return ClusterAccess(
        server=str(server).rstrip("/"),
        verify=verify,
        cert=(cert_file, key_file) if cert_file and key_file else None,
        token=token,
        source=f"kubeconfig {path} (context {context_name})",
    )


def resolve_access(kubeconfig: str | None) -> ClusterAccess:
    """BROKKR__AGENT__KUBECONFIG if set, else the in-cluster account, else $KUBECONFIG or ~/.kube/config."""
    if kubeconfig:
        return from_kubeconfig(Path(kubeconfig))
    access = in_cluster()
    if access:
        return access
    fallback = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
        Path.home() / ".kube/config"
    )
    if Path(fallback).exists():
        return from_kubeconfig(Path(fallback))
    raise KubeConfigError(
        "no Kubernetes credentials: not running in a pod (no service account token) and no "
        f"kubeconfig at {fallback}; set BROKKR__AGENT__KUBECONFIG to a kubeconfig file"
    )


@dataclass(frozen=True)
class Resource:
    """One API resource as discovery describes it."""

    group: str
    version: str
    name: str
    kind: str
    namespaced: bool
    verbs: frozenset[str] = field(default_factory=frozenset)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.name}"
        return f"{base}/{name}" if name else base


class KubeClient:
    """Thread-safe enough for one reconcile thread plus health probes (separate sessions)."""

    def __init__(self, access: ClusterAccess, timeout: float = 10.0, attempts: int = 3) -> None:
        self.access = access
        self.timeout = timeout
        self.attempts = attempts
        self._local = threading.local()
        self._discovery: dict[str, list[Resource] | None] = {}
        self._lock = threading.Lock()
        if access.verify is False:
            # Said once here instead of a urllib3 warning on every request.
            log.warning(
                "TLS verification of the Kubernetes API is off (insecure-skip-tls-verify in %s)",
                access.source,
            )
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    # --- transport -------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
        attempts: int | None = None,
    ) -> requests.Response:
        """One API call with retries for transient failures; raises KubeError on failure."""
        headers = {"Accept": accept}
        token = self.access.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        attempts = attempts or self.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = self._session().request(
                    method,
                    self.access.server + path,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=timeout or self.timeout,
                    # Per request: a session-level CA would lose to $REQUESTS_CA_BUNDLE.
                    verify=self.access.verify,
                    cert=self.access.cert,
                )
            except requests.exceptions.SSLError as exc:
                raise KubeError(
                    f"TLS verification of the Kubernetes API at {self.access.server} failed: "
                    f"{describe(exc)}"
                ) from None
            except requests.RequestException as exc:
                error = KubeError(
                    f"{method} {path}: no answer from the Kubernetes API ({describe(exc)})"
                )
                retry_after = None
            else:
                if response.status_code < 400:
                    return response
                error = _api_error(method, path, response)
                if not error.transient:
                    raise error
                retry_after = response.headers.get("Retry-After")
            if attempt == attempts:
                raise error
            time.sleep(_retry_delay(attempt, retry_after))
        raise AssertionError("unreachable")

    # --- discovery -------------------------------------------------------------

    def version(self, timeout: float | None = None) -> dict[str, Any]:
        """GET /version (readable by any client): the reachability probe."""
        result: dict[str, Any] = self.request("GET", "/version", timeout=timeout, attempts=1).json()
        return result

    def _group_version(self, api_version: str, refresh: bool = False) -> list[Resource] | None:
        with self._lock:
            if not refresh and api_version in self._discovery:
                return self._discovery[api_version]
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = self.request("GET", path).json()
        except KubeError as exc:
            if exc.status != 404:
                raise
            resources = None
        else:
            resources = [
                Resource(
                    group=group,
                    version=version,
                    name=item["name"],
                    kind=item["kind"],
                    namespaced=bool(item.get("namespaced")),
                    verbs=frozenset(item.get("verbs") or ()),
                )
                for item in listing.get("resources", [])
                if "/" not in item["name"]
            ]
        with self._lock:
            self._discovery[api_version] = resources
        return resources

    def resource_for(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving `kind` in `api_version`, or None if the server has none.

        A miss re-reads discovery once, so kinds of freshly installed CRDs are found.
        """
        for refresh in (False, True):
            for resource in self._group_version(api_version, refresh=refresh) or []:
                if resource.kind == kind:
                    return resource
        return None

    def forget_discovery(self) -> None:
        with self._lock:
            self._discovery.clear()

    def listable_resources(self) -> list[Resource]:
        """Every resource (preferred version of each group) that can be listed and deleted."""
        versions = ["v1"]
        groups = self.request("GET", "/apis").json().get("groups", [])
        versions += [
            g["preferredVersion"]["groupVersion"] for g in groups if g.get("preferredVersion")
        ]
        found = []
        for api_version in versions:
            try:
                resources = self._group_version(api_version, refresh=True) or []
            except KubeError as exc:
                # An aggregated API that is down must not stop pruning of everything else.
                log.warning("discovery of %s failed, skipping it: %s", api_version, exc)
                continue
            found += [r for r in resources if {"list", "delete"} <= r.verbs]
        return found

    # --- objects ---------------------------------------------------------------

    def apply(
        self, resource: Resource, obj: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply as field manager `brokkr-controller`, forcing conflicts."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        path = resource.path(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        response = self.request(
            "PATCH", path, params=params, body=obj, content_type="application/apply-patch+yaml"
        )
        result: dict[str, Any] = response.json()
        return result

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.request("GET", resource.path(namespace, name)).json()
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete (background propagation); False if it was already gone."""
        try:
            self.request(
                "DELETE",
                resource.path(namespace, name),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_metadata(
        self, resource: Resource, label_selector: str, namespace: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Metadata of the objects of `resource` matching the selector (all pages)."""
        params = {"labelSelector": label_selector, "limit": "250"}
        while True:
            page = self.request(
                "GET", resource.path(namespace), params=params, accept=_METADATA_LIST
            ).json()
            for item in page.get("items") or []:
                yield item.get("metadata") or {}
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params["continue"] = token


def _api_error(method: str, path: str, response: requests.Response) -> KubeError:
    reason, message = response.reason or "", response.text[:500]
    try:
        status = response.json()
        reason = status.get("reason") or reason
        message = status.get("message") or message
    except ValueError:
        pass
    return KubeError(
        f"{response.status_code} {reason}: {message}", status=response.status_code, reason=reason
    )


def _retry_delay(attempt: int, retry_after: str | None) -> float:
    """Exponential backoff with full jitter, at least Retry-After (capped at 10 s)."""
    delay = random.uniform(0, min(8.0, 0.25 * 2**attempt))  # noqa: S311  # jitter, not crypto
    if retry_after and retry_after.isdigit():
        delay = max(delay, min(float(retry_after), 10.0))
    return delay
