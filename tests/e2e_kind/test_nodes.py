"""Several nodes (issue 28.2): a control plane and two workers, drained one at a time.

A kind cluster of its own, `<session cluster>-nodes`, from the session's node image
(the same Kubernetes minor), with two worker nodes whose pod networks
brokkr_dev.clusters.podnetwork joins. The broker chart runs 2 replicas with a
PodDisruptionBudget (minAvailable 1) and the chart's default spread, the bundled
PostgreSQL on a local volume (bound to one worker), and the agent chart.

1. The two brokers land on the two workers (the control plane is tainted).
2. `kubectl drain` of the worker with a broker but not PostgreSQL, while a client pod
   on the other worker polls through the Service (its ClusterIP): no request fails.
3. `kubectl drain` of the agent's worker: the agent pod starts on the other worker,
   resumes from the broker's state and applies a deployment object posted once the
   drain has evicted the old pod (the gap from the drain's start is recorded); the objects it had applied before keep their UID and
   resourceVersion (none pruned, none written again).
4. `kubectl drain` of PostgreSQL's worker: the database pod cannot follow its local
   volume, so no broker can be Ready, and the PodDisruptionBudget then refuses to
   evict the last broker: the drain cannot finish (docs/operators/production.md says
   so). After `kubectl uncordon` the database returns on its node and the brokers are
   Ready again with the data kept.

Each drain is undone (`uncordon`) whatever happens.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.local.broker_admin import BrokerAdmin, BrokerUnavailable
from tests.e2e_kind.conftest import (
    AGENT_CHART,
    BROKER_CHART,
    READY_TIMEOUT,
    Cluster,
    KindImages,
    PortForward,
    agent_values,
    broker_values,
    cluster_beside,
    helm_wait,
    ready,
    remove_namespace,
    restricted_namespace,
    write_values,
)
from tests.e2e_kind.lifecycle import Poller
from tests.fixtures.kind import KindCluster, session_provider

pytestmark = [pytest.mark.kind, pytest.mark.slow]

WORKERS = 2
NAMESPACE = "brokkr-nodes"
APPS = "nodes-apps"  # where the stacks' objects go
BROKER_RELEASE, AGENT_RELEASE = "spread", "drained"
BROKER = f"{BROKER_RELEASE}-brokkr-broker"
AGENT_NAME, CLUSTER_NAME = "nodes-agent", "nodes"
APPLY_BOUND = 180  # drain, a new agent pod Ready on the other worker, apply, report
DRAIN_TIMEOUT = 300
BLOCKED_DRAIN_TIMEOUT = 60  # how long the PostgreSQL node's drain is given to fail


def selector(component: str, release: str) -> str:
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"


BROKERS = selector("broker", BROKER_RELEASE)
POSTGRESQL = selector("postgresql", BROKER_RELEASE)
AGENTS = selector("agent", AGENT_RELEASE)


@pytest.fixture(scope="module")
def nodes(kind_cluster: KindCluster, kind_images: KindImages) -> Iterator[Cluster]:
    """A cluster of a control plane and two workers, with our images on every node."""
    provider = session_provider("-nodes", workers=WORKERS)
    images = [kind_images.broker, kind_images.agent, kind_images.postgresql.reference]
    with cluster_beside(provider, images, "nodes_cluster_up_s") as three:
        yield three


@dataclass
class Installed:
    cluster: Cluster
    admin: BrokerAdmin
    agent_id: str
    forward: PortForward

    def reconnect(self) -> None:
        """Forward to a Ready broker pod that is not terminating.

        `kubectl port-forward service/...` picks its pod once and may pick the
        oldest Ready one, which after a drain can be the evicted pod still in its
        grace period: the forward then dies with it a few seconds later.
        """
        self.forward.stop()
        (pod, *_) = wait_ready(self.cluster, BROKERS, 2, "two Ready broker pods to forward to")
        name = pod["metadata"]["name"]
        self.forward = PortForward(self.cluster, NAMESPACE, name, 3000, kind="pod")
        self.admin.api = self.forward.url + "/api/v1"


@pytest.fixture(scope="module")
def installed(
    nodes: Cluster, kind_images: KindImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    cluster = nodes
    restricted_namespace(cluster, NAMESPACE)
    work = tmp_path_factory.mktemp("nodes")
    broker = {
        **broker_values(kind_images),
        "replicaCount": 2,
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    }
    cluster.helm(
        "install", BROKER_RELEASE, BROKER_CHART, *helm_wait(NAMESPACE),
        "--values", write_values(work, "broker", broker),
    )  # fmt: skip
    forward = PortForward(cluster, NAMESPACE, BROKER, 3000)
    found = Installed(cluster, BrokerAdmin(forward.url, ""), "", forward)
    try:
        found.admin = BrokerAdmin(forward.url, cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"])
        found.agent_id, pak = found.admin.agent(AGENT_NAME, CLUSTER_NAME)
        agent = {
            **agent_values(kind_images, pak),
            "broker": {"url": f"http://{BROKER}.{NAMESPACE}.svc:3000", "port": 3000},
            "agent": {"name": AGENT_NAME, "clusterName": CLUSTER_NAME, "pollingInterval": 2},
        }
        cluster.helm(
            "install", AGENT_RELEASE, AGENT_CHART, *helm_wait(NAMESPACE),
            "--values", write_values(work, "agent", agent),
        )  # fmt: skip
        cluster.api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS}},
        )
        yield found
    finally:
        found.forward.stop()
        for release in (AGENT_RELEASE, BROKER_RELEASE):
            cluster.helm("uninstall", release, "--namespace", NAMESPACE, "--wait", check=False)
        remove_namespace(cluster, NAMESPACE)
        cluster.api.request("DELETE", f"/api/v1/namespaces/{APPS}")


# -- nodes and pods ------------------------------------------------------------------


def workers(cluster: Cluster) -> list[str]:
    items = cluster.api.get("/api/v1/nodes")["items"]
    names = [
        n["metadata"]["name"]
        for n in items
        if "node-role.kubernetes.io/control-plane" not in n["metadata"].get("labels", {})
    ]
    assert len(names) == WORKERS, f"expected {WORKERS} workers, found {names}"
    return sorted(names)


def ready_pods(cluster: Cluster, selector_: str) -> list[dict[str, Any]]:
    pods = cluster.pods(NAMESPACE, selector_)
    return [p for p in pods if ready(p) and "deletionTimestamp" not in p["metadata"]]


def node_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["nodeName"])


def wait_ready(cluster: Cluster, selector_: str, count: int, what: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = poll(
        lambda: (pods := ready_pods(cluster, selector_)) and len(pods) == count and pods,
        READY_TIMEOUT,
        what,
        interval=0.5,
    )
    return found


@contextlib.contextmanager
def drained(cluster: Cluster, node: str, timeout: int = DRAIN_TIMEOUT) -> Iterator[Any]:
    """`kubectl drain` the node (yields the finished command); uncordon afterwards."""
    try:
        yield cluster.kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
            f"--timeout={timeout}s", timeout=timeout + 30, check=False,
        )  # fmt: skip
    finally:
        cluster.kubectl("uncordon", node)


@contextlib.contextmanager
def cordoned(cluster: Cluster, node: str) -> Iterator[None]:
    cluster.kubectl("cordon", node)
    try:
        yield
    finally:
        cluster.kubectl("uncordon", node)


# -- 1. spread -------------------------------------------------------------------------


def test_two_brokers_land_on_the_two_workers(installed: Installed):
    cluster = installed.cluster
    brokers = wait_ready(cluster, BROKERS, 2, "two Ready broker pods")
    placed = sorted(node_of(p) for p in brokers)
    assert placed == workers(cluster), f"the brokers did not spread: {placed}"


# -- 2. a broker's node drained --------------------------------------------------------


def test_draining_a_broker_node_fails_no_request_through_the_service(
    installed: Installed, kind_images: KindImages
):
    cluster = installed.cluster
    brokers = wait_ready(cluster, BROKERS, 2, "two Ready broker pods")
    (database,) = wait_ready(cluster, POSTGRESQL, 1, "the PostgreSQL pod Ready")
    kept = node_of(database)  # PostgreSQL cannot leave its node: drain the other
    (target,) = [node_of(p) for p in brokers if node_of(p) != kept]
    # By the Service's ClusterIP: a CoreDNS pod evicted by the same drain must not
    # count as a failure of the broker.
    service = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{BROKER}")
    address = service["spec"]["clusterIP"]
    poller = Poller(cluster, NAMESPACE, kind_images.broker, address, f"{BROKER}-admin", node=kept)
    poller.start()
    try:
        started = time.time()
        with drained(cluster, target) as drain:
            assert drain.returncode == 0, drain.stdout + drain.stderr
            wait_ready(cluster, BROKERS, 2, "two Ready brokers again, both off the drained node")
            finished = time.time()
            seen = poller.seen(since=started, until=finished)
    finally:
        poller.stop()
    e2e_kind.record("nodes_broker_drain_s", finished - started)
    e2e_kind.record("nodes_broker_drain_requests", len(seen.requests))
    assert len(seen.requests) > 50, "too few requests to say anything"
    assert not seen.failed, (
        f"{len(seen.failed)} of {len(seen.requests)} requests failed during the drain: "
        + "; ".join(f"{r.started:.2f} {r.outcome}" for r in seen.failed[:10])
    )
    assert all(node_of(p) == kept for p in ready_pods(cluster, BROKERS))
    installed.reconnect()  # the port-forward's broker pod may have been the evicted one


# -- 3. the agent's node drained -------------------------------------------------------


def configmaps(prefix: str, count: int) -> str:
    return "---\n".join(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {prefix}-{i:02d}\n"
        f"  namespace: {APPS}\ndata:\n  from: {prefix}\n"
        for i in range(count)
    )


def stack_for(installed: Installed, name: str) -> str:
    return installed.admin.targeted_stack(f"{name}-{secrets.token_hex(3)}", installed.agent_id)


def reported(installed: Installed, deployment_object: str) -> list[dict[str, Any]]:
    """The agent's events for a deployment object."""
    events = installed.admin.events(installed.agent_id)
    return [e for e in events if e.get("deployment_object_id") == deployment_object]


def succeeded(installed: Installed, deployment_object: str, bound: float, what: str) -> None:
    """Wait until the agent reported SUCCESS for the deployment object (a broker that
    answers 503 while it reconnects counts as "not yet")."""
    poll(
        lambda: any(e["status"] == "SUCCESS" for e in reported(installed, deployment_object)),
        bound,
        what,
        not_yet=(BrokerUnavailable,),
    )


def applied(cluster: Cluster, prefix: str) -> dict[str, tuple[str, str]]:
    """The ConfigMaps named `<prefix>-NN` in APPS: name -> (uid, resourceVersion)."""
    items = cluster.api.get(f"/api/v1/namespaces/{APPS}/configmaps")["items"]
    return {
        i["metadata"]["name"]: (i["metadata"]["uid"], i["metadata"]["resourceVersion"])
        for i in items
        if i["metadata"]["name"].startswith(f"{prefix}-")
    }


def test_draining_the_agents_node_moves_it_and_it_resumes_without_rewriting(
    installed: Installed,
):
    cluster, admin = installed.cluster, installed.admin
    (database,) = wait_ready(cluster, POSTGRESQL, 1, "the PostgreSQL pod Ready")
    (agent,) = wait_ready(cluster, AGENTS, 1, "the agent pod Ready")
    if node_of(agent) == node_of(database):
        # Drain a node without the database: move the agent off it first.
        with cordoned(cluster, node_of(database)):
            cluster.api.request(
                "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{agent['metadata']['name']}"
            )
            poll(
                lambda: (pods := ready_pods(cluster, AGENTS)) and len(pods) == 1
                and pods[0]["metadata"]["uid"] != agent["metadata"]["uid"],
                READY_TIMEOUT,
                "the agent pod on the other worker",
            )  # fmt: skip
        (agent,) = ready_pods(cluster, AGENTS)
    before_stack = stack_for(installed, "before")
    first = admin.deploy(before_stack, configmaps("before", 10))
    succeeded(installed, first["id"], APPLY_BOUND, "the first stack applied and reported")
    kept = applied(cluster, "before")
    assert len(kept) == 10, kept
    during_stack = stack_for(installed, "during")
    started = time.monotonic()
    with drained(cluster, node_of(agent)) as drain:
        posted = admin.deploy(during_stack, configmaps("during", 5))
        assert drain.returncode == 0, drain.stdout + drain.stderr
        (moved,) = wait_ready(cluster, AGENTS, 1, "one Ready agent pod on the other worker")
        assert moved["metadata"]["uid"] != agent["metadata"]["uid"]
        assert node_of(moved) != node_of(agent)
        succeeded(
            installed, posted["id"], APPLY_BOUND, "the object posted after the eviction reported"
        )
        gap = time.monotonic() - started
    e2e_kind.record("nodes_agent_drain_converged_s", gap)
    assert len(applied(cluster, "during")) == 5
    assert [e["status"] for e in reported(installed, posted["id"])] == ["SUCCESS"]
    assert applied(cluster, "before") == kept, "an object applied before the drain was rewritten"


# -- 4. PostgreSQL's node drained ------------------------------------------------------


def test_draining_the_databases_node_cannot_finish_and_uncordon_recovers(
    installed: Installed,
):
    cluster = installed.cluster
    (database,) = wait_ready(cluster, POSTGRESQL, 1, "the PostgreSQL pod Ready")
    wait_ready(cluster, BROKERS, 2, "two Ready broker pods")
    agents_before = {a["id"] for a in installed.admin.call("GET", "/agents")}
    node = node_of(database)
    started = time.monotonic()
    with drained(cluster, node, timeout=BLOCKED_DRAIN_TIMEOUT) as drain:
        said = drain.stdout + drain.stderr
        assert drain.returncode != 0, f"the drain finished: {said}"
        assert "disruption budget" in said, said
        pending = cluster.pods(NAMESPACE, POSTGRESQL)
        assert pending and not any(ready(p) for p in pending), "PostgreSQL stayed Ready"
        assert not ready_pods(cluster, BROKERS), "a broker stayed Ready without its database"
    # Uncordoned: the database starts again on its node, then the brokers are Ready.
    (back,) = wait_ready(cluster, POSTGRESQL, 1, "PostgreSQL Ready again")
    assert node_of(back) == node
    wait_ready(cluster, BROKERS, 2, "two Ready brokers again")
    e2e_kind.record("nodes_database_drain_recovered_s", time.monotonic() - started)
    installed.reconnect()
    agents_after = poll(
        lambda: {a["id"] for a in installed.admin.call("GET", "/agents")},
        60,
        "the agents read back",
        not_yet=(BrokerUnavailable,),
    )
    assert agents_after == agents_before
