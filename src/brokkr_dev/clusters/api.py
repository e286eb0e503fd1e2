"""A path-based adapter on lightkube's HTTP client, for cluster automation and tests.

lightkube (via `brokkr.kubeaccess`, shared with the agent) reads the kubeconfig and
sets up TLS, credentials (tokens, client certificates, exec plugins) and the proxy.
Tests and automation speak in API paths and JSON (`api.get("/api/v1/nodes")`), which
reads like the API reference and works for any kind without a Python class per
kind; this adapter keeps that small surface, raising ClusterApiError for refusals and
KubeUnreachable (an OSError, so polling treats it as "not yet") for no answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from lightkube.core.exceptions import ConfigError

from brokkr import kubeaccess
from brokkr_dev.base import localnet
from brokkr_dev.base.errors import AutomationError

T = TypeVar("T")


class ClusterApiError(AutomationError):
    """A request the API server refused; carries the HTTP status and its message."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:500]}")


class KubeUnreachable(ConnectionError):
    """No answer from the API server (refused, timed out, TLS or credential failure)."""


class ClusterClient:
    """JSON requests against one API server with one identity."""

    def __init__(self, access: kubeaccess.Access, timeout: float = 15.0) -> None:
        self.access = access
        self.server = access.server
        self.timeout = timeout
        # trust_env off: proxy and CA-bundle environment variables must not send requests
        # for a local API server through an HTTP proxy or replace its CA. A kubeconfig's
        # own proxy-url still applies.
        self._http = access.http_client(timeout, trust_env=False)

    @classmethod
    def from_kubeconfig(
        cls, path: Path, timeout: float = 15.0, context: str | None = None
    ) -> ClusterClient:
        try:
            return cls(kubeaccess.from_kubeconfig(Path(path), context), timeout=timeout)
        except kubeaccess.KubeConfigError as exc:
            raise ValueError(str(exc)) from None

    def with_token(self, token: str) -> ClusterClient:
        """A client for the same server that authenticates with a bearer token only."""
        return ClusterClient(self.access.with_token(token), timeout=self.timeout)

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> httpx2.Response:
        """Send a request and return the response whatever its status."""
        return self._send(method, path, body, params, "application/json")

    def _send(
        self, method: str, path: str, body: Any, params: dict[str, Any], content_type: str
    ) -> httpx2.Response:
        try:
            return self._http.request(
                method,
                path,
                json=body,
                params=params or None,
                headers={"Content-Type": content_type} if body is not None else None,
            )
        except (httpx2.HTTPError, ConfigError) as exc:
            raise KubeUnreachable(f"{method} {self.server}{path}: {exc}") from exc

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Send a request and return its JSON body; raise ClusterApiError unless it succeeded."""
        return self._checked(method, path, self.request(method, path, body, **params))

    @staticmethod
    def _checked(method: str, path: str, response: httpx2.Response) -> Any:
        if response.status_code >= 400:
            raise ClusterApiError(method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def create(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        """A JSON merge patch (RFC 7386): the fields given replace those stored."""
        response = self._send("PATCH", path, body, {}, "application/merge-patch+json")
        return self._checked("PATCH", path, response)

    def delete(self, path: str, **params: Any) -> Any:
        return self.call("DELETE", path, **params)

    def exists(self, path: str) -> bool:
        response = self.request("GET", path)
        if response.status_code == 404:
            return False
        self._checked("GET", path, response)
        return True

    def healthy(self) -> bool:
        """True when /readyz answers 200."""
        try:
            return self.request("GET", "/readyz").status_code == 200
        except KubeUnreachable:
            return False

    def close(self) -> None:
        self._http.close()


def crd_established(client: ClusterClient, name: str) -> bool:
    """Whether CustomResourceDefinition `name` is Established. Read from the object:
    `kubectl wait` errors out, instead of waiting, while a new CRD's conditions are null."""
    crd = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def wait_for(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll `condition` until truthy (see localnet.wait_for); API errors count as "not yet"."""
    return localnet.wait_for(
        condition, timeout, what, interval, (*localnet.NOT_YET, ClusterApiError)
    )
