"""The health and metrics HTTP server (default port 8080), in a background thread.

/healthz  200 while the process serves (liveness; no dependency checks, so a broker
          or Kubernetes outage never restarts the pod).
/readyz   200 when the Kubernetes API answers /version within a bounded timeout;
          the result is cached briefly so probes cannot flood the API server. 503 + reason.
/health   JSON status document.
/metrics  Prometheus text format.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from brokkr.agent.kube import KubeClient, KubeError
from brokkr.agent.state import AgentState

log = logging.getLogger(__name__)

READY_TIMEOUT = 2.0
READY_CACHE_SECONDS = 2.0


class Readiness:
    """Cached Kubernetes reachability check; also feeds the state's kubernetes fields."""

    def __init__(self, kube: KubeClient | None, state: AgentState) -> None:
        self.kube = kube
        self.state = state
        self._lock = threading.Lock()
        self._checked = 0.0
        self._result: tuple[bool, str] = (False, "not checked yet")

    def check(self) -> tuple[bool, str]:
        with self._lock:
            if time.monotonic() - self._checked < READY_CACHE_SECONDS:
                return self._result
            self._result = self._probe()
            self._checked = time.monotonic()
            return self._result

    def _probe(self) -> tuple[bool, str]:
        if self.kube is None:
            return False, "Kubernetes client not configured yet"
        started = time.monotonic()
        try:
            self.kube.version(timeout=READY_TIMEOUT)
        except KubeError as exc:
            self.state.update(kube_connected=False, kube_error=str(exc))
            return False, f"Kubernetes API unreachable: {exc}"
        latency = int((time.monotonic() - started) * 1000)
        self.state.update(kube_connected=True, kube_latency_ms=latency, kube_error=None)
        return True, f"Kubernetes API answered in {latency} ms"


def serve(state: AgentState, readiness: Readiness, host: str, port: int) -> ThreadingHTTPServer:
    """Start the server in a daemon thread and return it (call .shutdown() to stop)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "brokkr-agent"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, "ok\n")
            elif path == "/readyz":
                ready, reason = readiness.check()
                self._send(200 if ready else 503, reason + "\n")
            elif path == "/health":
                # Always 200: the `status` field carries the verdict, so humans and
                # dashboards can read the document in every state.
                body = json.dumps(state.snapshot(), indent=2) + "\n"
                self._send(200, body, "application/json")
            elif path == "/metrics":
                self._send(200, state.metrics_text(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, "not found; try /healthz, /readyz, /health or /metrics\n")

        def _send(
            self, code: int, body: str | bytes, content_type: str = "text/plain; charset=utf-8"
        ) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("health: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
