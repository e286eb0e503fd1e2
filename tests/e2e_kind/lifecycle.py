"""Helpers for the lifecycle tests on kind: a client that polls the broker through its
Service from inside the cluster while the broker rolls, and what it saw.

The poller is a pod running the broker image's Python: one new TCP connection per
request (so kube-proxy picks a backend each time, as a fresh client would), an
authenticated API call that reads the database, one log line per request with the
wall-clock start time (the kind node shares this host's clock). The test reads the
log while the pod runs, so the pod can be deleted afterwards without losing it.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

from brokkr_dev.base.localnet import wait_for as poll
from tests.e2e_kind.conftest import Cluster, restricted_spec

# Pacing between requests (load shape, not synchronisation): about 15 requests/s.
POLL_SCRIPT = """
import http.client, os, sys, time
host, port, pak = sys.argv[1], int(sys.argv[2]), os.environ["PAK"]
while True:
    started = time.time()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/api/v1/agents",
                     headers={"Authorization": "Bearer " + pak, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        outcome = str(response.status)
        conn.close()
    except Exception as exc:
        outcome = type(exc).__name__ + ":" + str(exc).replace(" ", "_")[:80]
    print(f"{started:.3f} {time.time() - started:.3f} {outcome}", flush=True)
    time.sleep(0.05)
"""


@dataclass(frozen=True)
class Request:
    started: float  # epoch seconds
    seconds: float
    outcome: str  # HTTP status or exception name

    @property
    def ok(self) -> bool:
        return self.outcome == "200"


@dataclass(frozen=True)
class Observed:
    """What the poller saw between two instants."""

    requests: list[Request]

    @property
    def failed(self) -> list[Request]:
        return [r for r in self.requests if not r.ok]

    @property
    def longest_gap(self) -> float:
        """Longest time between the starts of two successive successful requests."""
        starts = [r.started for r in self.requests if r.ok]
        return max((b - a for a, b in itertools.pairwise(starts)), default=0.0)


def parse(log: str) -> list[Request]:
    found = []
    for line in log.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            try:
                found.append(Request(float(parts[0]), float(parts[1]), parts[2]))
            except ValueError:
                continue  # a Python warning or traceback line, not a request
    return found


class Poller:
    """The polling pod; start with `start()`, read with `seen()`, remove with `stop()`."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        image: str,
        service: str,
        pak_secret: str,
        *,
        node: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = f"poller-{secrets.token_hex(3)}"
        self.path = f"/api/v1/namespaces/{namespace}/pods/{self.name}"
        spec = restricted_spec(image, ["python", "-c", POLL_SCRIPT, service, "3000"])
        spec["containers"][0]["env"] = [
            {"name": "PAK", "valueFrom": {"secretKeyRef": {"name": pak_secret, "key": "pak"}}}
        ]
        if node is not None:  # pinned, e.g. away from a node about to be drained
            spec["nodeName"] = node
        self.body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "labels": {"app.kubernetes.io/component": "test"}},
            "spec": {"restartPolicy": "Never", **spec},
        }

    def start(self, successes: int = 10) -> None:
        """Create the pod and wait until it has `successes` successful requests."""
        self.cluster.api.create(f"/api/v1/namespaces/{self.namespace}/pods", self.body)
        poll(
            lambda: sum(r.ok for r in self.requests()) >= successes,
            120,
            f"poller {self.name} to reach the broker",
        )

    def requests(self) -> list[Request]:
        phase = self.cluster.api.get(self.path)["status"].get("phase")
        if phase != "Running":
            return []
        return parse(self.cluster.api.request("GET", f"{self.path}/log").text)

    def seen(self, since: float, until: float, after: int = 10) -> Observed:
        """Requests started in [since, ...] once `after` successes came after `until`."""

        def enough() -> list[Request] | None:
            found = self.requests()
            later = sum(1 for r in found if r.ok and r.started > until)
            return found if later >= after else None

        found = poll(enough, 120, f"poller {self.name} to make {after} requests after the change")
        return Observed([r for r in found if r.started >= since])

    def stop(self) -> None:
        self.cluster.api.request("DELETE", self.path, gracePeriodSeconds=0)
