"""Upgrade from the previous release and roll back, on real pods (issue 13, parts 1-2).

The release pipeline publishes N-1 (tests.fixtures.previous_release: the highest earlier
stable tag, else the older commit of main pinned there) into a local OCI registry
for the node's platform. The kind node cannot pull from it, so N-1's images are pulled
from the registry into podman and loaded into the node, as tests/e2e_kind loads the
working tree's images; the charts come from `oci://`.

The tests run in order on one namespace:

1. install N-1 (broker with 2 replicas, agent) from `oci://`; create generators,
   agents, stacks, deployment objects, labels and targets through the broker API; the
   agent applies them; `helm upgrade` both releases to the working tree's charts and
   images while a client polls through the broker Service; then every database row
   from before is still there, the admin PAK and both agent PAKs work, the agent keeps
   reconciling, and the longest unavailability stays under UNAVAILABLE_BOUND_S (why a
   bound and not zero: see there);
2. `helm rollback` brings N-1 back Ready, on the same data (rows made after the
   upgrade too), with the PAKs working (the migration policy: docs/upgrading.md), and
   not one request fails: the pods it replaces are the working tree's, which stop
   taking connections before they close (shutdownDelay).
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.containers import podman as containers
from brokkr_dev.local.broker_admin import BrokerAdmin
from tests.e2e_kind.conftest import (
    AGENT_CHART,
    BROKER_CHART,
    READY_TIMEOUT,
    Cluster,
    KindImages,
    PortForward,
    helm_wait,
    ready,
    remove_namespace,
    restricted_namespace,
    write_values,
)
from tests.e2e_kind.lifecycle import Observed, Poller
from tests.fixtures.kind import KindCluster
from tests.fixtures.previous_release import PreviousRelease, publish
from tests.fixtures.registry import LocalRegistry

pytestmark = pytest.mark.kind

NAMESPACE = "brokkr-upgrade"
# Own release names: the agent chart's ClusterRole is named after the release.
BROKER_RELEASE, AGENT_RELEASE = "upg-broker", "upg-agent"
BROKER = "upg-broker-brokkr-broker"
POSTGRESQL = f"{BROKER}-postgresql"
AGENT_NAME, CLUSTER_NAME = "upgrade-agent", "upgrade-e2e"
# The longest a client through the Service may go without a successful request while
# the broker is upgraded (2 replicas, maxUnavailable 0). Not zero, because the pods an
# upgrade stops are N-1's: the pinned N-1 (and any release before the broker's
# shutdownDelay) closes its listener on SIGTERM while kube-proxy still routes to it,
# so connections are refused for about one endpoint propagation (~1-2 s on kind).
# The working tree's chart gives no failure at all (test_rollout.py, and the rollback
# below, which stops working-tree pods). The bound leaves room for a loaded machine.
UNAVAILABLE_BOUND_S = 10.0
APPLY_TIMEOUT = 120


@dataclass(frozen=True)
class Published:
    """N-1 in the local registry, its images also in the node."""

    previous: PreviousRelease
    host: str
    images: dict[str, str]  # brokkr-broker / brokkr-agent -> reference

    @property
    def version(self) -> str:
        return self.previous.version.plain

    def chart(self, name: str) -> str:
        return f"oci://{self.host}/brokkr/charts/{name}"


@pytest.fixture(scope="module")
def previous_release(
    kind_cluster: KindCluster, kind_images: KindImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    registry = LocalRegistry(tmp_path_factory.mktemp("previous-registry"))
    registry.start()
    pulled: list[str] = []
    try:
        started = time.monotonic()
        previous, _ = publish(f"{registry.host}/brokkr", f"linux/{kind_images.arch}")
        e2e_kind.record("previous_release_publish_s", time.monotonic() - started)
        version = previous.version.plain
        images = {
            n: f"{registry.host}/brokkr/{n}:{version}" for n in ("brokkr-broker", "brokkr-agent")
        }
        for reference in images.values():
            run(containers.podman("pull", "--quiet", "--tls-verify=false", reference))
            pulled.append(reference)
        kind_cluster.load_images(list(images.values()))
        yield Published(previous, registry.host, images)
    finally:
        for reference in pulled:  # only our tag; the layers stay shared
            subprocess.run(containers.podman("untag", reference, reference), check=False)
        registry.stop()


def run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr.strip()[-1000:]}")
    return done.stdout


def image_values(reference: str) -> dict[str, str]:
    """image.* values that deploy `reference` (already in the node, never pulled)."""
    host, rest = reference.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    return {"registry": host, "repository": repository, "tag": tag, "pullPolicy": "Never"}


def broker_values(broker_image: str, kind_images: KindImages) -> dict[str, Any]:
    return {
        "image": image_values(broker_image),
        "replicaCount": 2,
        "postgresql": {
            "image": kind_images.postgresql.chart_values(),
            "persistence": {"size": "1Gi"},
        },
    }


def agent_values(agent_image: str, pak: str) -> dict[str, Any]:
    return {
        "image": image_values(agent_image),
        "broker": {"url": f"http://{BROKER}.{NAMESPACE}.svc:3000", "port": 3000},
        "agent": {"name": AGENT_NAME, "clusterName": CLUSTER_NAME, "pollingInterval": 2},
        "pak": {"value": pak},
    }


@dataclass
class State:
    """What the tests made, shared in order: before the upgrade, after, rolled back."""

    cluster: Cluster
    work: Path
    admin_pak: str
    agent_id: str
    agent_pak: str
    idle_agent_id: str
    idle_agent_pak: str
    generator: str
    stack: str
    target_ns: str
    rows: set[tuple[str, str]] = field(default_factory=set)
    configmaps: list[str] = field(default_factory=list)  # applied through the stack
    upgraded: bool = False


@pytest.fixture(scope="module")
def installed(
    cluster: Cluster,
    kind_images: KindImages,
    previous_release: Published,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[State]:
    """N-1 from oci:// with data in it: both releases, an applied stack, an idle agent."""
    work = tmp_path_factory.mktemp("upgrade")
    restricted_namespace(cluster, NAMESPACE)
    version = ["--version", previous_release.version, "--plain-http"]
    target_ns = f"upgraded-{secrets.token_hex(3)}"
    try:
        cluster.helm(
            "install", BROKER_RELEASE, previous_release.chart("brokkr-broker"), *version,
            *helm_wait(NAMESPACE), "--values",
            write_values(work, "broker-old", broker_values(
                previous_release.images["brokkr-broker"], kind_images)),
        )  # fmt: skip
        admin_pak = cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"]
        with broker_api(cluster, admin_pak) as admin:
            agent_id, agent_pak = admin.agent(AGENT_NAME, CLUSTER_NAME)
            idle_id, idle_pak = admin.agent("idle-agent", CLUSTER_NAME)
            admin.call(
                "POST", f"/agents/{agent_id}/labels", {"agent_id": agent_id, "label": "upgrade"}
            )
            generator = admin.generator(f"upgrade-{secrets.token_hex(3)}")
            admin.register(generator, agent_id)
            admin.register(generator, idle_id)
            stack = admin.stack(f"upgrade-{secrets.token_hex(3)}", generator)
            admin.target(agent_id, stack)
            admin.target(idle_id, stack)
        cluster.helm(
            "install", AGENT_RELEASE, previous_release.chart("brokkr-agent"), *version,
            *helm_wait(NAMESPACE), "--values",
            write_values(work, "agent-old", agent_values(
                previous_release.images["brokkr-agent"], agent_pak)),
        )  # fmt: skip
        cluster.api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target_ns}},
        )
        state = State(
            cluster, work, admin_pak, agent_id, agent_pak, idle_id, idle_pak,
            generator, stack, target_ns,
        )  # fmt: skip
        deploy_and_wait(state, "before-upgrade")
        yield state
    finally:
        for release in (AGENT_RELEASE, BROKER_RELEASE):
            cluster.helm("uninstall", release, "--namespace", NAMESPACE, "--wait", check=False)
        cluster.api.request("DELETE", f"/api/v1/namespaces/{target_ns}")
        remove_namespace(cluster, NAMESPACE)


@contextlib.contextmanager
def broker_api(cluster: Cluster, pak: str) -> Iterator[BrokerAdmin]:
    """An admin client through a fresh port-forward (pods change across upgrades)."""
    forward = PortForward(cluster, NAMESPACE, BROKER, 3000)
    try:
        yield BrokerAdmin(forward.url, pak)
    finally:
        forward.stop()


def configmap(state: State, name: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata:\n  name: {name}\n  namespace: {state.target_ns}\n"
        f"data:\n  written: {name}\n"
    )


def deploy_and_wait(state: State, name: str) -> None:
    """Post the stack's next deployment object: every ConfigMap so far plus `name`
    (the agent prunes what leaves the stack). It must be applied and reported SUCCESS."""
    state.configmaps.append(name)
    manifest = "---\n".join(configmap(state, n) for n in state.configmaps)
    with broker_api(state.cluster, state.admin_pak) as admin:
        deployed = admin.deploy(state.stack, manifest)
        path = f"/api/v1/namespaces/{state.target_ns}/configmaps/{name}"
        applied = poll(
            lambda: state.cluster.api.exists(path) and state.cluster.api.get(path),
            APPLY_TIMEOUT,
            f"the agent to apply ConfigMap {name}",
        )
        assert applied["data"] == {"written": name}
        event = poll(
            lambda: admin.event_for(state.agent_id, deployed["id"]),
            APPLY_TIMEOUT,
            f"the agent's event for {name}",
        )
        assert event["status"] == "SUCCESS", event


def configmaps_in_place(state: State) -> None:
    for name in state.configmaps:
        path = f"/api/v1/namespaces/{state.target_ns}/configmaps/{name}"
        assert state.cluster.api.exists(path), f"ConfigMap {name} is gone"


def psql(cluster: Cluster, sql: str) -> list[str]:
    """Rows of a query, run in the bundled PostgreSQL pod (its password stays there)."""
    script = (
        'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql -h 127.0.0.1 '
        '-U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -AtF "|" -c "$1"'
    )
    done = cluster.kubectl(
        "exec", "--namespace", NAMESPACE, f"{POSTGRESQL}-0", "--", "sh", "-c", script, "sh", sql
    )
    return [line for line in done.stdout.splitlines() if line]


def table_rows(cluster: Cluster) -> set[tuple[str, str]]:
    """(table, primary key, or the whole row without one) of every row of every table."""
    # One SELECT per table, written by PostgreSQL itself (format() quotes the names).
    selects = psql(
        cluster,
        "SELECT format('SELECT %L, (%s)::text FROM %I t', t.table_name, coalesce(("
        "  SELECT 'row(' || string_agg('t.' || quote_ident(a.attname), ',' ORDER BY a.attnum)"
        "   || ')' FROM pg_index i JOIN pg_attribute a"
        "   ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        "  WHERE i.indrelid = quote_ident(t.table_name)::regclass AND i.indisprimary), 't'),"
        " t.table_name)"
        " FROM information_schema.tables t"
        " WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        " ORDER BY t.table_name",
    )
    tables = {line.split("'")[1] for line in selects}
    assert {"agents", "stacks", "deployment_objects", "agent_targets"} <= tables, tables
    rows = psql(cluster, " UNION ALL ".join(selects))
    return {(table, key) for table, key in (line.split("|", 1) for line in rows)}


def running_images(cluster: Cluster) -> dict[str, set[str]]:
    """The images the broker and agent pods run (what the cluster runs)."""
    found: dict[str, set[str]] = {}
    for component, release in (("broker", BROKER_RELEASE), ("agent", AGENT_RELEASE)):
        selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"
        pods = cluster.pods(NAMESPACE, selector)
        found[component] = {c["image"] for p in pods for c in p["spec"]["containers"]}
    return found


def agent_can_call(pak: str, agent_id: str, cluster: Cluster) -> None:
    """The agent PAK reads the agent's own target state through the Service."""
    forward = PortForward(cluster, NAMESPACE, BROKER, 3000)
    try:
        answer = requests.get(
            f"{forward.url}/api/v1/agents/{agent_id}/target-state",
            headers={"Authorization": f"Bearer {pak}"},
            timeout=10,
        )
    finally:
        forward.stop()
    assert answer.status_code == 200, answer.text


def heartbeat(cluster: Cluster, admin_pak: str, agent_id: str) -> str:
    with broker_api(cluster, admin_pak) as admin:
        return str(admin.get_agent(agent_id).get("last_heartbeat") or "")


def rolled(cluster: Cluster, release: str, previous_pods: set[str]) -> Any:
    """Every pod of a release new and Ready (the old ones gone)."""

    def check() -> bool:
        pods = cluster.pods(NAMESPACE, f"app.kubernetes.io/instance={release}")
        pods = [
            p
            for p in pods
            if p["metadata"]["labels"].get("app.kubernetes.io/component") in ("broker", "agent")
        ]
        names = {p["metadata"]["name"] for p in pods}
        return bool(pods) and not names & previous_pods and all(ready(p) for p in pods)

    return check


def helm_change(
    state: State, kind_images: KindImages, command: list[list[str]], what: str
) -> tuple[Observed, float]:
    """Run a helm upgrade/rollback while the poller watches; (what it saw, seconds)."""
    cluster = state.cluster
    before = {
        p["metadata"]["name"]
        for p in cluster.pods(NAMESPACE, "app.kubernetes.io/name in (brokkr-broker,brokkr-agent)")
    }
    poller = Poller(cluster, NAMESPACE, kind_images.broker, BROKER, f"{BROKER}-admin")
    poller.start()
    try:
        started = time.time()
        for args in command:
            cluster.helm(*args)
        for release in (BROKER_RELEASE, AGENT_RELEASE):
            poll(rolled(cluster, release, before), READY_TIMEOUT, f"{what}: {release} pods")
        finished = time.time()
        seen = poller.seen(since=started, until=finished)
    finally:
        poller.stop()
    return seen, finished - started


def test_upgrade_from_the_previous_release_keeps_data_pak_and_reconciling(
    installed: State, kind_images: KindImages, previous_release: Published
):
    state, cluster = installed, installed.cluster
    old = running_images(cluster)
    assert old == {
        "broker": {previous_release.images["brokkr-broker"]},
        "agent": {previous_release.images["brokkr-agent"]},
    }, old
    state.rows = table_rows(cluster)
    beat_before = heartbeat(cluster, state.admin_pak, state.agent_id)
    upgrade = [
        ["upgrade", BROKER_RELEASE, str(BROKER_CHART), *helm_wait(NAMESPACE), "--values",
         str(write_values(state.work, "broker-new", broker_values(kind_images.broker, kind_images)))],
        ["upgrade", AGENT_RELEASE, str(AGENT_CHART), *helm_wait(NAMESPACE), "--values",
         str(write_values(state.work, "agent-new", agent_values(kind_images.agent, state.agent_pak)))],
    ]  # fmt: skip
    seen, seconds = helm_change(state, kind_images, upgrade, "upgrade")
    state.upgraded = True
    e2e_kind.record("upgrade_s", seconds)
    e2e_kind.record("upgrade_longest_gap_s", seen.longest_gap)
    e2e_kind.record("upgrade_failed_requests", len(seen.failed))
    assert running_images(cluster) == {"broker": {kind_images.broker}, "agent": {kind_images.agent}}
    missing = state.rows - table_rows(cluster)
    assert not missing, f"rows lost in the upgrade: {sorted(missing)[:10]}"
    # the admin PAK and both agents' PAKs, minted by N-1, still authenticate
    agent_can_call(state.agent_pak, state.agent_id, cluster)
    agent_can_call(state.idle_agent_pak, state.idle_agent_id, cluster)
    # the upgraded agent heartbeats and applies a deployment object made after the upgrade
    poll(
        lambda: heartbeat(cluster, state.admin_pak, state.agent_id) > beat_before,
        APPLY_TIMEOUT,
        "a heartbeat of the upgraded agent",
    )
    configmaps_in_place(state)  # what N-1's agent applied stays in place
    deploy_and_wait(state, "after-upgrade")
    assert seen.longest_gap < UNAVAILABLE_BOUND_S, (
        f"the broker was unavailable for {seen.longest_gap:.1f} s during the upgrade "
        f"(bound {UNAVAILABLE_BOUND_S} s); failed: {[r.outcome for r in seen.failed][:10]}"
    )


def test_rollback_brings_the_previous_release_back_with_its_data(
    installed: State, kind_images: KindImages, previous_release: Published
):
    state, cluster = installed, installed.cluster
    assert state.upgraded, "the upgrade test must run first (same module, in order)"
    rows = table_rows(cluster)
    rollback = [
        ["rollback", BROKER_RELEASE, "1", *helm_wait(NAMESPACE)],
        ["rollback", AGENT_RELEASE, "1", *helm_wait(NAMESPACE)],
    ]
    seen, seconds = helm_change(state, kind_images, rollback, "rollback")
    e2e_kind.record("rollback_s", seconds)
    e2e_kind.record("rollback_longest_gap_s", seen.longest_gap)
    e2e_kind.record("rollback_failed_requests", len(seen.failed))
    assert running_images(cluster) == {
        "broker": {previous_release.images["brokkr-broker"]},
        "agent": {previous_release.images["brokkr-agent"]},
    }
    missing = rows - table_rows(cluster)
    assert not missing, f"rows lost in the rollback: {sorted(missing)[:10]}"
    agent_can_call(state.agent_pak, state.agent_id, cluster)
    configmaps_in_place(state)
    deploy_and_wait(state, "after-rollback")
    # Not zero either: the pods the rollback starts are N-1's, whose readiness (the
    # pinned b832ea8) turns Ready before its database pool answers, so a request routed
    # to a fresh N-1 pod can get 503 "retry later" for a second or two (seen on kind:
    # 4 of 329, two 2 s windows). The working tree's readiness checks the pool, and a
    # rollout of it fails nothing (test_rollout.py). Hence the same bound as above.
    assert seen.longest_gap < UNAVAILABLE_BOUND_S, (
        f"the broker was unavailable for {seen.longest_gap:.1f} s during the rollback "
        f"(bound {UNAVAILABLE_BOUND_S} s); "
        + "; ".join(f"{r.started:.2f} {r.outcome}" for r in seen.failed[:10])
    )
