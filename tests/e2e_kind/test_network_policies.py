"""Every NetworkPolicy the charts render, tried from both sides on real pods.

Each test first shows that the path it closes is open to a pod no policy selects (the
control: the listener, the Service, the network and DNS work), then that the policy
under test lets through what it must and stops the rest:

- the broker's ingress (`networkPolicy.ingressFrom`): every source by default; once
  set, the listed peers (the agent, a labelled pod, the `helm test` pod the chart adds)
  and nothing else;
- the broker's egress (`restrictEgress`, on by default): DNS and its database, no
  other address until `egressExtra` lists it;
- the agent's ingress (`networkPolicy.metricsFrom`): every source by default; once set,
  the listed scrapers, while the kubelet's probes keep the pod Ready;
- the agent's egress to its broker (`broker.cidr`, the rule a broker in another
  cluster is reached by): narrowed to the broker's address, the agent still reaches
  the broker, and the same port elsewhere is stopped (the API server side of the
  agent's egress is test_values_on_kind.py's);
- the bundled PostgreSQL's egress: none at all (its ingress, the broker only, is
  test_charts_on_kind.py's).

kube-router enforces the policies on our kind node and rejects (connection refused)
where most plugins drop, so a blocked connection fails at once. Changed values are
undone with `helm rollback`; NetworkPolicies are not in the pod templates, so no pod
rolls and the shared install is left as it was found.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from tests.e2e_kind.conftest import (
    AGENT_CHART,
    AGENT_RELEASE,
    BROKER,
    BROKER_CHART,
    BROKER_RELEASE,
    NAMESPACE,
    POSTGRESQL,
    Brokkr,
    Cluster,
    ready,
    selector,
    write_values,
)
from tests.e2e_kind.probes import (
    POLICY_TIMEOUT,
    REFUSED,
    InPod,
    changed_values,
    connect_from_new_pod,
    listener,
    probe_pods_gone,
)

pytestmark = [pytest.mark.kind, pytest.mark.slow]

BROKER_PORT = 3000
AGENT_HEALTH_PORT = 8080
POSTGRESQL_PORT = 5432
OUTSIDE_PORT = 7443  # on the listener: no rule of ours names it
PEER = {"e2e.brokkr.dev/peer": "listed"}  # the label a values change admits
ADMIT_PATIENCE = 30  # a new labelled pod's address reaches the policy within seconds
BROKER_SERVICE = f"{BROKER}.{NAMESPACE}.svc"


def the_pod(cluster: Cluster, component: str, release: str) -> dict[str, Any]:
    """The component's one Ready pod (the shared install runs one of each)."""
    found: dict[str, Any] = poll(
        lambda: (
            len(pods := cluster.pods(NAMESPACE, selector(component, release))) == 1
            and ready(pods[0])
            and pods[0]
        ),
        120,
        f"one Ready {component} pod",
        interval=0.5,
    )
    return found


def host_network(address: str) -> str:
    """address as a CIDR of itself (/32, /128), for an ipBlock."""
    return str(ipaddress.ip_network(address))


def settled() -> None:
    """Nothing to wait for after a rollback: policies are not in the pod templates."""


def wait_new_pod_sees(brokkr: Brokkr, host: str, port: int, *, reached: bool, why: str) -> None:
    """Wait until a new, unlabelled pod (which the policy's `from` does not list) sees
    host:port as `reached`."""
    poll(
        lambda: connect_from_new_pod(brokkr, host, (port,)) == {port: reached},
        POLICY_TIMEOUT,
        f"{why}: a new unlabelled pod to {'reach' if reached else 'be refused'} {host}:{port}",
    )


def test_broker_ingress_admits_only_the_listed_peers_once_set(brokkr: Brokkr, tmp_path: Path):
    cluster = brokkr.cluster
    # The default (ingressFrom empty) admits every source.
    assert connect_from_new_pod(brokkr, BROKER_SERVICE, (BROKER_PORT,)) == {BROKER_PORT: True}
    peers = [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": AGENT_RELEASE}}},
        {"podSelector": {"matchLabels": PEER}},
    ]
    values = write_values(tmp_path, "ingress", {"networkPolicy": {"ingressFrom": peers}})
    with changed_values(cluster, BROKER_RELEASE, BROKER_CHART, "--values", values, settle=settled):
        wait_new_pod_sees(brokkr, BROKER_SERVICE, BROKER_PORT, reached=False, why="ingressFrom set")
        listed = connect_from_new_pod(
            brokkr, BROKER_SERVICE, (BROKER_PORT,), labels=PEER, patience=ADMIT_PATIENCE
        )
        assert listed == {BROKER_PORT: True}, "a listed peer was refused"
        agent = InPod(cluster, the_pod(cluster, "agent", AGENT_RELEASE), "agent")
        assert agent.connect(BROKER_SERVICE, BROKER_PORT) is None, "the listed agent was refused"
        # The `helm test` pod, which the chart adds to the listed peers.
        done = cluster.helm("test", BROKER_RELEASE, "--namespace", NAMESPACE, "--timeout", "180s")
        assert "Phase:          Succeeded" in done.stdout, done.stdout
        # The kubelet's probes come from the node, which policies do not stop.
        assert ready(the_pod(cluster, "broker", BROKER_RELEASE)), "the broker went unready"
    wait_new_pod_sees(brokkr, BROKER_SERVICE, BROKER_PORT, reached=True, why="rolled back")
    probe_pods_gone(cluster)


def test_broker_egress_reaches_dns_and_its_database_and_else_only_egress_extra(
    brokkr: Brokkr, tmp_path: Path
):
    cluster = brokkr.cluster
    with listener(cluster, brokkr.images.broker, (OUTSIDE_PORT,)) as outside:
        open_to_all = connect_from_new_pod(brokkr, outside, (OUTSIDE_PORT,))
        assert open_to_all == {OUTSIDE_PORT: True}, "the listener is not reachable at all"
        broker = InPod(cluster, the_pod(cluster, "broker", BROKER_RELEASE), "broker")
        # By name, so DNS is allowed too.
        database = broker.connect(f"{POSTGRESQL}.{NAMESPACE}.svc", POSTGRESQL_PORT)
        assert database is None, f"the broker did not reach its database: {database}"
        refused = broker.connect(outside, OUTSIDE_PORT)
        assert refused and REFUSED in refused, "restrictEgress let the broker reach the listener"
        extra = [
            {
                "to": [{"ipBlock": {"cidr": host_network(outside)}}],
                "ports": [{"port": OUTSIDE_PORT, "protocol": "TCP"}],
            }
        ]
        values = write_values(tmp_path, "egress", {"networkPolicy": {"egressExtra": extra}})
        with changed_values(
            cluster, BROKER_RELEASE, BROKER_CHART, "--values", values, settle=settled
        ):
            broker.reaches(outside, OUTSIDE_PORT, "egressExtra lists the listener")
            database = broker.connect(f"{POSTGRESQL}.{NAMESPACE}.svc", POSTGRESQL_PORT)
            assert database is None, f"egressExtra cost the database: {database}"
        broker.blocked(outside, OUTSIDE_PORT, "rolled back without egressExtra")
    probe_pods_gone(cluster)


def test_agent_ingress_admits_only_the_listed_scrapers_once_set(brokkr: Brokkr, tmp_path: Path):
    cluster = brokkr.cluster
    pod = the_pod(cluster, "agent", AGENT_RELEASE)
    address = str(pod["status"]["podIP"])
    # The default (metricsFrom empty) admits every scraper.
    seen = connect_from_new_pod(brokkr, address, (AGENT_HEALTH_PORT,))
    assert seen == {AGENT_HEALTH_PORT: True}, "the agent's health port is not reachable at all"
    values = write_values(
        tmp_path,
        "scrapers",
        {"networkPolicy": {"metricsFrom": [{"podSelector": {"matchLabels": PEER}}]}},
    )
    with changed_values(cluster, AGENT_RELEASE, AGENT_CHART, "--values", values, settle=settled):
        wait_new_pod_sees(brokkr, address, AGENT_HEALTH_PORT, reached=False, why="metricsFrom set")
        listed = connect_from_new_pod(
            brokkr, address, (AGENT_HEALTH_PORT,), labels=PEER, patience=ADMIT_PATIENCE
        )
        assert listed == {AGENT_HEALTH_PORT: True}, "a listed scraper was refused"
        # The kubelet's probes (every 5 s, from the node) still pass: the same pod is
        # Ready after the scrapers above had their turns.
        held = the_pod(cluster, "agent", AGENT_RELEASE)
        assert held["metadata"]["uid"] == pod["metadata"]["uid"], "the agent pod was replaced"
    wait_new_pod_sees(brokkr, address, AGENT_HEALTH_PORT, reached=True, why="rolled back")
    probe_pods_gone(cluster)


def test_agent_egress_to_the_broker_narrowed_to_broker_cidr(brokkr: Brokkr, tmp_path: Path):
    cluster = brokkr.cluster
    broker_address = str(the_pod(cluster, "broker", BROKER_RELEASE)["status"]["podIP"])
    agent = InPod(cluster, the_pod(cluster, "agent", AGENT_RELEASE), "agent")
    with listener(cluster, brokkr.images.broker, (BROKER_PORT,)) as outside:
        open_to_all = connect_from_new_pod(brokkr, outside, (BROKER_PORT,))
        assert open_to_all == {BROKER_PORT: True}, "the listener is not reachable at all"
        # The default broker.cidr (0.0.0.0/0) lets the agent reach any address on the
        # broker's port.
        assert agent.connect(outside, BROKER_PORT) is None, "the default broker.cidr held"
        values = write_values(
            tmp_path, "broker-cidr", {"broker": {"cidr": host_network(broker_address)}}
        )
        with changed_values(
            cluster, AGENT_RELEASE, AGENT_CHART, "--values", values, settle=settled
        ):
            agent.blocked(outside, BROKER_PORT, "broker.cidr names the broker only")
            # The broker, at its address and through its Service (whose ClusterIP is
            # rewritten to that address before the policy sees it).
            for host in (broker_address, BROKER_SERVICE):
                said = agent.connect(host, BROKER_PORT)
                assert said is None, (
                    f"the narrowed agent did not reach the broker at {host}: {said}"
                )
        agent.reaches(outside, BROKER_PORT, "rolled back to the default broker.cidr")
    probe_pods_gone(cluster)


def test_postgresql_reaches_nothing(brokkr: Brokkr):
    cluster = brokkr.cluster
    with listener(cluster, brokkr.images.broker, (OUTSIDE_PORT,)) as outside:
        open_to_all = connect_from_new_pod(brokkr, outside, (OUTSIDE_PORT,))
        assert open_to_all == {OUTSIDE_PORT: True}, "the listener is not reachable at all"
        postgresql = InPod(cluster, the_pod(cluster, "postgresql", BROKER_RELEASE), "postgresql")
        # The control: the check runs in this image and connects where nothing stops it
        # (its own port on the loopback, which no policy sees).
        local = postgresql.connect("127.0.0.1", POSTGRESQL_PORT)
        assert local is None, f"the check failed inside the PostgreSQL pod: {local}"
        refused = postgresql.connect(outside, OUTSIDE_PORT)
        assert refused and REFUSED in refused, f"PostgreSQL reached the listener: {refused}"
    probe_pods_gone(cluster)
