"""Chaos on real pods: Brokkr converges after pods die and after a network partition.

Each test breaks one thing while the agent works (the broker pod, the PostgreSQL
pod, the agent pod, the network between agent and broker), states the bound it
expects for convergence, and records the time it measured with `e2e_kind.record`
(printed in the timings table of `nox -s e2e-kind`; figures in docs/e2e.md).

The tests share the installation of the session fixture `brokkr` and leave it as
they found it (every pod Ready, one pod per component). pytest runs this file
before test_charts_on_kind.py (alphabetical order), whose last test uninstalls.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from brokkr.agent.manifests import OBJECT_ANNOTATION, STACK_LABEL
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.local.broker_admin import BrokerUnavailable
from tests.e2e_kind.conftest import (
    AGENT,
    AGENT_RELEASE,
    BROKER,
    NAMESPACE,
    Brokkr,
    Cluster,
    ready,
    selector,
)

pytestmark = [pytest.mark.kind, pytest.mark.slow]

# Convergence bounds (seconds), from the moment the fault starts (or ends, for the
# partition). They hold on the project's loaded 2-core machine with room to spare;
# the measured times are recorded, not asserted.
BROKER_POD_BOUND = 120  # new broker pod Ready + agent backoff + re-apply + report
POSTGRESQL_POD_BOUND = 120  # new PostgreSQL pod Ready + the broker's pool reconnecting
AGENT_POD_BOUND = 120  # new agent pod started + identified + re-apply + report
KILLED_BOUND = 10  # a SIGKILLed container's task is gone (containerd reaps it at once)
PARTITION_BOUND = 60  # the agent's backoff delay at the cut's end + one cycle
OUTAGE_SEEN_BOUND = 60  # the agent's /health reports the broker unreachable
POLLING_INTERVAL = 2  # the agent's, set by agent_values() in conftest.py
# Idle brokers after a database outage: /readyz answers 200 within 10 s of the
# database's return (the goal; tests/integration/test_process.py measures it with a
# full idle pool), and the kubelet marks a pod Ready at its next readiness probe
# (every 5 s, the chart's default).
IDLE_READY_BOUND = 10 + 5
STACK_SIZE = 150  # ConfigMaps per stack: enough that an apply takes seconds, so a
# fault can land in the middle of it


@dataclass(frozen=True)
class Target:
    """A namespace and a stack that the in-cluster agent is targeted at."""

    namespace: str
    stack: str


@pytest.fixture
def target(brokkr: Brokkr) -> Iterator[Target]:
    cluster, admin = brokkr.cluster, brokkr.admin
    namespace = f"chaos-{secrets.token_hex(3)}"
    cluster.api.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    try:
        generator = admin.generator(namespace)
        stack = admin.stack(namespace, generator)
        admin.register(generator, brokkr.agent_id)
        admin.target(brokkr.agent_id, stack)
        yield Target(namespace, stack)
    finally:
        cluster.api.request("DELETE", f"/api/v1/namespaces/{namespace}")


def configmaps(namespace: str, prefix: str, count: int = STACK_SIZE) -> tuple[str, set[str]]:
    """A stack of `count` ConfigMaps named `<prefix>-NNN`: (YAML, names)."""
    names = [f"{prefix}-{i:03d}" for i in range(count)]
    docs = [
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"data:\n  version: {prefix}\n"
        for name in names
    ]
    return "---\n".join(docs), set(names)


def owned(cluster: Cluster, stack: str) -> dict[str, str]:
    """Every object of the stack in the whole cluster: namespace/name -> deployment object id."""
    items = cluster.api.get("/api/v1/configmaps", labelSelector=f"{STACK_LABEL}={stack}")["items"]
    return {
        f"{i['metadata']['namespace']}/{i['metadata']['name']}": i["metadata"]["annotations"][
            OBJECT_ANNOTATION
        ]
        for i in items
    }


def applied_count(cluster: Cluster, stack: str, deployment_object: str) -> int:
    return sum(1 for do in owned(cluster, stack).values() if do == deployment_object)


def wait_mid_apply(cluster: Cluster, stack: str, deployment_object: str) -> int:
    """Wait until the agent has applied some objects of the deployment object; how many."""
    applied = poll(
        lambda: applied_count(cluster, stack, deployment_object),
        120,
        f"the agent to start applying {deployment_object}",
        interval=0.05,
    )
    assert applied < STACK_SIZE, (
        f"the agent applied all {STACK_SIZE} objects before the fault: raise STACK_SIZE"
    )
    return applied


def only_pod(cluster: Cluster, component: str, release: str) -> dict[str, Any]:
    """The single pod of a component, once it is Ready and alone (the old one gone)."""

    def alone_and_ready() -> dict[str, Any] | None:
        pods = cluster.pods(NAMESPACE, selector(component, release))
        if len(pods) != 1 or "deletionTimestamp" in pods[0]["metadata"]:
            return None
        return pods[0] if ready(pods[0]) else None

    found: dict[str, Any] = poll(alone_and_ready, 180, f"one Ready {component} pod", interval=0.5)
    return found


def delete_pod(cluster: Cluster, pod: dict[str, Any]) -> float:
    """Delete a pod as an eviction or a node drain would (its grace period); the start time."""
    started = time.monotonic()
    name = pod["metadata"]["name"]
    response = cluster.api.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
    assert response.status_code == 200, response.text
    return started


def crash_pod(brokkr: Brokkr, pod: dict[str, Any]) -> float:
    """Crash a pod as a node failure would: force-delete it (no grace period), then
    SIGKILL its container on the node at once; the start time.

    A force deletion alone still lets the kubelet stop the container with SIGTERM and
    a short grace (its 2 s minimum), in which the old process could finish its work.
    The SIGKILL (containerd's `ctr` on the kind node, as Partition uses iptables
    there) leaves it none; this returns once the container's task is gone.
    """
    name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
    (status,) = pod["status"]["containerStatuses"]
    container = status["containerID"].removeprefix("containerd://")
    kind = brokkr.cluster.kind.kind
    assert kind is not None
    started = time.monotonic()
    response = brokkr.cluster.api.request(
        "DELETE",
        f"/api/v1/namespaces/{NAMESPACE}/pods/{name}",
        {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
    )
    assert response.status_code == 200, response.text

    def ctr(*args: str, check: bool = True) -> str:
        return kind.engine.docker("exec", node, "ctr", "-n", "k8s.io", *args, check=check)

    # check=False: the kubelet may have removed the task already (then nothing runs).
    ctr("tasks", "kill", "--signal", "SIGKILL", container, check=False)
    poll(
        lambda: (
            not any(
                line.split()[0] == container and "RUNNING" in line
                for line in ctr("tasks", "ls").splitlines()[1:]
                if line.split()
            )
        ),
        KILLED_BOUND,
        f"the killed container {container[:12]} to stop",
        interval=0.2,
    )
    return started


def started_at(pod: dict[str, Any]) -> datetime.datetime:
    """When the pod's (single) container started, as the kubelet reports it (seconds)."""
    (status,) = pod["status"]["containerStatuses"]
    return datetime.datetime.fromisoformat(status["state"]["running"]["startedAt"])


def replaced(cluster: Cluster, old: dict[str, Any], component: str, release: str) -> bool:
    pods = cluster.pods(NAMESPACE, selector(component, release))
    return any(p["metadata"]["uid"] != old["metadata"]["uid"] and ready(p) for p in pods)


def succeeded(brokkr: Brokkr, deployment_object: str) -> dict[str, Any] | None:
    event = brokkr.admin.event_for(brokkr.agent_id, deployment_object)
    return event if event and event["status"] == "SUCCESS" else None


def converged(brokkr: Brokkr, target: Target, deployment_object: str, names: set[str]) -> bool:
    """The stack's objects are exactly `names`, all from this deployment object, reported."""
    expected = {f"{target.namespace}/{name}": deployment_object for name in names}
    return owned(brokkr.cluster, target.stack) == expected and bool(
        succeeded(brokkr, deployment_object)
    )


def readyz(brokkr: Brokkr) -> int:
    url = brokkr.admin.api.removesuffix("/api/v1") + "/readyz"
    return brokkr.admin.session.get(url, timeout=5).status_code


def test_broker_pod_deleted_while_the_agent_applies_a_stack_the_agent_converges(
    brokkr: Brokkr, target: Target
):
    cluster = brokkr.cluster
    yaml_text, names = configmaps(target.namespace, "during-broker-loss")
    broker = only_pod(cluster, "broker", "broker")
    deployed = brokkr.admin.deploy(target.stack, yaml_text)
    wait_mid_apply(cluster, target.stack, deployed["id"])
    started = delete_pod(cluster, broker)
    # Once the old pod is gone: kubectl's port-forward ended with it (the agent itself
    # goes through the Service).
    poll(lambda: replaced(cluster, broker, "broker", "broker"), BROKER_POD_BOUND, "a new broker")
    only_pod(cluster, "broker", "broker")
    brokkr.reconnect()
    poll(
        lambda: converged(brokkr, target, deployed["id"], names),
        BROKER_POD_BOUND - (time.monotonic() - started),
        "the agent to apply the whole stack and report it to the new broker",
        interval=1,
    )
    e2e_kind.record("chaos_broker_pod_converged_s", time.monotonic() - started)


def test_postgresql_pod_deleted_readyz_goes_503_and_returns_with_nothing_lost(
    brokkr: Brokkr, target: Target
):
    cluster, admin = brokkr.cluster, brokkr.admin
    yaml_text, names = configmaps(target.namespace, "before-db-loss", count=3)
    deployed = admin.deploy(target.stack, yaml_text)
    poll(lambda: converged(brokkr, target, deployed["id"], names), 120, "the stack applied")

    def rows_of() -> dict[str, Any]:
        return {
            "agents": admin.call("GET", "/agents"),
            "stacks": admin.call("GET", "/stacks"),
            "deployment_objects": admin.call("GET", f"/stacks/{target.stack}/deployment-objects"),
            "events": admin.events(brokkr.agent_id),
        }

    rows = rows_of()
    assert readyz(brokkr) == 200
    postgresql = only_pod(cluster, "postgresql", "broker")
    # The port-forward reaches the broker pod itself, so its 503 is seen even while
    # the pod is out of the Service's endpoints. /readyz is sampled every quarter
    # second from before the deletion on. A replacement that answers within the
    # probe's cache and retry (about 3 s: it did here) leaves /readyz at 200, which
    # is what the retry is for; so the node is cordoned while the pod is deleted, the
    # replacement waits unscheduled, and the outage lasts until the uncordon.
    with ReadyzWatch(brokkr) as watch:
        with Cordoned(cluster, postgresql["spec"]["nodeName"]):
            started = delete_pod(cluster, postgresql)
            unready_at = watch.wait(
                503, 0.0, POSTGRESQL_POD_BOUND, "the broker's /readyz to say 503"
            )
        back_from = time.monotonic()
        watch.wait(
            200,
            back_from,
            POSTGRESQL_POD_BOUND,
            "the broker's /readyz to return to 200 by itself once the pod can start",
        )
    e2e_kind.record("chaos_postgresql_pod_readyz_503_after_s", unready_at - started)
    e2e_kind.record("chaos_postgresql_pod_readyz_back_s", time.monotonic() - back_from)
    assert replaced(cluster, postgresql, "postgresql", "broker")
    # A pooled connection that died with the old pod may still fail one call (503).
    after = poll(rows_of, 30, "every table read back", not_yet=(BrokerUnavailable,))
    for table, before in rows.items():
        # Agents carry their heartbeat time, which moves on: compare the rest.
        assert strip_times(after[table]) == strip_times(before), f"{table} changed"
    only_pod(cluster, "broker", "broker")


def test_postgresql_pod_back_idle_brokers_ready_again_within_the_bound(brokkr: Brokkr):
    """Two brokers with no client at all (the agent scaled to zero; the test's own
    port-forward sends nothing): once the PostgreSQL pod is back, only the kubelet's
    readiness probes reach them, and both pods must be Ready within IDLE_READY_BOUND of
    the database pod's Ready, by the kubelet's own transition times (one node clock)."""
    cluster = brokkr.cluster
    brokers = selector("broker", "broker")
    with Scaled(cluster, AGENT, 0), Scaled(cluster, BROKER, 2):
        poll(
            lambda: not cluster.pods(NAMESPACE, selector("agent", AGENT_RELEASE)),
            120,
            "the agent pod gone (the brokers idle)",
        )
        poll(
            lambda: len([p for p in cluster.pods(NAMESPACE, brokers) if ready(p)]) == 2,
            180,
            "two Ready broker pods",
            interval=0.5,
        )
        postgresql = only_pod(cluster, "postgresql", "broker")
        # Cordoned, as in the test above: the outage lasts until the uncordon, long
        # enough for the probes to mark both brokers unready.
        with Cordoned(cluster, postgresql["spec"]["nodeName"]):
            delete_pod(cluster, postgresql)
            poll(
                lambda: not any(ready(p) for p in cluster.pods(NAMESPACE, brokers)),
                POSTGRESQL_POD_BOUND,
                "both broker pods unready while the database is gone",
                interval=0.5,
            )
        back = only_pod(cluster, "postgresql", "broker")
        assert back["metadata"]["uid"] != postgresql["metadata"]["uid"]

        def both_ready() -> list[dict[str, Any]] | None:
            pods = [p for p in cluster.pods(NAMESPACE, brokers) if ready(p)]
            return pods if len(pods) == 2 else None

        # Waited for well past the bound, so a slow recovery is measured, not timed out.
        ready_again = poll(both_ready, POSTGRESQL_POD_BOUND, "both broker pods Ready again")
        gap = max(ready_since(p) for p in ready_again) - ready_since(back)
        e2e_kind.record("chaos_idle_brokers_ready_after_database_s", gap.total_seconds())
        assert gap.total_seconds() <= IDLE_READY_BOUND, (
            f"idle brokers Ready {gap.total_seconds():.0f} s after PostgreSQL"
        )
    only_pod(cluster, "broker", "broker")
    only_pod(cluster, "agent", AGENT_RELEASE)
    brokkr.reconnect()  # the port-forward's pod may be the one scaled away


def ready_since(pod: dict[str, Any]) -> datetime.datetime:
    """When the kubelet last marked the pod Ready (its condition's transition time)."""
    (condition,) = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    assert condition["status"] == "True", pod["metadata"]["name"]
    return datetime.datetime.fromisoformat(condition["lastTransitionTime"])


class Scaled(contextlib.AbstractContextManager["Scaled"]):
    """A Deployment of the shared install at `replicas` for the block, then as it was."""

    def __init__(self, cluster: Cluster, deployment: str, replicas: int) -> None:
        self.cluster = cluster
        self.path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployment}"
        self.replicas = replicas
        self.before: int | None = None

    def __enter__(self) -> Scaled:
        self.before = int(self.cluster.api.get(self.path)["spec"]["replicas"])
        self.cluster.api.patch(self.path, {"spec": {"replicas": self.replicas}})
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cluster.api.patch(self.path, {"spec": {"replicas": self.before}})


class Cordoned:
    """A node marked unschedulable for the block (as `kubectl cordon`), then not."""

    def __init__(self, cluster: Cluster, node: str) -> None:
        self.cluster, self.path = cluster, f"/api/v1/nodes/{node}"

    def __enter__(self) -> Cordoned:
        self.cluster.api.patch(self.path, {"spec": {"unschedulable": True}})
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cluster.api.patch(self.path, {"spec": {"unschedulable": None}})


class ReadyzWatch:
    """Samples the broker's /readyz in a thread: (monotonic time, status code, or the
    name of the error when no answer came through the port-forward)."""

    def __init__(self, brokkr: Brokkr, interval: float = 0.25) -> None:
        self.url = brokkr.admin.api.removesuffix("/api/v1") + "/readyz"
        self.forward = brokkr.forward
        self.interval = interval
        self.samples: list[tuple[float, int | str]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="readyz-watch", daemon=True)

    def __enter__(self) -> ReadyzWatch:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _sample(self) -> None:
        while not self.stopped.is_set():
            try:
                status: int | str = requests.get(self.url, timeout=2).status_code
            except requests.RequestException as exc:
                status = exc.__class__.__name__  # the port-forward failed: not an answer
            self.samples.append((time.monotonic(), status))
            self.stopped.wait(self.interval)

    def first(self, status: int, after: float = 0.0) -> float | None:
        """When `status` was first answered after `after`, or None."""
        return next((at for at, seen in list(self.samples) if seen == status and at > after), None)

    def wait(self, status: int, after: float, timeout: float, what: str) -> float:
        """When `status` was first answered after `after`, waiting up to `timeout`;
        the error names what was seen instead and how the port-forward fared."""
        try:
            return poll(lambda: self.first(status, after), timeout, what)
        except TimeoutError as exc:
            seen = collections.Counter(str(status) for _, status in list(self.samples))
            forward = self.forward.describe() if self.forward else "no port-forward"
            raise TimeoutError(f"{exc}; samples seen: {dict(seen)}; {forward}") from None


def strip_times(rows: Any) -> Any:
    """Rows without the fields a live agent keeps updating."""
    volatile = {"last_heartbeat", "k8s_reachable", "k8s_api_latency_ms", "k8s_reported_at"}
    if isinstance(rows, list):
        return [strip_times(row) for row in rows]
    return {key: value for key, value in rows.items() if key not in volatile}


def test_agent_pod_deleted_mid_apply_converges_without_duplicates_or_orphans(
    brokkr: Brokkr, target: Target
):
    """A real crash mid-apply: the old agent dies with the apply half done, and the
    replacement pod alone finishes it, prunes the first version and reports once."""
    cluster = brokkr.cluster
    first_yaml, first_names = configmaps(target.namespace, "first")
    first = brokkr.admin.deploy(target.stack, first_yaml)
    poll(
        lambda: converged(brokkr, target, first["id"], first_names),
        AGENT_POD_BOUND,
        "the first version applied",
        interval=1,
    )
    # The second version renames every object: what the first left must be pruned.
    second_yaml, second_names = configmaps(target.namespace, "second")
    agent = only_pod(cluster, "agent", AGENT_RELEASE)
    second = brokkr.admin.deploy(target.stack, second_yaml)
    wait_mid_apply(cluster, target.stack, second["id"])
    started = crash_pod(brokkr, agent)
    # The old process is dead: what it applied is all it ever will, and it reported nothing.
    at_crash = applied_count(cluster, target.stack, second["id"])
    assert at_crash < STACK_SIZE, f"the old agent finished all {STACK_SIZE} objects before dying"
    assert succeeded(brokkr, second["id"]) is None, "the old agent reported the second version"
    # Wait for the replacement (a new pod, Ready), then judge convergence by its work.
    new = only_pod(cluster, "agent", AGENT_RELEASE)
    assert new["metadata"]["uid"] != agent["metadata"]["uid"], "the crashed pod came back"
    e2e_kind.record("chaos_agent_pod_replaced_s", time.monotonic() - started)
    poll(
        lambda: converged(brokkr, target, second["id"], second_names),
        AGENT_POD_BOUND - (time.monotonic() - started),
        "the new agent pod to apply the second version and prune the first",
        interval=1,
    )
    e2e_kind.record("chaos_agent_pod_converged_s", time.monotonic() - started)
    reports = [
        e for e in brokkr.admin.events(brokkr.agent_id) if e["deployment_object_id"] == second["id"]
    ]
    # The killed agent abandoned the apply unreported; only the new one reported it,
    # once, after it started (its container's start time is cut to whole seconds).
    assert [e["status"] for e in reports] == ["SUCCESS"], reports
    reported_at = datetime.datetime.fromisoformat(reports[0]["created_at"])
    assert reported_at >= started_at(new), (reports[0], new["status"]["containerStatuses"])
    # The same replacement did it: no second crash or restart along the way.
    after = only_pod(cluster, "agent", AGENT_RELEASE)
    assert after["metadata"]["uid"] == new["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0, after["status"]


class Partition:
    """Drop every packet between two pods on the node's forwarding path, both ways.

    The rules go into the mangle table's FORWARD chain, after kube-proxy's DNAT (so
    they see pod addresses) and before any filter rule: established connections (the
    agent's kept-alive session) are cut too, and kube-router, which keeps its own
    jump first in the filter table's FORWARD chain, cannot let traffic past them.
    """

    def __init__(self, brokkr: Brokkr, a: dict[str, Any], b: dict[str, Any]) -> None:
        kind = brokkr.cluster.kind.kind
        assert kind is not None
        self.engine = kind.engine
        self.node = a["spec"]["nodeName"]
        ip_a, ip_b = a["status"]["podIP"], b["status"]["podIP"]
        self.rules = [
            ["-s", ip_a, "-d", ip_b, "-j", "DROP"],
            ["-s", ip_b, "-d", ip_a, "-j", "DROP"],
        ]

    def iptables(self, *args: str, check: bool = True) -> str:
        return self.engine.docker("exec", self.node, "iptables", "-t", "mangle", *args, check=check)

    def cut(self) -> None:
        for rule in self.rules:
            self.iptables("-I", "FORWARD", "1", *rule)

    def holds(self) -> bool:
        """Both rules are still in place (nothing removed or bypassed them)."""
        listing = self.iptables("-S", "FORWARD")
        return all(f"-A FORWARD -s {r[1]}/32 -d {r[3]}/32 -j DROP" in listing for r in self.rules)

    def heal(self) -> None:
        for rule in self.rules:
            self.iptables("-D", "FORWARD", *rule, check=False)


def agent_health(cluster: Cluster, pod: dict[str, Any]) -> dict[str, Any]:
    """The agent's /health document, through the API server's pod proxy (not cut)."""
    name = pod["metadata"]["name"]
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}:8080/proxy/health"
    found: dict[str, Any] = cluster.api.get(path)
    return found


def backoff_delays(cluster: Cluster, pod: dict[str, Any], since: float) -> dict[int, float]:
    """Consecutive failures -> the delay the agent chose, from its log since `since`."""
    name = pod["metadata"]["name"]
    seconds = int(time.monotonic() - since) + 1
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/log"
    text = cluster.api.request("GET", path, sinceSeconds=seconds).text
    found = re.findall(r"next try in ([\d.]+) s \((\d+) consecutive failures\)", text)
    return {int(failures): float(delay) for delay, failures in found}


def test_network_partition_agent_keeps_state_backs_off_reports_and_converges(
    brokkr: Brokkr, target: Target
):
    cluster = brokkr.cluster
    path = f"/api/v1/namespaces/{target.namespace}/configmaps/kept"
    yaml_text = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: {target.namespace}\ndata:\n  version: before\n"
    before = brokkr.admin.deploy(target.stack, yaml_text)
    poll(lambda: succeeded(brokkr, before["id"]), 120, "the stack applied before the cut")
    agent = only_pod(cluster, "agent", AGENT_RELEASE)
    broker = only_pod(cluster, "broker", "broker")
    split = Partition(brokkr, agent, broker)
    split.cut()
    try:
        cut_at = time.monotonic()
        health = poll(
            lambda: (h := agent_health(cluster, agent))["broker"]["connected"] is False and h,
            OUTAGE_SEEN_BOUND,
            "the agent's /health to report the broker unreachable",
            interval=0.5,
        )
        e2e_kind.record("chaos_partition_outage_on_health_s", time.monotonic() - cut_at)
        assert health["status"] == "degraded", health
        assert health["broker"]["error"], health
        # A new version waits at the broker (reached through the API server, not cut).
        after = brokkr.admin.deploy(target.stack, yaml_text.replace("before", "after"))
        # Backing off: three failures in a row, the third delay longer than the interval.
        delays = poll(
            lambda: (d := backoff_delays(cluster, agent, cut_at)).get(3) and d,
            OUTAGE_SEEN_BOUND * 2,
            "three consecutive failed cycles in the agent's log",
            interval=1,
        )
        assert delays[3] >= 2 * POLLING_INTERVAL and delays[3] > delays[1], delays
        # The agent keeps what it applied while it cannot reach the broker.
        assert cluster.api.get(path)["data"] == {"version": "before"}
        assert agent_health(cluster, agent)["status"] == "degraded"
        assert split.holds(), "the partition did not hold for the whole outage"
    finally:
        split.heal()
    healed_at = time.monotonic()
    poll(
        lambda: (
            succeeded(brokkr, after["id"]) and cluster.api.get(path)["data"]["version"] == "after"
        ),
        PARTITION_BOUND,
        "the agent to apply the new version after the network returns",
        interval=0.5,
    )
    e2e_kind.record("chaos_partition_converged_after_heal_s", time.monotonic() - healed_at)
    health = poll(
        lambda: (h := agent_health(cluster, agent))["status"] == "healthy" and h,
        PARTITION_BOUND,
        "the agent's /health to be healthy again",
    )
    assert health["broker"]["connected"] is True and health["broker"]["error"] is None
    # The same pod rode it out, and the stack is exactly the new version.
    assert only_pod(cluster, "agent", AGENT_RELEASE)["metadata"]["uid"] == agent["metadata"]["uid"]
    assert owned(cluster, target.stack) == {f"{target.namespace}/kept": after["id"]}
