"""The agent end to end: a real broker on PostgreSQL, a real API server, agent subprocesses.

Every wait polls a condition with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import hashlib
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import kubeconfig
from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.local.services import LocalAgent, LocalBroker, Settings, Tls, merged
from tests.fixtures.agent import broker_for_agents
from tests.integration.test_tls import issue, make_ca
from tests.unit.test_agent_manifests import alias_bomb

pytestmark = [pytest.mark.postgres, pytest.mark.k8s, pytest.mark.slow]

APPLY_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def broker_database_url(postgres_server: Any) -> Iterator[str]:
    """One database for this module's broker (the broker migrates it at start)."""
    name = f"agent_e2e_{secrets.token_hex(4)}"
    postgres_server.psql(f"CREATE DATABASE {name}")
    yield postgres_server.dsn(name)
    if postgres_server.process is not None:
        postgres_server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def broker(
    broker_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalBroker]:
    process = broker_for_agents(broker_database_url, tmp_path_factory.mktemp("broker"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def admin(broker: LocalBroker) -> BrokerAdmin:
    if not broker.running:
        broker.start()  # a previous test stopped it
    return BrokerAdmin(broker.url, broker.admin_pak())


class Setup:
    """One generator, one ACTIVE agent registered with it, helpers to run it."""

    def __init__(
        self, admin: BrokerAdmin, broker: LocalBroker, kubeconfig: Path, tmp: Path
    ) -> None:
        self.admin, self.broker, self.kubeconfig, self.tmp = admin, broker, kubeconfig, tmp
        suffix = secrets.token_hex(3)
        self.generator_id = admin.generator(f"gen-{suffix}")
        self.agent_name, self.cluster = f"agent-{suffix}", f"cluster-{suffix}"
        self.agent_id, self.pak = admin.agent(self.agent_name, self.cluster)
        self.agents: list[LocalAgent] = []

    def settings(self, **extra: str) -> Settings:
        """This agent's settings; `extra` adds or replaces keys of the agent section."""
        agent = {
            "broker_url": self.broker.url,
            "pak": self.pak,
            "agent_name": self.agent_name,
            "cluster_name": self.cluster,
            "polling_interval": 1,
            "generator_ids": [self.generator_id],
            "kubeconfig": self.kubeconfig,
            "max_backoff": 2,
        }
        return {"agent": agent | extra}

    def run(self, **extra: str) -> LocalAgent:
        """Start an agent without waiting: some tests watch it never become healthy."""
        port = free_port()
        agent = LocalAgent(
            merged(self.settings(**extra), {"log": {"format": "text", "level": "DEBUG"}}),
            health_port=port,
            log_file=self.tmp / f"agent-{port}.log",
        )
        self.agents.append(agent)
        return agent.start(wait=False)

    def stack(self, yaml_text: str) -> tuple[str, dict[str, Any]]:
        stack_id = self.admin.stack(f"stack-{secrets.token_hex(3)}", self.generator_id)
        deployment = self.admin.deploy(stack_id, yaml_text)
        self.admin.target(self.agent_id, stack_id)
        return stack_id, deployment

    def event(self, deployment: dict[str, Any], timeout: float = APPLY_TIMEOUT) -> dict[str, Any]:
        return poll(
            lambda: self.admin.event_for(self.agent_id, deployment["id"]),
            timeout,
            f"an event for deployment object {deployment['id']}",
        )

    def stop_all(self) -> None:
        for agent in self.agents:
            code = agent.stop()
            assert code in (0, None), f"agent exit code {code}:\n{agent.log()}"


@pytest.fixture
def setup(
    admin: BrokerAdmin, broker: LocalBroker, k8s_cluster: Any, tmp_path: Path
) -> Iterator[Setup]:
    environment = Setup(admin, broker, Path(k8s_cluster.kubeconfig), tmp_path)
    yield environment
    environment.stop_all()


def stack_v1(ns: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{colour: blue}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: registry.invalid/web:1}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: extra, namespace: {ns}}}
data: {{x: "1"}}
"""


def stack_v2(ns: str) -> str:
    # `extra` and the Service are gone, `settings` changed.
    text = stack_v1(ns).replace("colour: blue", "colour: green")
    documents = [
        d for d in text.split("---") if "name: extra" not in d and "kind: Service" not in d
    ]
    return "---".join(documents)


def get(k8s_cluster: Any, path: str) -> dict[str, Any] | None:
    response = k8s_cluster.client.request("GET", path)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def gone(k8s_cluster: Any, path: str) -> bool:
    found = get(k8s_cluster, path)
    return found is None or bool(found["metadata"].get("deletionTimestamp"))


def test_stack_is_applied_updated_and_removed_across_restarts(setup: Setup, k8s_cluster: Any):
    ns = f"e2e-{secrets.token_hex(3)}"
    agent = setup.run()
    agent.wait_ready()
    stack_id, first = setup.stack(stack_v1(ns))
    event = setup.event(first)
    assert event["status"] == "SUCCESS", event
    assert event["event_type"] == "DEPLOY"
    paths = {
        "ns": f"/api/v1/namespaces/{ns}",
        "settings": f"/api/v1/namespaces/{ns}/configmaps/settings",
        "extra": f"/api/v1/namespaces/{ns}/configmaps/extra",
        "deployment": f"/apis/apps/v1/namespaces/{ns}/deployments/web",
        "service": f"/api/v1/namespaces/{ns}/services/web",
    }
    for path in paths.values():
        obj = get(k8s_cluster, path)
        assert obj is not None, path
        annotations = obj["metadata"]["annotations"]
        assert annotations["k8s.brokkr.io/stack"] == stack_id
        assert annotations["k8s.brokkr.io/deployment-checksum"] == first["yaml_checksum"]
        assert annotations["brokkr.io/deployment-object-id"] == first["id"]
        assert annotations["brokkr.io/owner-id"] == setup.agent_id
        managers = {entry["manager"] for entry in obj["metadata"]["managedFields"]}
        assert "brokkr-controller" in managers

    # Controllers copy the Service's labels (our owner label too) onto its EndpointSlices;
    # those are not ours to prune. Re-deploying the same YAML runs a prune of the stack.
    slices = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
    endpoint_slice = poll(
        lambda: k8s_cluster.client.get(slices, labelSelector="kubernetes.io/service-name=web")[
            "items"
        ],
        60,
        "the Service's EndpointSlice",
    )[0]
    again = setup.admin.deploy(stack_id, stack_v1(ns) + "\n")
    assert setup.event(again)["status"] == "SUCCESS"
    survivor = get(k8s_cluster, f"{slices}/{endpoint_slice['metadata']['name']}")
    assert survivor is not None and survivor["metadata"]["uid"] == endpoint_slice["metadata"]["uid"]

    # An object this agent does not own, in the stack's namespace, must survive pruning.
    k8s_cluster.client.create(
        f"/api/v1/namespaces/{ns}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-ours"}},
    )

    assert agent.stop() == 0  # restart between steps: state comes from cluster + broker
    second = setup.admin.deploy(stack_id, stack_v2(ns))
    agent = setup.run()
    assert setup.event(second)["status"] == "SUCCESS"
    poll(lambda: gone(k8s_cluster, paths["extra"]), 30, "ConfigMap extra pruned")
    poll(lambda: gone(k8s_cluster, paths["service"]), 30, "Service web pruned")
    settings = get(k8s_cluster, paths["settings"])
    assert settings is not None and settings["data"] == {"colour": "green"}
    assert settings["metadata"]["annotations"]["brokkr.io/deployment-object-id"] == second["id"]
    assert get(k8s_cluster, f"/api/v1/namespaces/{ns}/configmaps/not-ours") is not None

    assert agent.stop() == 0
    agent = setup.run()
    marker = setup.admin.deploy(stack_id, "", deletion=True)
    assert setup.event(marker)["status"] == "SUCCESS"
    for name in ("settings", "deployment", "ns"):
        poll(
            lambda name=name: gone(k8s_cluster, paths[name]),
            60,
            f"{name} removed by the deletion marker",
        )

    # Untargeting removes a stack too.
    ns2 = f"e2e-{secrets.token_hex(3)}"
    stack2, deployment = setup.stack(stack_v1(ns2))
    assert setup.event(deployment)["status"] == "SUCCESS"
    assert agent.stop() == 0
    setup.admin.untarget(setup.agent_id, stack2)
    setup.run()
    poll(
        lambda: gone(k8s_cluster, f"/api/v1/namespaces/{ns2}/configmaps/settings"),
        60,
        "untargeted stack removed",
    )


def test_unusable_yaml_and_rejected_objects_are_failure_events(
    setup: Setup, k8s_cluster: Any, k8s_namespace: str
):
    agent = setup.run()
    agent.wait_ready()
    # The broker refuses YAML that does not parse; what reaches the agent can still be
    # unusable as Kubernetes objects (here: no metadata.name), which must fail cleanly.
    _, broken = setup.stack("apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n")
    event = setup.event(broken)
    assert event["status"] == "FAILURE"
    assert "missing `metadata.name`" in event["message"]

    rejected_yaml = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: fine, namespace: {k8s_namespace}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: Not_A_Valid_Name, namespace: {k8s_namespace}}}
"""
    _, rejected = setup.stack(rejected_yaml)
    event = setup.event(rejected)
    assert event["status"] == "FAILURE"
    assert "Not_A_Valid_Name" in event["message"] and "nothing applied" in event["message"]
    # Validated before applying: the valid object of the same stack was not applied.
    assert get(k8s_cluster, f"/api/v1/namespaces/{k8s_namespace}/configmaps/fine") is None

    _, unknown = setup.stack(
        f"apiVersion: example.com/v1\nkind: Gizmo\nmetadata: {{name: g, namespace: {k8s_namespace}}}\n"
    )
    event = setup.event(unknown)
    assert event["status"] == "FAILURE" and "Gizmo" in event["message"]
    assert agent.health()["status"] == "healthy"


def test_a_stored_alias_bomb_fails_alone_and_the_agent_keeps_applying(
    setup: Setup, broker_database_url: str, k8s_namespace: str
):
    """An object the broker refuses today, stored by an older broker (written here
    straight into the database): one FAILURE event, and the agent keeps running."""
    agent = setup.run()
    agent.wait_ready()
    stack_id = setup.admin.stack(f"stack-{secrets.token_hex(3)}", setup.generator_id)
    bomb = alias_bomb(9)  # 43 million nodes: what took a running agent past 4 GB
    with psycopg.connect(broker_database_url) as conn:
        row = conn.execute(
            "INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)"
            " VALUES (%s, %s, %s) RETURNING id",
            (stack_id, bomb, hashlib.sha256(bomb.encode()).hexdigest()),
        ).fetchone()
    assert row is not None
    setup.admin.target(setup.agent_id, stack_id)
    event = setup.event({"id": str(row[0])})
    assert event["status"] == "FAILURE"
    assert "aliases expand to more than" in event["message"], event
    assert agent.get("/healthz").status_code == 200
    # The next stack applies: the agent was not taken down by the first.
    _, good = setup.stack(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: after-bomb, namespace: {k8s_namespace}}}\n"
    )
    assert setup.event(good)["status"] == "SUCCESS"
    assert agent.process is not None and agent.process.poll() is None


def namespace_kubeconfig(k8s_cluster: Any, namespace: str, target: Path) -> Path:
    """A kubeconfig for a ServiceAccount that may do anything in `namespace` only."""
    client = k8s_cluster.client
    client.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "agent"}}
    )
    client.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        {
            "metadata": {"name": "agent"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    client.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "metadata": {"name": "agent"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": namespace}],
        },
    )
    token = client.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/agent/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )["status"]["token"]
    admin = kubeconfig.load(Path(k8s_cluster.kubeconfig))
    creds = kubeconfig.Credentials(admin.server, admin.ca_pem, token=token)
    kubeconfig.write(target, kubeconfig.render("scoped", "agent", creds))
    return target


def test_namespace_scoped_agent(setup: Setup, k8s_cluster: Any, k8s_namespace: str, tmp_path: Path):
    config = namespace_kubeconfig(k8s_cluster, k8s_namespace, tmp_path / "scoped.kubeconfig")
    setup.kubeconfig = config
    agent = setup.run(watch_namespace=k8s_namespace)
    agent.wait_ready()
    # No namespace given: the agent's own namespace is used.
    _, inside = setup.stack(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: inside}\ndata: {a: b}\n"
    )
    assert setup.event(inside)["status"] == "SUCCESS"
    assert get(k8s_cluster, f"/api/v1/namespaces/{k8s_namespace}/configmaps/inside") is not None

    _, outside = setup.stack(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: o, namespace: default}\n"
    )
    event = setup.event(outside)
    assert event["status"] == "FAILURE" and "outside this agent's scope" in event["message"]
    _, cluster_scoped = setup.stack("apiVersion: v1\nkind: Namespace\nmetadata: {name: sneaky}\n")
    event = setup.event(cluster_scoped)
    assert event["status"] == "FAILURE" and "cluster-scoped" in event["message"]
    assert agent.health()["status"] == "healthy"


def test_broker_outage_and_return(
    setup: Setup, broker: LocalBroker, k8s_cluster: Any, k8s_namespace: str
):
    agent = setup.run()
    agent.wait_ready()
    broker.stop()
    poll(lambda: agent.health()["broker"]["connected"] is False, 30, "agent to notice the outage")
    assert agent.health()["status"] == "degraded"
    assert agent.get("/healthz").status_code == 200
    assert agent.get("/readyz").status_code == 200  # the cluster is still reachable
    broker.start()
    poll(lambda: agent.health()["status"] == "healthy", 60, "agent to reconnect")
    _, deployment = setup.stack(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: after, namespace: {k8s_namespace}}}\n"
    )
    assert setup.event(deployment)["status"] == "SUCCESS"
    metrics = agent.get("/metrics").text
    assert 'brokkr_agent_errors_total{source="broker"}' in metrics
    assert agent.process is not None and agent.process.poll() is None


def test_health_endpoints_when_kubernetes_is_unreachable(setup: Setup, tmp_path: Path):
    real = kubeconfig.load(setup.kubeconfig)
    dead = kubeconfig.Credentials(f"https://127.0.0.1:{free_port()}", real.ca_pem, token="x")
    path = tmp_path / "dead.kubeconfig"
    kubeconfig.write(path, kubeconfig.render("dead", "dead", dead))
    setup.kubeconfig = path
    agent = setup.run()
    # The broker stores the heartbeat before the agent records that it was sent.
    poll(
        lambda: (
            setup.admin.get_agent(setup.agent_id).get("k8s_reachable") is False
            and agent.health()["broker"]["last_heartbeat"]
        ),
        30,
        "a heartbeat reporting Kubernetes down",
    )
    ready = agent.get("/readyz")
    assert ready.status_code == 503 and "Kubernetes API unreachable" in ready.text
    assert agent.get("/healthz").status_code == 200
    health = agent.health()
    assert health["status"] == "degraded" and health["kubernetes"]["error"]
    assert health["broker"]["connected"] is True
    assert "brokkr_agent_kubernetes_connected 0.0" in agent.get("/metrics").text


def run_to_exit(settings: Settings, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return LocalAgent(settings).run_to_exit(timeout=timeout)


def test_start_up_failures_are_clear(setup: Setup):
    wrong_pak = run_to_exit(setup.settings(pak="brokkr_BR3rVsDa_GK3QN7CDUzYc6iKgMkJ98M2WSimM5t6U8"))
    assert wrong_pak.returncode == 1
    assert "rejected the PAK" in wrong_pak.stderr
    assert "GK3QN7CDUzYc6iKgMkJ98M2WSimM5t6U8" not in wrong_pak.stderr

    down = run_to_exit(
        setup.settings(broker_url=f"http://127.0.0.1:{free_port()}", startup_timeout="3")
    )
    assert down.returncode == 1
    assert "not available after 3 s" in down.stderr

    wrong_name = run_to_exit(setup.settings(agent_name="nobody"))
    assert wrong_name.returncode == 1 and "no agent named 'nobody'" in wrong_name.stderr

    bad = run_to_exit(setup.settings(polling_interval="soon"))
    assert bad.returncode == 2 and "BROKKR__AGENT__POLLING_INTERVAL" in bad.stderr


def test_inactive_agent_does_not_apply_and_sigterm_is_prompt(setup: Setup, k8s_namespace: str):
    setup.admin.call("PUT", f"/agents/{setup.agent_id}", {"status": "INACTIVE"})
    agent = setup.run()
    poll(lambda: agent.health()["agent"]["status"] == "INACTIVE", 30, "agent to see its status")
    _, deployment = setup.stack(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: idle, namespace: {k8s_namespace}}}\n"
    )
    # Two complete cycles after the deployment object exists, so one saw it.
    done = polls(agent)
    poll(lambda: polls(agent) >= done + 2, 30, "two more cycles")
    assert setup.admin.event_for(setup.agent_id, deployment["id"]) is None
    setup.admin.call("PUT", f"/agents/{setup.agent_id}", {"status": "ACTIVE"})
    assert setup.event(deployment)["status"] == "SUCCESS"
    assert agent.stop(timeout=20) == 0
    assert "stopped" in agent.log()


def polls(agent: LocalAgent) -> float:
    """Completed reconcile cycles, from the agent's own metrics."""
    for line in agent.get("/metrics").text.splitlines():
        if line.startswith('brokkr_agent_polls_total{result="success"}'):
            return float(line.split()[-1])
    return 0.0


def test_sigterm_exits_zero_within_the_bound_while_a_request_hangs(setup: Setup, tmp_path: Path):
    # An API server that accepts connections and never answers: every request hangs
    # until its timeout, so only the shutdown bound can make the agent exit in time.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        real = kubeconfig.load(setup.kubeconfig)
        hung = kubeconfig.Credentials(
            f"https://127.0.0.1:{silent.getsockname()[1]}", real.ca_pem, token="x"
        )
        path = tmp_path / "hung.kubeconfig"
        kubeconfig.write(path, kubeconfig.render("hung", "hung", hung))
        setup.kubeconfig = path
        agent = setup.run(request_timeout="60", shutdown_timeout="2")
        poll(lambda: agent.health()["status"] != "starting", 30, "agent past start-up")
        assert agent.process is not None
        started = time.monotonic()
        agent.process.send_signal(signal.SIGTERM)
        assert agent.wait_exit(timeout=15) == 0
        assert time.monotonic() - started < 6


def test_https_to_the_broker_is_verified(setup: Setup, broker_database_url: str, tmp_path: Path):
    ca_cert, ca_key = make_ca(tmp_path)
    cert, key = issue(tmp_path, (ca_cert, ca_key), "broker")
    tls_broker = broker_for_agents(broker_database_url, tmp_path, tls=Tls(cert, key, ca_cert))
    try:
        tls_broker.start()
        untrusted = run_to_exit(setup.settings(broker_url=tls_broker.url))
        assert untrusted.returncode == 1
        assert "TLS verification of the broker" in untrusted.stderr
        assert "certificate verify failed" in untrusted.stderr
        assert "BROKKR__AGENT__CA_FILE" in untrusted.stderr
        agent = setup.run(broker_url=tls_broker.url, ca_file=str(ca_cert))
        agent.wait_ready()
        assert agent.health()["broker"]["connected"] is True
    finally:
        tls_broker.stop()
