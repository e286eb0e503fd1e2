"""Zero-downtime broker rollout on real pods (issue 13, part 1).

The broker chart from the working tree with 2 replicas; a client inside the cluster
polls an authenticated API call through the broker's Service, one new connection per
request, while `kubectl rollout restart` replaces both pods. The chart's
`broker.shutdownDelay` keeps each old pod serving (while /readyz says 503) until the
Service's endpoints no longer list it, so no request may fail. The figures go to the
session's timings (docs/upgrading.md has them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from tests.e2e_kind.conftest import (
    BROKER_CHART,
    READY_TIMEOUT,
    Cluster,
    KindImages,
    broker_values,
    helm_wait,
    ready,
    remove_namespace,
    restricted_namespace,
    write_values,
)
from tests.e2e_kind.lifecycle import Poller

pytestmark = pytest.mark.kind

NAMESPACE = "brokkr-rollout"
RELEASE = "rolling"
BROKER = "rolling-brokkr-broker"
SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=broker"


@pytest.fixture(scope="module")
def two_brokers(
    cluster: Cluster, kind_images: KindImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The broker chart with 2 replicas and the chart's default shutdown delay."""
    restricted_namespace(cluster, NAMESPACE)
    values = {**broker_values(kind_images), "replicaCount": 2}
    work = tmp_path_factory.mktemp("rollout")
    try:
        cluster.helm(
            "install",
            RELEASE,
            BROKER_CHART,
            *helm_wait(NAMESPACE),
            "--values",
            write_values(work, "broker", values),
        )
        yield cluster
    finally:
        cluster.helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
        remove_namespace(cluster, NAMESPACE)


def test_rollout_restart_of_two_brokers_fails_no_request(
    two_brokers: Cluster, kind_images: KindImages
):
    cluster = two_brokers
    before = {p["metadata"]["name"] for p in cluster.pods(NAMESPACE, SELECTOR)}
    assert len(before) == 2
    poller = Poller(cluster, NAMESPACE, kind_images.broker, BROKER, f"{BROKER}-admin")
    poller.start()
    try:
        started = time.time()
        cluster.kubectl("rollout", "restart", f"deployment/{BROKER}", "--namespace", NAMESPACE)
        cluster.kubectl(
            "rollout", "status", f"deployment/{BROKER}", "--namespace", NAMESPACE,
            f"--timeout={READY_TIMEOUT}s",
        )  # fmt: skip

        def only_new_pods_ready() -> bool:
            pods = cluster.pods(NAMESPACE, SELECTOR)
            names = {p["metadata"]["name"] for p in pods}
            return len(pods) == 2 and not names & before and all(ready(p) for p in pods)

        # the old pods are gone only after their shutdown delay and drain
        poll(only_new_pods_ready, READY_TIMEOUT, "the old broker pods to terminate")
        finished = time.time()
        seen = poller.seen(since=started, until=finished)
    finally:
        poller.stop()
    e2e_kind.record("rollout_restart_s", finished - started)
    e2e_kind.record("rollout_longest_gap_s", seen.longest_gap)
    e2e_kind.record("rollout_requests", len(seen.requests))
    assert len(seen.requests) > 50, "too few requests to say anything"
    assert not seen.failed, (
        f"{len(seen.failed)} of {len(seen.requests)} requests failed during the rollout: "
        + "; ".join(f"{r.started:.2f} {r.outcome}" for r in seen.failed[:10])
    )
