"""The agent chart's RBAC, in practice: the real agent runs with only what the chart grants.

The brokkr-agent chart is rendered in each scope; only its ServiceAccount, Roles/
ClusterRoles and bindings go into the cluster. The agent runs as that ServiceAccount
(a TokenRequest token in a kubeconfig) against a real broker, applies, updates and
prunes a stack of default managed kinds, and the API server's own authorizer shows
that nothing beyond those verbs was granted.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.clusters import kubeconfig
from tests.charts.render import Manifests, agent
from tests.e2e.test_agent import (  # noqa: F401  # module fixtures of the agent e2e tests
    Setup,
    admin,
    broker,
    broker_database_url,
    get,
    gone,
    setup,
)

pytestmark = [pytest.mark.postgres, pytest.mark.k8s, pytest.mark.slow]

RBAC_KINDS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}
GRANTED = ("create", "patch", "list", "delete")
NOT_GRANTED = ("get", "watch", "update", "deletecollection")


class ChartIdentity:
    """The chart's ServiceAccount and RBAC objects applied to the cluster, and a kubeconfig for it."""

    def __init__(self, k8s_cluster: Any, namespace: str, rbac: dict[str, Any]) -> None:
        self.cluster, self.namespace = k8s_cluster, namespace
        release = f"rbac-{secrets.token_hex(3)}"
        self.manifests: Manifests = agent({"rbac": rbac}, release=release, namespace=namespace)
        self.created: list[str] = []
        self.account = self.manifests.one("ServiceAccount")["metadata"]["name"]

    def apply(self) -> None:
        for obj in self.manifests:
            if obj["kind"] not in RBAC_KINDS:
                continue
            ns = obj["metadata"].get("namespace", self.namespace)
            path = RBAC_KINDS[obj["kind"]].format(ns=ns)
            self.cluster.client.create(path, obj)
            self.created.append(f"{path}/{obj['metadata']['name']}")

    def remove_cluster_objects(self) -> None:
        # Namespaced objects go with the test namespace; cluster-wide ones must be deleted.
        for path in self.created:
            if "/namespaces/" not in path:
                response = self.cluster.client.request("DELETE", path)
                assert response.status_code in (200, 202, 404), response.text

    def kubeconfig(self, target: Path) -> Path:
        token = self.cluster.client.create(
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{self.account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )["status"]["token"]
        admin_config = kubeconfig.load(Path(self.cluster.kubeconfig))
        creds = kubeconfig.Credentials(admin_config.server, admin_config.ca_pem, token=token)
        kubeconfig.write(target, kubeconfig.render("chart-rbac", "agent", creds))
        return target

    def allowed(self, verb: str, resource: str, group: str = "", namespace: str = "") -> bool:
        """The API server's answer to: may this ServiceAccount do `verb` on `resource`?"""
        review = self.cluster.client.create(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": f"system:serviceaccount:{self.namespace}:{self.account}",
                    "groups": ["system:serviceaccounts", "system:authenticated"],
                    "resourceAttributes": {
                        "verb": verb,
                        "group": group,
                        "resource": resource,
                        "namespace": namespace,
                    },
                },
            },
        )
        return bool(review["status"].get("allowed"))


@pytest.fixture
def identity(
    k8s_cluster: Any, k8s_namespace: str, request: pytest.FixtureRequest
) -> Iterator[ChartIdentity]:
    made = ChartIdentity(k8s_cluster, k8s_namespace, request.param)
    made.apply()
    yield made
    made.remove_cluster_objects()


@pytest.fixture
def target_namespace(k8s_cluster: Any) -> Iterator[str]:
    """A second namespace for the stack (default kinds do not include Namespaces)."""
    name = f"t-rbac-target-{secrets.token_hex(3)}"
    k8s_cluster.client.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    k8s_cluster.client.request("DELETE", f"/api/v1/namespaces/{name}")


def stack(ns: str, version: int) -> str:
    """ConfigMaps, a Deployment and a Service; version 2 changes one and drops two."""
    documents = [
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\n"
        f"data: {{colour: {'blue' if version == 1 else 'green'}}}\n",
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\n"
        "spec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n"
        "  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, image: registry.invalid/web:1}]}\n",
    ]
    if version == 1:
        documents += [
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {ns}}}\n"
            "spec: {selector: {app: web}, ports: [{port: 80}]}\n",
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: extra, namespace: {ns}}}\n"
            "data: {x: '1'}\n",
        ]
    return "---\n".join(documents)


def apply_update_prune(env: Setup, k8s_cluster: Any, ns: str) -> None:
    """The agent applies, updates, prunes and removes a stack; every step must succeed."""
    paths = {
        "settings": f"/api/v1/namespaces/{ns}/configmaps/settings",
        "extra": f"/api/v1/namespaces/{ns}/configmaps/extra",
        "deployment": f"/apis/apps/v1/namespaces/{ns}/deployments/web",
        "service": f"/api/v1/namespaces/{ns}/services/web",
    }
    stack_id, first = env.stack(stack(ns, 1))
    event = env.event(first)
    assert event["status"] == "SUCCESS", event
    for path in paths.values():
        assert get(k8s_cluster, path) is not None, path

    second = env.admin.deploy(stack_id, stack(ns, 2))
    event = env.event(second)
    assert event["status"] == "SUCCESS", event
    poll(lambda: gone(k8s_cluster, paths["extra"]), 30, "ConfigMap extra pruned")
    poll(lambda: gone(k8s_cluster, paths["service"]), 30, "Service web pruned")
    settings = get(k8s_cluster, paths["settings"])
    assert settings is not None and settings["data"] == {"colour": "green"}

    marker = env.admin.deploy(stack_id, "", deletion=True)
    assert env.event(marker)["status"] == "SUCCESS"
    for name in ("settings", "deployment"):
        poll(lambda name=name: gone(k8s_cluster, paths[name]), 30, f"{name} removed")


def assert_only_the_needed_verbs(identity: ChartIdentity, namespace: str) -> None:
    for verb in GRANTED:
        assert identity.allowed(verb, "configmaps", namespace=namespace), verb
        assert identity.allowed(verb, "deployments", "apps", namespace=namespace), verb
    for verb in NOT_GRANTED:
        assert not identity.allowed(verb, "configmaps", namespace=namespace), verb
    assert not identity.allowed("create", "events", namespace=namespace)
    assert not identity.allowed("get", "secrets", namespace=namespace)
    assert not identity.allowed("create", "namespaces")


@pytest.mark.parametrize("identity", [{"scope": "cluster"}], indirect=True)
def test_cluster_scope_chart_rbac_is_enough_and_no_more(
    setup: Setup,  # noqa: F811  # the fixture imported above
    identity: ChartIdentity,
    k8s_cluster: Any,
    target_namespace: str,
    tmp_path: Path,
):
    setup.kubeconfig = identity.kubeconfig(tmp_path / "chart-rbac.kubeconfig")
    setup.run().wait_ready()
    apply_update_prune(setup, k8s_cluster, target_namespace)
    assert_only_the_needed_verbs(identity, target_namespace)


@pytest.mark.parametrize("identity", [{"scope": "namespace"}], indirect=True)
def test_namespace_scope_chart_rbac_is_enough_and_no_more(
    setup: Setup,  # noqa: F811  # the fixture imported above
    identity: ChartIdentity,
    k8s_cluster: Any,
    target_namespace: str,
    tmp_path: Path,
):
    k8s_namespace = identity.namespace  # the release namespace, also the watched one
    assert identity.manifests.one("Role", "-manager")["metadata"]["namespace"] == k8s_namespace
    setup.kubeconfig = identity.kubeconfig(tmp_path / "chart-rbac.kubeconfig")
    agent_process = setup.run(watch_namespace=k8s_namespace)
    agent_process.wait_ready()
    apply_update_prune(setup, k8s_cluster, k8s_namespace)
    assert_only_the_needed_verbs(identity, k8s_namespace)

    _, outside = setup.stack(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: o, namespace: {target_namespace}}}\n"
    )
    event = setup.event(outside)
    assert event["status"] == "FAILURE" and "outside this agent's scope" in event["message"]
    assert get(k8s_cluster, f"/api/v1/namespaces/{target_namespace}/configmaps/o") is None
    # The Role really ends at the namespace, not just the agent's own check.
    assert not identity.allowed("create", "configmaps", namespace=target_namespace)
    assert agent_process.health()["status"] == "healthy"


@pytest.mark.parametrize(
    "identity",
    [{"scope": "cluster", "managedVerbs": ["create", "patch", "list"]}],
    indirect=True,
)
def test_without_delete_pruning_fails_with_a_failure_event(
    setup: Setup,  # noqa: F811  # the fixture imported above
    identity: ChartIdentity,
    k8s_cluster: Any,
    target_namespace: str,
):
    # One of the four verbs taken away: the agent says so instead of stalling unreported.
    setup.kubeconfig = identity.kubeconfig(setup.tmp / "chart-rbac.kubeconfig")
    setup.run().wait_ready()
    stack_id, first = setup.stack(stack(target_namespace, 1))
    assert setup.event(first)["status"] == "SUCCESS"
    second = setup.admin.deploy(stack_id, stack(target_namespace, 2))
    event = setup.event(second)
    assert event["status"] == "FAILURE", event
    assert "removing objects no longer in the stack failed: 403 Forbidden" in event["message"]
    extra = get(k8s_cluster, f"/api/v1/namespaces/{target_namespace}/configmaps/extra")
    assert extra is not None
