"""The broker's agent-facing API (`/api/v1`), authenticated with the agent's PAK."""

from __future__ import annotations

import re
from typing import Any

import requests

from brokkr import __version__
from brokkr.common import telemetry

_ID = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def describe(exc: Exception) -> str:
    """A one-line cause for a failed request ('[Errno 111] Connection refused', 'timed out')."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    tls = re.search(r"certificate verify failed: [^(')]*|hostname mismatch[^(')]*", str(exc))
    if tls:
        return tls.group(0).strip()
    found = re.search(r"\[Errno -?\d+\][^'\")]*", str(exc))
    return found.group(0).strip() if found else type(exc).__name__


class BrokerError(RuntimeError):
    """A broker call failed. `status` 0 means no answer (down, timeout, TLS)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        """Worth retrying later: no answer, 408, 429 or a server error."""
        return self.status == 0 or self.status in (408, 429) or self.status >= 500


class BrokerTlsError(BrokerError):
    """The broker's certificate could not be verified; never retried silently."""


class BrokerClient:
    def __init__(self, base_url: str, pak: str, ca_file: str | None, timeout: float) -> None:
        self.api = base_url.rstrip("/") + "/api/v1"
        self.timeout = timeout
        self.session = requests.Session()
        # System CAs unless a CA bundle is configured. Passed per request, because a
        # session-level CA file would silently lose to $REQUESTS_CA_BUNDLE.
        self.verify: bool | str = ca_file or True
        self.session.headers.update(
            {"Authorization": f"Bearer {pak}", "User-Agent": f"brokkr-agent/{__version__}"}
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            # The broker's request span continues this one (W3C traceparent).
            with telemetry.span(
                f"broker {method} {_ID.sub('/{id}', path)}",
                "client",
                {"http.request.method": method, "url.path": path},
            ):
                headers: dict[str, str] = {}
                telemetry.inject(headers)
                response = self.session.request(
                    method,
                    self.api + path,
                    timeout=self.timeout,
                    verify=self.verify,
                    headers=headers,
                    **kwargs,
                )
        except requests.exceptions.SSLError as exc:
            raise BrokerTlsError(
                f"TLS verification of the broker at {self.api} failed ({describe(exc)}); "
                "if the broker uses "
                "a private CA, set BROKKR__AGENT__CA_FILE to its CA bundle"
            ) from None
        except requests.RequestException as exc:
            self.reconnect()
            raise BrokerError(f"{method} {path}: broker unreachable ({describe(exc)})") from None
        if response.status_code >= 400:
            self.reconnect()
            code, message = "", response.text[:300]
            try:
                body = response.json()
                code, message = body.get("code", ""), body.get("message", message)
            except (ValueError, AttributeError):
                pass
            raise BrokerError(
                f"{method} {path}: {response.status_code} {code or response.reason}: {message}",
                status=response.status_code,
                code=code,
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def reconnect(self) -> None:
        """Drop the kept-alive connections: after a failure the next call connects afresh.

        A connection outlives the broker pod it reached; when a Service has no ready
        endpoint for a moment, a new one may even reach another server that keeps it
        alive and answers every request with an error. Reusing it would pin the agent
        there; a new connection goes to wherever the broker's address leads now.
        """
        self.session.close()  # the session stays usable; its pools start empty

    def verify_pak(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/auth/pak")
        return result

    def find_agent(self, name: str, cluster_name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", "/agents/", params={"name": name, "cluster_name": cluster_name}
        )
        return result

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/agents/{agent_id}")
        return result

    def register_generator(self, generator_id: str) -> bool:
        """Register with a generator; False if already registered."""
        try:
            self._call("POST", f"/generators/{generator_id}/register", json={})
        except BrokerError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def heartbeat(self, agent_id: str, reachable: bool, latency_ms: int | None) -> None:
        self._call(
            "POST",
            f"/agents/{agent_id}/heartbeat",
            json={"k8s_reachable": reachable, "k8s_api_latency_ms": latency_ms},
        )

    def target_state(self, agent_id: str, full: bool) -> list[dict[str, Any]]:
        params = {"mode": "full"} if full else {}
        result = self._call("GET", f"/agents/{agent_id}/target-state", params=params)
        if not isinstance(result, list):
            raise BrokerError(
                f"target-state: expected a JSON list, got {type(result).__name__}", 502
            )
        return result

    def report_event(
        self, agent_id: str, deployment_object_id: str, status: str, message: str
    ) -> None:
        self._call(
            "POST",
            f"/agents/{agent_id}/events",
            json={
                "agent_id": agent_id,
                "deployment_object_id": deployment_object_id,
                "event_type": "DEPLOY",
                "status": status,
                "message": message[:4000],
            },
        )
