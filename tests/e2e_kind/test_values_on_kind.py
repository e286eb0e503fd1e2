"""Chart values on real pods: a changed value rolls the pods, and the agent's narrowed
egress lets it work while it blocks every other address.

1. Rollouts follow config: `helm upgrade --reuse-values` changes one value that lands
   in a chart's ConfigMap (the agent's log level, the broker's log format); the pod
   template's `checksum/config` changes, a new pod (another UID) replaces the old one
   and is Ready, and its log shows the new setting in force.
2. The agent's egress, narrowed and proven: a listener in another namespace, open on
   the API server's port and on an unlisted one to a pod no policy selects. Under the
   default `apiServerCIDRs` (0.0.0.0/0) the agent pod (`kubectl exec`, its own network
   identity) is refused the unlisted port but reaches the listener on the API port.
   Set to the API server's real addresses (the `kubernetes` Service's EndpointSlice,
   as /32s), the listener is refused too while the API server (its endpoints and its
   ClusterIP) still answers; a fresh agent pod, started under the narrowed policy, is
   held the same way, reports both connections up and applies and reports a
   deployment object.

The tests share the `brokkr` installation (conftest.py runs them before the test that
uninstalls it) and leave it as they found it: each change is undone with
`helm rollback` to the revision before it, and the tests wait until the pods of that
revision are Ready again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import e2e_kind
from tests.e2e_kind.conftest import (
    AGENT,
    AGENT_CHART,
    AGENT_RELEASE,
    BROKER,
    BROKER_CHART,
    BROKER_RELEASE,
    NAMESPACE,
    Brokkr,
    Cluster,
    ready,
    selector,
    write_values,
)
from tests.e2e_kind.probes import (
    POLICY_TIMEOUT,
    changed_values,
    connect_from,
    connect_from_new_pod,
    listener,
    probe_pods_gone,
)

pytestmark = [pytest.mark.kind, pytest.mark.slow]

ROLLOUT_TIMEOUT = 180  # a new pod Ready and the old one gone (both charts, loaded machine)
APPLY_TIMEOUT = 120
LOG_TIMEOUT = 60  # the kubelet probes the agent every 5 s: a debug line comes soon
UNLISTED_PORT = 7443  # a port no egress rule of the agent's NetworkPolicy names
# The broker's TextFormatter: "2026-01-01 12:00:00,123 INFO    logger: message".
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) +\S+: ")
POOL_OPENED = re.compile(r"^\S+ \S+ INFO +brokkr\.broker\.app: database pool opened ")


# -- releases and their pods ----------------------------------------------------------


def template_annotations(cluster: Cluster, deployment: str) -> dict[str, str]:
    found = cluster.api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployment}")
    return dict(found["spec"]["template"]["metadata"]["annotations"])


def rolled_out(
    cluster: Cluster, deployment: str, component: str, release: str
) -> dict[str, Any] | None:
    """The Deployment's one pod, once it is Ready, alone (any replaced pod gone) and made
    from the current template (its checksums); else None."""
    pods = cluster.pods(NAMESPACE, selector(component, release))
    if len(pods) != 1 or "deletionTimestamp" in pods[0]["metadata"] or not ready(pods[0]):
        return None
    pod = pods[0]
    wanted = checksums(template_annotations(cluster, deployment))
    return pod if checksums(pod["metadata"].get("annotations") or {}) == wanted else None


def checksums(annotations: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in annotations.items() if key.startswith("checksum/")}


def wait_rolled_out(cluster: Cluster, deployment: str, component: str, release: str) -> Any:
    return poll(
        lambda: rolled_out(cluster, deployment, component, release),
        ROLLOUT_TIMEOUT,
        f"one Ready {component} pod from the Deployment's current template, alone",
        interval=0.5,
    )


def pod_log(cluster: Cluster, pod: dict[str, Any], container: str) -> str:
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}/log"
    return str(cluster.api.request("GET", path, container=container).text)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The log lines that are JSON objects (the charts' default log format)."""
    found = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                found.append(entry)
    return found


# -- 1. rollouts follow config --------------------------------------------------------


def test_agent_log_level_change_rolls_a_new_pod_that_logs_at_debug(brokkr: Brokkr):
    cluster = brokkr.cluster
    old = wait_rolled_out(cluster, AGENT, "agent", AGENT_RELEASE)
    before = template_annotations(cluster, AGENT)
    # The control: at the chart's default level (info) the agent writes no debug line.
    logged = json_lines(pod_log(cluster, old, "agent"))
    assert logged, "the agent pod logged no JSON line at all"
    assert not [e for e in logged if e.get("level") == "debug"], "debug lines at level info"

    def settle() -> None:
        wait_rolled_out(cluster, AGENT, "agent", AGENT_RELEASE)

    started = time.monotonic()
    with changed_values(
        cluster, AGENT_RELEASE, AGENT_CHART, "--set", "agent.log.level=debug", settle=settle
    ):
        config = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{AGENT}")
        assert config["data"]["BROKKR__LOG__LEVEL"] == "debug"
        after = template_annotations(cluster, AGENT)
        assert after["checksum/config"] != before["checksum/config"], "the pod would not roll"
        assert after["checksum/secret"] == before["checksum/secret"], "only the ConfigMap changed"
        new = wait_rolled_out(cluster, AGENT, "agent", AGENT_RELEASE)
        e2e_kind.record("values_agent_rollout_s", time.monotonic() - started)
        assert new["metadata"]["uid"] != old["metadata"]["uid"], "the old agent pod stayed"
        # Live in the new process: its health server logs every kubelet probe at debug.
        debug = poll(
            lambda: [
                e
                for e in json_lines(pod_log(cluster, new, "agent"))
                if e.get("level") == "debug" and e.get("logger") == "brokkr.agent.health"
            ],
            LOG_TIMEOUT,
            "a debug line of the agent's health server in the new pod's log",
        )
        assert "GET /" in debug[0]["message"], debug[0]
    restored = template_annotations(cluster, AGENT)
    assert restored["checksum/config"] == before["checksum/config"], "the rollback did not restore"


def test_broker_log_format_change_rolls_a_new_pod_that_logs_text(brokkr: Brokkr):
    cluster = brokkr.cluster
    old = wait_rolled_out(cluster, BROKER, "broker", BROKER_RELEASE)
    before = template_annotations(cluster, BROKER)
    # The control: the chart's default format is JSON.
    old_log = pod_log(cluster, old, "broker")
    assert json_lines(old_log), "the broker pod logged no JSON line at all"
    assert not [line for line in old_log.splitlines() if TEXT_LINE.match(line)]

    def settle() -> None:
        wait_rolled_out(cluster, BROKER, "broker", BROKER_RELEASE)
        brokkr.reconnect()  # kubectl's port-forward ended with the pod it had picked

    started = time.monotonic()
    with changed_values(
        cluster, BROKER_RELEASE, BROKER_CHART, "--set", "broker.log.format=text", settle=settle
    ):
        config = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{BROKER}")
        assert config["data"]["BROKKR__LOG__FORMAT"] == "text"
        after = template_annotations(cluster, BROKER)
        assert after["checksum/config"] != before["checksum/config"], "the pods would not roll"
        assert after["checksum/secret"] == before["checksum/secret"], "only the ConfigMap changed"
        new = wait_rolled_out(cluster, BROKER, "broker", BROKER_RELEASE)
        e2e_kind.record("values_broker_rollout_s", time.monotonic() - started)
        assert new["metadata"]["uid"] != old["metadata"]["uid"], "the old broker pod stayed"
        # Live in the new process: it opened its database pool and said so, in text.
        new_log = pod_log(cluster, new, "broker")
        assert any(POOL_OPENED.match(line) for line in new_log.splitlines()), new_log[-2000:]
        assert not json_lines(new_log), "the new broker pod still logs JSON"
        brokkr.reconnect()
        assert brokkr.admin.get_agent(brokkr.agent_id)["id"] == brokkr.agent_id
    restored = template_annotations(cluster, BROKER)
    assert restored["checksum/config"] == before["checksum/config"], "the rollback did not restore"
    assert brokkr.admin.get_agent(brokkr.agent_id)["id"] == brokkr.agent_id


# -- 2. the agent's egress, narrowed and proven ---------------------------------------


def api_server_endpoints(cluster: Cluster) -> tuple[list[str], int]:
    """The API server's addresses and port as the pod network sees them: the endpoints
    of the `kubernetes` Service (what its ClusterIP is rewritten to)."""
    slices = cluster.api.get(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        labelSelector="kubernetes.io/service-name=kubernetes",
    )["items"]
    addresses = sorted(
        {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
    )
    ports = {p["port"] for s in slices for p in s.get("ports") or []}
    assert addresses and len(ports) == 1, f"unexpected endpoints of Service kubernetes: {slices}"
    return addresses, ports.pop()


def agent_policy(cluster: Cluster) -> dict[str, Any]:
    path = f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies/{AGENT}"
    found: dict[str, Any] = cluster.api.get(path)
    return found


def api_server_cidrs(policy: dict[str, Any], port: int) -> list[str]:
    """The CIDRs of the policy's egress rule for the API server's port."""
    (rule,) = [r for r in policy["spec"]["egress"] if any(p["port"] == port for p in r["ports"])]
    return [peer["ipBlock"]["cidr"] for peer in rule["to"]]


def applied_and_reported(brokkr: Brokkr) -> None:
    """A deployment object posted to a stack the agent is targeted at is applied in the
    cluster and its SUCCESS event comes back."""
    cluster, admin = brokkr.cluster, brokkr.admin
    target = f"narrowed-{secrets.token_hex(3)}"
    cluster.api.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target}},
    )
    try:
        generator = admin.generator(target)
        stack = admin.stack(target, generator)
        admin.register(generator, brokkr.agent_id)
        admin.target(brokkr.agent_id, stack)
        try:
            manifest = (
                "apiVersion: v1\nkind: ConfigMap\n"
                f"metadata:\n  name: through-narrowed-egress\n  namespace: {target}\n"
                "data:\n  egress: narrowed\n"
            )
            deployed = admin.deploy(stack, manifest)
            path = f"/api/v1/namespaces/{target}/configmaps/through-narrowed-egress"
            applied = poll(
                lambda: cluster.api.exists(path) and cluster.api.get(path),
                APPLY_TIMEOUT,
                "the agent to apply the ConfigMap under the narrowed egress",
            )
            assert applied["data"] == {"egress": "narrowed"}
            event = poll(
                lambda: admin.event_for(brokkr.agent_id, deployed["id"]),
                APPLY_TIMEOUT,
                "the agent's event for the deployment object",
            )
            assert event["status"] == "SUCCESS", event
        finally:
            admin.untarget(brokkr.agent_id, stack)  # the agent's targets as they were
    finally:
        cluster.api.request("DELETE", f"/api/v1/namespaces/{target}")


def agent_health(cluster: Cluster, pod: dict[str, Any]) -> dict[str, Any]:
    """The agent's /health document, through the API server's pod proxy."""
    path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}:8080/proxy/health"
    found: dict[str, Any] = cluster.api.get(path)
    return found


def test_agent_egress_narrowed_to_the_api_server_works_and_blocks_other_addresses(
    brokkr: Brokkr, tmp_path: Path
):
    cluster = brokkr.cluster
    addresses, port = api_server_endpoints(cluster)
    chart_defaults = yaml.safe_load((AGENT_CHART / "values.yaml").read_text())
    assert port in chart_defaults["networkPolicy"]["apiServerPorts"], port
    assert api_server_cidrs(agent_policy(cluster), port) == ["0.0.0.0/0"], "not the default"
    narrowed = [str(ipaddress.ip_network(address)) for address in addresses]  # /32, /128
    unlisted = UNLISTED_PORT

    def settle() -> None:
        wait_rolled_out(cluster, AGENT, "agent", AGENT_RELEASE)

    with listener(cluster, brokkr.images.broker, (port, unlisted)) as outside:
        # Both ports are open to a pod no policy selects: what the agent pod cannot
        # reach below, its policy stops (not the listener or the network).
        seen = connect_from_new_pod(brokkr, outside, (port, unlisted))
        assert seen == {port: True, unlisted: True}, seen
        # The control: the default policy holds the agent (an unlisted port is refused)
        # yet lets it reach any address on the API server's port.
        agent = wait_rolled_out(cluster, AGENT, "agent", AGENT_RELEASE)
        refused = connect_from(cluster, agent, "agent", outside, unlisted)
        assert refused and "refused or dropped" in refused, f"the policy let {unlisted} out"
        reached = connect_from(cluster, agent, "agent", outside, port)
        assert reached is None, f"the default egress did not reach {outside}:{port}: {reached}"
        values = write_values(tmp_path, "narrowed", {"networkPolicy": {"apiServerCIDRs": narrowed}})
        with changed_values(cluster, AGENT_RELEASE, AGENT_CHART, "--values", values, settle=settle):
            assert api_server_cidrs(agent_policy(cluster), port) == narrowed
            held = rolled_out(cluster, AGENT, "agent", AGENT_RELEASE)
            assert held and held["metadata"]["uid"] == agent["metadata"]["uid"], "it rolled"
            blocked = poll(
                lambda: connect_from(cluster, agent, "agent", outside, port),
                POLICY_TIMEOUT,
                f"the narrowed policy to stop the agent reaching {outside}:{port}",
            )
            assert "refused or dropped" in blocked, blocked
            # New connections from the same held pod: to each endpoint, and to the
            # Service's ClusterIP as the agent itself connects (the policy sees the
            # endpoint it is rewritten to, so listing the endpoints is enough here).
            service = cluster.api.get("/api/v1/namespaces/default/services/kubernetes")["spec"]
            targets = [(a, port) for a in addresses] + [
                (service["clusterIP"], service["ports"][0]["port"])
            ]
            for host, target_port in targets:
                refused = connect_from(cluster, agent, "agent", host, target_port)
                assert refused is None, f"the API server at {host}:{target_port}: {refused}"
            # A fresh agent pod starts under the narrowed policy (NetworkPolicies are
            # not in the pod template, so nothing rolled it): Ready means its API
            # server answered; it is held too; it applies and reports.
            cluster.api.request(
                "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{agent['metadata']['name']}"
            )
            new = poll(
                lambda: (
                    (p := rolled_out(cluster, AGENT, "agent", AGENT_RELEASE))
                    and p["metadata"]["uid"] != agent["metadata"]["uid"]
                    and p
                ),
                ROLLOUT_TIMEOUT,
                "a new, Ready agent pod under the narrowed policy",
                interval=0.5,
            )
            blocked = poll(
                lambda: connect_from(cluster, new, "agent", outside, port),
                POLICY_TIMEOUT,
                f"the narrowed policy to stop the new agent pod reaching {outside}:{port}",
            )
            assert "refused or dropped" in blocked, blocked
            poll(
                lambda: (
                    (h := agent_health(cluster, new))["kubernetes"]["connected"]
                    and h["broker"]["connected"]
                ),
                APPLY_TIMEOUT,
                "the new agent's /health to report the API server and the broker connected",
            )
            applied_and_reported(brokkr)
    assert api_server_cidrs(agent_policy(cluster), port) == ["0.0.0.0/0"], "not restored"
    probe_pods_gone(cluster)
