"""Render assertions for the brokkr-agent chart (helm template, no cluster)."""

from __future__ import annotations

import pytest

from brokkr_dev.charts import lint as charts
from tests.charts.render import AGENT, AGENT_REQUIRED, agent, env, merge, render_error

pytestmark = pytest.mark.charts
PAK = "brokkr_Abcd1234_abcdefghijklmnopqrstuvwx"


def container(manifests):
    return manifests.one("Deployment")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (("broker", "url"), "broker.url is required"),
        (("agent", "name"), "agent.name is required"),
        (("agent", "clusterName"), "agent.clusterName is required"),
        (("pak", "existingSecret"), "a PAK source is required"),
    ],
)
def test_required_values_fail_with_a_clear_message(drop, message):
    values = merge(AGENT_REQUIRED, {drop[0]: {drop[1]: ""}})
    assert message in render_error(AGENT, values)


def test_the_public_pak_is_refused():
    values = merge(
        AGENT_REQUIRED,
        {
            "pak": {
                "existingSecret": "",
                "value": "brokkr_BR3rVsDa_GK3QN7CDUzYc6iKgMkJ98M2WSimM5t6U8",
            }
        },
    )
    assert "publicly known test PAK" in render_error(AGENT, values)


def test_settings_go_to_the_configmap_and_the_pak_comes_from_a_file():
    manifests = agent({"pak": {"existingSecret": "", "value": PAK}})
    config = manifests.one("ConfigMap")["data"]
    assert config["BROKKR__AGENT__BROKER_URL"] == "https://brokkr.example.com"
    assert (config["BROKKR__AGENT__AGENT_NAME"], config["BROKKR__AGENT__CLUSTER_NAME"]) == (
        "a1",
        "c1",
    )
    assert config["BROKKR__AGENT__HEALTH_PORT"] == "8080"
    assert "BROKKR__AGENT__WATCH_NAMESPACE" not in config
    assert PAK not in str(manifests.all("ConfigMap"))
    spec = manifests.one("Deployment")["spec"]["template"]["spec"]
    assert PAK not in str(spec)
    assert env(container(manifests))["BROKKR__AGENT__PAK_FILE"] == "/etc/brokkr/pak/pak"
    assert manifests.one("Secret", "-pak")["type"] == "Opaque"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["pak"]["secret"]["secretName"] == "brokkr-brokkr-agent-pak"


def test_existing_pak_secret_is_mounted_and_no_secret_is_made():
    manifests = agent({"pak": {"existingSecret": "mine", "key": "token"}})
    assert not manifests.all("Secret")
    volumes = {
        v["name"]: v for v in manifests.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["pak"]["secret"] == {
        "secretName": "mine",
        "items": [{"key": "token", "path": "pak"}],
    }


@pytest.mark.parametrize("scenario", charts.SCENARIOS)
def test_the_pod_meets_the_restricted_profile_and_probes_the_contract(scenario):
    manifests = agent(scenario=scenario)
    spec = manifests.one("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["fsGroup"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = spec["containers"][0]["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    probes = spec["containers"][0]
    assert probes["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert probes["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert probes["ports"][0]["containerPort"] == 8080


def _rules(manifests, kind):
    return manifests.one(kind, "-manager")["rules"]


def test_cluster_scope_binds_a_bounded_clusterrole():
    manifests = agent()
    rules = _rules(manifests, "ClusterRole")
    assert manifests.one("ClusterRoleBinding", "-manager")["roleRef"]["kind"] == "ClusterRole"
    assert not manifests.all("Role")
    for rule in rules:
        assert (
            "*" not in rule["verbs"]
            and "*" not in rule["resources"]
            and "*" not in rule["apiGroups"]
        )
    managed = {r for rule in rules for r in rule["resources"]}
    assert {"deployments", "configmaps", "services"} <= managed
    # Nothing the agent does not use: no Secrets, no Events, no CRD reads without CRDs.
    assert not {"secrets", "events", "customresourcedefinitions"} & managed
    # Server-side apply and its dry run (create, patch), prune (list, delete); no get/watch/update.
    assert {tuple(rule["verbs"]) for rule in rules} == {("create", "patch", "list", "delete")}
    discovery = manifests.one("ClusterRole", "-discovery")["rules"]
    assert discovery == [
        {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/version"], "verbs": ["get"]}
    ]


def test_namespace_scope_binds_a_role_in_the_watched_namespace():
    manifests = agent({"rbac": {"scope": "namespace", "watchNamespace": "apps"}})
    role = manifests.one("Role", "-manager")
    assert role["metadata"]["namespace"] == "apps"
    binding = manifests.one("RoleBinding", "-manager")
    assert binding["metadata"]["namespace"] == "apps"
    assert binding["subjects"][0]["namespace"] == "brokkr"
    assert [c["metadata"]["name"] for c in manifests.all("ClusterRole")] == [
        "brokkr-brokkr-brokkr-agent-discovery"
    ]
    assert manifests.one("ConfigMap")["data"]["BROKKR__AGENT__WATCH_NAMESPACE"] == "apps"
    assert {tuple(rule["verbs"]) for rule in role["rules"]} == {
        ("create", "patch", "list", "delete")
    }


CRDS = {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"]}


def test_managing_crds_adds_get_on_crds_in_cluster_scope():
    rules = _rules(agent({"rbac": {"managedResources": [CRDS]}}), "ClusterRole")
    # The agent reads a CRD it applied until the CRD is Established.
    assert rules == [
        {**CRDS, "verbs": ["create", "patch", "list", "delete"]},
        {**CRDS, "verbs": ["get"]},
    ]


def test_no_crd_get_in_namespace_scope():
    # CRDs are cluster-scoped; a namespace-scoped agent refuses them before any request.
    manifests = agent({"rbac": {"scope": "namespace", "managedResources": [CRDS]}})
    assert all("get" not in rule["verbs"] for rule in _rules(manifests, "Role"))


def test_managed_kinds_and_verbs_are_configurable():
    manifests = agent(
        {
            "rbac": {
                "managedResources": [{"apiGroups": [""], "resources": ["secrets"]}],
                "managedVerbs": ["get", "patch"],
            }
        }
    )
    assert _rules(manifests, "ClusterRole") == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"]}
    ]


@pytest.mark.parametrize(
    "rbac",
    [
        {"managedResources": [{"apiGroups": ["*"], "resources": ["deployments"]}]},
        {"managedResources": [{"apiGroups": [""], "resources": ["*"]}]},
        {"managedVerbs": ["*"]},
    ],
)
def test_wildcards_need_the_explicit_value(rbac):
    assert "rbac.allowWildcardAccess" in render_error(AGENT, merge(AGENT_REQUIRED, {"rbac": rbac}))


def test_wildcard_access_when_asked_for():
    rules = _rules(agent({"rbac": {"allowWildcardAccess": True}}), "ClusterRole")
    assert rules == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]


def test_inline_ca_bundle_becomes_a_configmap_and_the_ca_file_setting():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    manifests = agent({"broker": {"caBundle": pem}})
    assert manifests.one("ConfigMap", "-ca")["data"]["ca.crt"].strip() == pem
    assert (
        manifests.one("ConfigMap", "brokkr-agent")["data"]["BROKKR__AGENT__CA_FILE"]
        == "/etc/brokkr/ca/ca.crt"
    )
    volumes = {
        v["name"]: v for v in manifests.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["ca"]["configMap"]["name"] == "brokkr-brokkr-agent-ca"


def test_existing_ca_configmap_is_mounted():
    manifests = agent({"broker": {"caBundleConfigMap": "corp-ca", "caBundleKey": "bundle.pem"}})
    assert len(manifests.all("ConfigMap")) == 1
    volumes = {
        v["name"]: v for v in manifests.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["ca"]["configMap"] == {
        "name": "corp-ca",
        "items": [{"key": "bundle.pem", "path": "ca.crt"}],
    }


def test_networkpolicy_allows_dns_api_server_and_broker_only():
    policy = agent(
        {
            "networkPolicy": {"enabled": True, "apiServerPorts": [6443]},
            "broker": {"port": 8443, "cidr": "10.1.0.0/16"},
        }
    ).one("NetworkPolicy")["spec"]
    egress = policy["egress"]
    assert [p["port"] for p in egress[0]["ports"]] == [53, 53]
    assert egress[1]["ports"] == [{"port": 6443, "protocol": "TCP"}]
    assert egress[2] == {
        "to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}],
        "ports": [{"port": 8443, "protocol": "TCP"}],
    }
    assert len(egress) == 3


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://brokkr-broker:3000", 3000),
        ("https://brokkr.example.com", 443),
        ("http://brokkr-broker.brokkr.svc", 80),
        ("https://[fd00::1]:8443/", 8443),
    ],
)
def test_networkpolicy_takes_the_broker_port_from_the_url(url, port):
    """The quick start's agent (broker.url with :3000, no broker.port) was cut off
    from its broker by its own egress rule while it allowed only 443."""
    policy = agent({"broker": {"url": url}}).one("NetworkPolicy")["spec"]
    assert policy["egress"][-1]["ports"] == [{"port": port, "protocol": "TCP"}]


def test_defaults_have_a_networkpolicy_and_cpu_limits():
    """Secure defaults (scan findings): egress limited, CPU and memory capped."""
    manifests = agent()
    assert manifests.one("NetworkPolicy")["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert set(container(manifests)["resources"]["limits"]) == {"cpu", "memory"}
    assert not agent({"networkPolicy": {"enabled": False}}).all("NetworkPolicy")


def test_production_has_podmonitor_and_networkpolicy():
    manifests = agent(scenario="production")
    assert manifests.one("PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "health"
    assert manifests.all("NetworkPolicy")


def test_image_rules_match_the_broker_chart():
    assert container(agent())["image"] == "ghcr.io/colliery-io/brokkr-agent:0.1.0"
    digest = "sha256:" + "b" * 64
    image = container(agent({"global": {"imageRegistry": "m.local"}, "image": {"digest": digest}}))[
        "image"
    ]
    assert image == f"m.local/colliery-io/brokkr-agent@{digest}"


def test_config_changes_roll_the_pod_and_scheduling_knobs_apply():
    def annotations(values):
        return agent(values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]

    assert (
        annotations({})["checksum/config"]
        != annotations({"agent": {"pollingInterval": 5}})["checksum/config"]
    )
    spec = agent(
        {
            "nodeSelector": {"a": "b"},
            "priorityClassName": "p",
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
            ],
        }
    ).one("Deployment")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"a": "b"} and spec["priorityClassName"] == "p"
    assert (
        spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"][
            "app.kubernetes.io/component"
        ]
        == "agent"
    )


# --- helm test ---------------------------------------------------------------------


def test_helm_test_pod_checks_registration_with_the_agents_own_settings():
    manifests = agent()
    pod = manifests.one("Pod", "-test-registration")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    deployment = manifests.one("Deployment")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == ["python", "-m", "brokkr.agent.registration"]
    assert container["image"] == deployment["containers"][0]["image"]
    assert container["envFrom"] == deployment["containers"][0]["envFrom"]
    assert env(container)["BROKKR__AGENT__PAK_FILE"] == "/etc/brokkr/pak/pak"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["pak"]["secret"] == {
        "secretName": "agent-pak",
        "items": [{"key": "pak", "path": "pak"}],
    }
    # It talks to the broker only, and the Deployment never adopts it.
    assert spec["automountServiceAccountToken"] is False
    labels = pod["metadata"]["labels"]
    assert not manifests.one("Deployment")["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )


def test_helm_test_pod_trusts_the_brokers_ca():
    pod = agent({"broker": {"caBundleConfigMap": "corp-ca", "caBundleKey": "b.pem"}}).one("Pod")
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["ca"] == "/etc/brokkr/ca"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["ca"]["configMap"]["name"] == "corp-ca"


def test_helm_test_pod_can_be_left_out():
    assert not agent({"tests": {"enabled": False}}).all("Pod")


def test_same_release_name_in_two_namespaces_shares_no_cluster_scoped_object():
    def cluster_scoped(namespace: str) -> set[tuple[str, str]]:
        manifests = agent(namespace=namespace)
        kinds = ("ClusterRole", "ClusterRoleBinding")
        return {(k, m["metadata"]["name"]) for k in kinds for m in manifests.all(k)}

    first, second = cluster_scoped("team-a"), cluster_scoped("team-b")
    assert len(first) == len(second) == 4
    assert not first & second
