"""The agent's Kubernetes calls on lightkube's transport: discovery, apply, get, delete, list.

Credentials, TLS, contexts, exec plugins and rotating tokens come from lightkube
(`brokkr.kubeaccess`). What stays here is what the agent needs beyond it: lightkube's
typed client wants a Python class per kind and has neither discovery of arbitrary
groups nor metadata-only lists, while the agent applies whatever kinds the server
serves and prunes by labels over all of them; and lightkube does not retry. So every
call is a path on lightkube's HTTP client, with a bounded timeout; 429 and 5xx answers
and connection failures are retried a few times with exponential backoff and jitter
(honouring Retry-After), then raised as a *transient* KubeError so the caller can
retry on its next cycle.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
from lightkube.core.exceptions import ConfigError

from brokkr.agent.broker_client import describe
from brokkr.agent.manifests import FIELD_MANAGER, split_api_version
from brokkr.common import telemetry
from brokkr.kubeaccess import Access, KubeConfigError, from_kubeconfig, resolve

__all__ = ["KubeClient", "KubeConfigError", "KubeError", "Resource", "from_kubeconfig", "resolve"]

log = logging.getLogger(__name__)

_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


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
    """One HTTP client (thread-safe connection pool) for the reconcile thread and health probes."""

    def __init__(self, access: Access, timeout: float = 10.0, attempts: int = 3) -> None:
        self.access = access
        self.timeout = timeout
        self.attempts = attempts
        self._http = access.http_client(timeout)
        self._discovery: dict[str, list[Resource] | None] = {}
        self._lock = threading.Lock()
        if access.config.cluster.insecure:
            log.warning(
                "TLS verification of the Kubernetes API is off (insecure-skip-tls-verify in %s)",
                access.source,
            )

    def close(self) -> None:
        self._http.close()

    # --- transport -------------------------------------------------------------

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
    ) -> httpx2.Response:
        """One API call with retries for transient failures; raises KubeError on failure."""
        headers = {"Accept": accept}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        attempts = attempts or self.attempts
        for attempt in range(1, attempts + 1):
            try:
                with telemetry.span(
                    f"kubernetes {method}",
                    "client",
                    {"http.request.method": method, "url.path": path},
                    inside_only=True,  # not the readiness probe's calls
                ):
                    response = self._http.request(
                        method,
                        path,
                        params=params,
                        content=data,
                        headers=headers,
                        timeout=timeout or self.timeout,
                    )
            except httpx2.HTTPError as exc:
                if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError) or (
                    "certificate verify failed" in str(exc)
                ):
                    raise KubeError(
                        f"TLS verification of the Kubernetes API at {self.access.server} "
                        f"failed: {describe(exc)}"
                    ) from None
                error = KubeError(
                    f"{method} {path}: no answer from the Kubernetes API ({_describe(exc)})"
                )
                retry_after = None
            except ConfigError as exc:
                # lightkube's credential step failed (exec plugin exited non-zero, token file gone).
                raise KubeError(f"credentials from {self.access.source} failed: {exc}") from None
            else:
                if response.status_code < 400:
                    return response
                error = _api_error(response)
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


def _describe(exc: Exception) -> str:
    return "timed out" if isinstance(exc, httpx2.TimeoutException) else describe(exc)


def _api_error(response: httpx2.Response) -> KubeError:
    reason, message = response.reason_phrase or "", response.text[:500]
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
