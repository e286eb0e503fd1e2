"""One broker, agents in two kind clusters: the multi-cluster and external-broker layouts.

The session's cluster runs the broker (its Service a NodePort) and an in-cluster
agent; a second kind cluster, `<session cluster>-2`, of the same Kubernetes minor and
on the same Docker network, runs an agent that reaches the broker across clusters
through the first node's address, as an external broker (its NetworkPolicy lets it
out to that address and port only). Stacks targeted by label, by annotation and at
both agents must land exactly where they should, and nowhere else. The memory both
nodes use is recorded.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.local.broker_admin import BrokerAdmin
from tests.e2e_kind.conftest import (
    AGENT_CHART,
    BROKER_CHART,
    Cluster,
    KindImages,
    PortForward,
    agent_values,
    broker_values,
    cluster_beside,
    helm_wait,
    remove_namespace,
    restricted_namespace,
    write_values,
)
from tests.fixtures.kind import KindCluster, session_provider

pytestmark = [pytest.mark.kind, pytest.mark.slow]

NAMESPACE = "brokkr-multi"
APPS = "multi-apps"  # where the stacks' objects go, in both clusters
HUB = "hub"  # the broker release
BROKER = f"{HUB}-brokkr-broker"
APPLY_BOUND = 120  # a deployment object posted to an applied and reported SUCCESS
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def second(kind_cluster: KindCluster, kind_images: KindImages) -> Iterator[Cluster]:
    """A second kind cluster beside the session's, with the agent image loaded."""
    provider = session_provider("-2")
    with cluster_beside(provider, [kind_images.agent], "multicluster_second_cluster_up_s") as two:
        yield two


def node_address(cluster: Cluster) -> str:
    """The node's InternalIP: its address on the Docker network both clusters share."""
    node = cluster.api.get("/api/v1/nodes")["items"][0]
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def node_memory_mib(cluster: Cluster) -> float:
    """Memory the node container uses now (docker stats: usage without page cache)."""
    kind = cluster.kind.kind
    assert kind is not None
    node = cluster.api.get("/api/v1/nodes")["items"][0]["metadata"]["name"]
    usage = kind.engine.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", node)
    value, unit = split_size(usage.split("/")[0].strip())
    return value * {"B": 1, "KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB}[unit] / MIB


def split_size(text: str) -> tuple[float, str]:
    """'512.3MiB' -> (512.3, 'MiB')."""
    number = text.rstrip("BKMGiTk")
    return float(number), text[len(number) :]


@dataclass
class Fleet:
    admin: BrokerAdmin
    here: str  # agent id in the session's cluster
    there: str  # agent id in the second cluster


def helm_install(
    cluster: Cluster, release: str, chart: Any, values: dict[str, Any], work: Any
) -> None:
    cluster.helm(
        "install",
        release,
        chart,
        *helm_wait(NAMESPACE),
        "--values",
        write_values(work, release, values),
    )


@pytest.fixture(scope="module")
def fleet(
    cluster: Cluster,
    second: Cluster,
    kind_images: KindImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """The broker (NodePort) and one agent in each cluster, both ACTIVE and Ready."""
    work = tmp_path_factory.mktemp("multicluster")
    for each in (cluster, second):
        restricted_namespace(each, NAMESPACE)
    values = broker_values(kind_images) | {"service": {"type": "NodePort", "port": 3000}}
    helm_install(cluster, HUB, BROKER_CHART, values, work)
    forward = PortForward(cluster, NAMESPACE, BROKER, 3000)
    try:
        admin = BrokerAdmin(forward.url, cluster.secret(NAMESPACE, f"{BROKER}-admin")["pak"])
        service = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{BROKER}")
        node_port = service["spec"]["ports"][0]["nodePort"]
        here, here_pak = admin.agent("east", "cluster-one")
        there, there_pak = admin.agent("west", "cluster-two")
        local = agent_values(kind_images, here_pak)
        local["broker"]["url"] = f"http://{BROKER}.{NAMESPACE}.svc:3000"
        local["agent"] |= {"name": "east", "clusterName": "cluster-one"}
        address = node_address(cluster)
        external = agent_values(kind_images, there_pak)
        # Across clusters: the first node's address and the NodePort, nothing else.
        external["broker"] = {"url": f"http://{address}:{node_port}", "port": node_port}
        external["broker"]["cidr"] = f"{address}/32"
        external["agent"] |= {"name": "west", "clusterName": "cluster-two"}
        started = time.monotonic()
        helm_install(cluster, "east", AGENT_CHART, local, work)
        helm_install(second, "west", AGENT_CHART, external, work)
        e2e_kind.record("multicluster_agents_install_to_ready_s", time.monotonic() - started)
        yield Fleet(admin, here, there)
    finally:
        forward.stop()
        for each, release in ((second, "west"), (cluster, "east"), (cluster, HUB)):
            each.helm("uninstall", release, "--namespace", NAMESPACE, "--wait", check=False)
        for each in (cluster, second):
            remove_namespace(each, NAMESPACE)


def configmap(name: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {APPS}\n"
        f"data:\n  stack: {name}\n"
    )


def applied(cluster: Cluster) -> set[str]:
    items = cluster.api.get(f"/api/v1/namespaces/{APPS}/configmaps")["items"]
    return {i["metadata"]["name"] for i in items if i["metadata"]["name"] != "kube-root-ca.crt"}


def test_label_and_annotation_targeted_stacks_land_only_in_their_cluster(
    fleet: Fleet, cluster: Cluster, second: Cluster
):
    admin = fleet.admin
    for each in (cluster, second):
        if not each.api.exists(f"/api/v1/namespaces/{APPS}"):
            each.api.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS}},
            )
    generator = admin.generator(f"multi-{secrets.token_hex(3)}")
    for agent in (fleet.here, fleet.there):
        admin.register(generator, agent)
    admin.call("POST", f"/agents/{fleet.here}/labels", {"agent_id": fleet.here, "label": "fleet"})
    admin.call("POST", f"/agents/{fleet.there}/labels", {"agent_id": fleet.there, "label": "fleet"})
    admin.call("POST", f"/agents/{fleet.there}/labels", {"agent_id": fleet.there, "label": "west"})
    admin.call(
        "POST",
        f"/agents/{fleet.here}/annotations",
        {"agent_id": fleet.here, "key": "tier", "value": "gold"},
    )
    admin.call(
        "POST",
        f"/agents/{fleet.there}/annotations",
        {"agent_id": fleet.there, "key": "tier", "value": "silver"},
    )
    stacks = {}
    for name in ("by-label-west", "by-annotation-gold", "by-label-fleet"):
        stacks[name] = admin.stack(f"{name}-{secrets.token_hex(3)}", generator)
    admin.call("POST", f"/stacks/{stacks['by-label-west']}/labels", "west")
    admin.call("POST", f"/stacks/{stacks['by-label-fleet']}/labels", "fleet")
    admin.call(
        "POST",
        f"/stacks/{stacks['by-annotation-gold']}/annotations",
        {"stack_id": stacks["by-annotation-gold"], "key": "tier", "value": "gold"},
    )
    started = time.monotonic()
    deployed = {name: admin.deploy(stack, configmap(name))["id"] for name, stack in stacks.items()}
    expected = {
        fleet.here: (cluster, {"by-annotation-gold", "by-label-fleet"}),
        fleet.there: (second, {"by-label-west", "by-label-fleet"}),
    }
    for agent, (where, names) in expected.items():

        def reported(agent: str = agent, names: set[str] = names) -> bool:
            events = {e["deployment_object_id"]: e["status"] for e in admin.events(agent)}
            return all(events.get(deployed[n]) == "SUCCESS" for n in names)

        poll(reported, APPLY_BOUND, f"agent {agent} to report its stacks", interval=1)
        assert applied(where) == names
    e2e_kind.record("multicluster_targeted_stacks_applied_s", time.monotonic() - started)
    # The broker's own view agrees, and the other stacks reached neither agent.
    for agent, (_, names) in expected.items():
        state = admin.call("GET", f"/agents/{agent}/target-state", mode="full")
        assert {do["id"] for do in state} == {deployed[n] for n in names}
        others = {deployed[n] for n in deployed.keys() - names}
        assert not [e for e in admin.events(agent) if e["deployment_object_id"] in others]
    # One more cycle of each agent since: still nothing more in either cluster.
    for agent, (where, names) in expected.items():
        seen = admin.get_agent(agent)["last_heartbeat"]
        poll(
            lambda agent=agent, seen=seen: admin.get_agent(agent)["last_heartbeat"] != seen,
            60,
            f"another heartbeat from {agent}",
        )
        assert applied(where) == names
    memory = {"one": node_memory_mib(cluster), "two": node_memory_mib(second)}
    e2e_kind.record("multicluster_node_one_memory_mib", memory["one"])
    e2e_kind.record("multicluster_node_two_memory_mib", memory["two"])
    e2e_kind.record("multicluster_host_used_memory_mib", host_used_mib())


def host_used_mib() -> float:
    """The whole machine's used memory (MemTotal - MemAvailable), for the record."""
    text = Path("/proc/meminfo").read_text(encoding="ascii")
    fields = dict(line.split(":", 1) for line in text.splitlines())
    kib = int(fields["MemTotal"].split()[0]) - int(fields["MemAvailable"].split()[0])
    return kib / 1024
