"""RBAC, Pod Security admission and ServiceAccount tokens are enforced as on a real cluster."""

from __future__ import annotations

from tests.fixtures.kube import KubeCluster
from tests.k8s.conftest import restricted_pod_spec


def service_account_token(cluster: KubeCluster, namespace: str, name: str) -> str:
    cluster.client.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    review = cluster.client.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )
    return str(review["status"]["token"])


def test_service_account_without_a_role_is_forbidden_until_bound(
    k8s_cluster: KubeCluster, k8s_namespace: str
) -> None:
    token = service_account_token(k8s_cluster, k8s_namespace, "reader")
    as_reader = k8s_cluster.client.with_token(token)
    path = f"/api/v1/namespaces/{k8s_namespace}/configmaps"
    denied = as_reader.request("GET", path)
    assert denied.status_code == 403, denied.text
    assert f"system:serviceaccount:{k8s_namespace}:reader" in denied.json()["message"]

    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{k8s_namespace}"
    k8s_cluster.client.create(
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    k8s_cluster.client.create(
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "configmap-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": k8s_namespace}],
        },
    )
    # The authorizer sees the binding through a watch: poll, do not sleep.
    k8s_cluster.wait_for(
        lambda: as_reader.request("GET", path).status_code == 200, "the RoleBinding to apply"
    )
    # Still least privilege: the Role grants no writes and nothing in other namespaces.
    write = as_reader.request(
        "POST", path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    )
    assert write.status_code == 403
    assert as_reader.request("GET", "/api/v1/namespaces/default/configmaps").status_code == 403


def test_token_request_token_authenticates_as_the_service_account(
    k8s_cluster: KubeCluster, k8s_namespace: str
) -> None:
    token = service_account_token(k8s_cluster, k8s_namespace, "agent")
    review = k8s_cluster.client.with_token(token).create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    user = review["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{k8s_namespace}:agent"
    assert "system:serviceaccounts" in user["groups"]
    forged = k8s_cluster.client.with_token(token[:-4] + "AAAA")
    assert forged.request("GET", "/api").status_code == 401


def test_restricted_pod_security_rejects_privileged_and_admits_compliant_pods(
    k8s_cluster: KubeCluster, k8s_namespace: str
) -> None:
    client = k8s_cluster.client
    client.patch(
        f"/api/v1/namespaces/{k8s_namespace}",
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    pods = f"/api/v1/namespaces/{k8s_namespace}/pods"
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.invalid/app:1.0.0",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    refused = client.request("POST", pods, privileged)
    assert refused.status_code == 403, refused.text
    assert 'violates PodSecurity "restricted:' in refused.json()["message"]
    assert "privileged" in refused.json()["message"]

    compliant = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "compliant"},
        "spec": restricted_pod_spec(),
    }
    admitted = client.request("POST", pods, compliant)
    assert admitted.status_code == 201, admitted.text
