"""A minimal Kubernetes API client on `requests`, enough for cluster automation
and tests: JSON CRUD, polling, and credentials from a kubeconfig."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

from brokkr_dev import localnet
from brokkr_dev.cluster.kubeconfig import Credentials, load

T = TypeVar("T")


class ApiError(RuntimeError):
    """A request the API server refused; carries the HTTP status and its message."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:500]}")


class KubeClient:
    """JSON requests against one API server with one identity."""

    def __init__(self, credentials: Credentials, timeout: float = 15.0) -> None:
        self.server = credentials.server
        self.timeout = timeout
        self._files = Path(tempfile.mkdtemp(prefix="brokkr-kube-"))
        atexit.register(shutil.rmtree, self._files, ignore_errors=True)
        self.session = requests.Session()
        # Ignore proxy and CA-bundle environment variables: they would route requests
        # to a local API server through an HTTP proxy, or override its CA (requests
        # lets REQUESTS_CA_BUNDLE win over session.verify).
        self.session.trust_env = False
        ca = self._files / "ca.crt"
        ca.write_bytes(credentials.ca_pem)
        self.session.verify = str(ca)
        if credentials.cert_pem and credentials.key_pem:
            cert, key = self._files / "client.crt", self._files / "client.key"
            key.touch(mode=0o600)
            key.write_bytes(credentials.key_pem)
            cert.write_bytes(credentials.cert_pem)
            self.session.cert = (str(cert), str(key))
        if credentials.token:
            self.session.headers["Authorization"] = f"Bearer {credentials.token}"

    @classmethod
    def from_kubeconfig(cls, path: Path, timeout: float = 15.0) -> KubeClient:
        return cls(load(path), timeout=timeout)

    def with_token(self, token: str) -> KubeClient:
        """A client for the same server that authenticates with a bearer token only."""
        ca = Path(str(self.session.verify)).read_bytes()
        return KubeClient(Credentials(self.server, ca, token=token), timeout=self.timeout)

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        """Send a request and return the response whatever its status."""
        return self.session.request(
            method, self.server + path, json=body, params=params or None, timeout=self.timeout
        )

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Send a request and return its JSON body; raise ApiError unless it succeeded."""
        response = self.request(method, path, body, **params)
        if response.status_code >= 400:
            raise ApiError(method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def create(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        """A JSON merge patch (RFC 7386): the fields given replace those stored."""
        response = self.session.patch(
            self.server + path,
            data=json.dumps(body),
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=self.timeout,
        )
        if response.status_code >= 400:
            raise ApiError("PATCH", path, response.status_code, response.text)
        return response.json()

    def delete(self, path: str, **params: Any) -> Any:
        return self.call("DELETE", path, **params)

    def exists(self, path: str) -> bool:
        response = self.request("GET", path)
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise ApiError("GET", path, response.status_code, response.text)
        return True

    def healthy(self) -> bool:
        """True when /readyz answers 200."""
        try:
            return self.request("GET", "/readyz").status_code == 200
        except requests.RequestException:
            return False

    def close(self) -> None:
        self.session.close()
        shutil.rmtree(self._files, ignore_errors=True)


def wait_for(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll `condition` until truthy (see localnet.wait_for); API errors count as "not yet"."""
    return localnet.wait_for(condition, timeout, what, interval, (*localnet.NOT_YET, ApiError))
