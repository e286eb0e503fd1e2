"""Render assertions for the brokkr-broker chart (helm template, no cluster)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from brokkr_dev.charts import lint as charts
from tests.charts.render import BROKER, env, render, render_error

pytestmark = pytest.mark.charts
PUBLIC_HASH = "4c697273df3d764cba950bb5c04368097685f09259f5bd880d892cf1ff9f4cdd"
SENTINEL = "s3cret-Sentinel-7731"


def broker_container(manifests):
    return manifests.one("Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_default_install_renders_broker_and_bundled_postgresql():
    """Secure defaults: NetworkPolicies for the broker and the bundled PostgreSQL."""
    kinds = render(BROKER).kinds()
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "NetworkPolicy",
            "Pod",
            "Secret",
            "Secret",
            "Service",
            "Service",
            "ServiceAccount",
            "StatefulSet",
        ]
    )


@pytest.mark.parametrize("scenario", ["", *charts.SCENARIOS])
def test_every_pod_meets_the_restricted_profile(scenario):
    for name, spec in render(BROKER, scenario=scenario).pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (10001, 10001, 10001)
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]


def test_probes_hit_the_contract_paths_and_are_tunable():
    container = broker_container(render(BROKER, {"probes": {"startup": {"failureThreshold": 99}}}))
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http",
        "scheme": "HTTP",
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["failureThreshold"] == 99
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["args"] == ["serve"]


def test_minted_admin_pak_has_the_format_and_only_its_hash_reaches_the_broker():
    manifests = render(BROKER)
    secret = manifests.one("Secret", "-admin")
    pak = base64.b64decode(secret["data"]["pak"]).decode()
    digest = base64.b64decode(secret["data"]["pak-hash"]).decode()
    assert re.fullmatch(r"brokkr_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}", pak)
    assert digest == hashlib.sha256(pak.split("_")[2].encode()).hexdigest()
    assert digest != PUBLIC_HASH
    assert admin_pak_file(manifests) == ("brokkr-brokkr-broker-admin", "pak-hash")
    assert pak not in str(manifests.all("ConfigMap")) and digest not in str(
        manifests.all("ConfigMap")
    )


def admin_pak_file(manifests) -> tuple[str, str]:
    """(Secret, key) the broker reads its PAK hash from: a mounted file, never env."""
    container = broker_container(manifests)
    assert "BROKKR__BROKER__PAK_HASH" not in env(container)
    assert env(container)["BROKKR__BROKER__PAK_HASH_FILE"] == "/etc/brokkr/admin/pak-hash"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/brokkr/admin")
    assert mount["readOnly"] is True
    pod = manifests.one("Deployment")["spec"]["template"]["spec"]
    secret = next(v for v in pod["volumes"] if v["name"] == mount["name"])["secret"]
    assert secret["items"][0]["path"] == "pak-hash"
    return secret["secretName"], secret["items"][0]["key"]


def test_two_installs_mint_different_paks():
    first = render(BROKER).one("Secret", "-admin")["data"]["pak"]
    assert first != render(BROKER).one("Secret", "-admin")["data"]["pak"]


def test_existing_admin_secret_replaces_the_minted_pak():
    manifests = render(BROKER, {"admin": {"pak": {"existingSecret": "mine", "hashKey": "h"}}})
    assert not [s for s in manifests.all("Secret") if s["metadata"]["name"].endswith("-admin")]
    assert admin_pak_file(manifests) == ("mine", "h")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "ghcr.io/colliery-io/brokkr-broker:0.1.0"),
        ({"image": {"tag": "9.9.9"}}, "ghcr.io/colliery-io/brokkr-broker:9.9.9"),
        (
            {"image": {"tag": "9.9.9", "digest": "sha256:" + "a" * 64}},
            "ghcr.io/colliery-io/brokkr-broker@sha256:" + "a" * 64,
        ),
        (
            {"global": {"imageRegistry": "mirror.local:5000"}},
            "mirror.local:5000/colliery-io/brokkr-broker:0.1.0",
        ),
        ({"image": {"registry": "", "repository": "brokkr"}}, "brokkr:0.1.0"),
    ],
)
def test_image_reference_rules(values, expected):
    assert broker_container(render(BROKER, values))["image"] == expected


def test_global_registry_and_pull_secrets_reach_postgresql_too():
    manifests = render(
        BROKER,
        {
            "global": {"imageRegistry": "mirror.local", "imagePullSecrets": ["g"]},
            "imagePullSecrets": ["a"],
            "postgresql": {"image": {"repository": "my/pg", "tag": "16"}},
        },
    )
    pg = manifests.one("StatefulSet")["spec"]["template"]["spec"]
    assert pg["containers"][0]["image"] == "mirror.local/my/pg:16"
    for _, spec in manifests.pod_specs():
        assert spec["imagePullSecrets"] == [{"name": "a"}, {"name": "g"}]


def test_hpa_replaces_the_deployments_replicas():
    plain = render(BROKER, {"replicaCount": 4})
    assert plain.one("Deployment")["spec"]["replicas"] == 4
    assert not plain.all("HorizontalPodAutoscaler")
    scaled = render(BROKER, {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 7}})
    assert "replicas" not in scaled.one("Deployment")["spec"]
    hpa = scaled.one("HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 7)


def test_bundled_database_mode():
    manifests = render(
        BROKER, {"postgresql": {"persistence": {"storageClass": "fast", "size": "3Gi"}}}
    )
    config = manifests.one("ConfigMap")["data"]
    assert config["BROKKR__DATABASE__HOST"] == "brokkr-brokkr-broker-postgresql"
    container = broker_container(manifests)
    assert env(container)["BROKKR__DATABASE__PASSWORD_FILE"] == "/etc/brokkr/database/password"
    volume = {
        v["name"]: v for v in manifests.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volume["database"]["secret"]["secretName"] == "brokkr-brokkr-broker-postgresql"
    claim = manifests.one("StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast"
    assert claim["resources"]["requests"]["storage"] == "3Gi"


def test_bundled_postgresql_without_persistence_uses_an_emptydir():
    sts = render(BROKER, {"postgresql": {"persistence": {"enabled": False}}}).one("StatefulSet")
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"]


def test_external_database_with_a_password_gets_a_chart_secret():
    manifests = render(
        BROKER,
        {
            "database": {
                "mode": "external",
                "external": {"host": "db.example", "password": SENTINEL, "sslMode": "verify-full"},
            }
        },
    )
    assert not manifests.all("StatefulSet")
    config = manifests.one("ConfigMap")["data"]
    assert (config["BROKKR__DATABASE__HOST"], config["BROKKR__DATABASE__SSLMODE"]) == (
        "db.example",
        "verify-full",
    )
    assert manifests.one("Secret", "-database")["data"]["password"]


def test_external_database_with_an_existing_secret():
    manifests = render(
        BROKER,
        {
            "database": {
                "mode": "external",
                "external": {"host": "db.example", "existingSecret": "dbs", "passwordKey": "pw"},
            }
        },
    )
    assert not [s for s in manifests.all("Secret") if s["metadata"]["name"].endswith("-database")]
    volume = manifests.one("Deployment")["spec"]["template"]["spec"]["volumes"][1]
    assert volume["secret"] == {"secretName": "dbs", "items": [{"key": "pw", "path": "password"}]}


def test_url_database_mode_reads_the_url_from_a_file():
    manifests = render(
        BROKER, {"database": {"mode": "url", "url": {"existingSecret": "u", "key": "k"}}}
    )
    assert (
        env(broker_container(manifests))["BROKKR__DATABASE__URL_FILE"] == "/etc/brokkr/database/url"
    )
    assert "BROKKR__DATABASE__HOST" not in manifests.one("ConfigMap")["data"]
    volume = manifests.one("Deployment")["spec"]["template"]["spec"]["volumes"][1]
    assert volume["secret"] == {"secretName": "u", "items": [{"key": "k", "path": "url"}]}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"database": {"mode": "external", "external": {"existingSecret": "x"}}},
            "database.mode=external needs database.external.host",
        ),
        (
            {"database": {"mode": "external", "external": {"host": "h"}}},
            "database.external.existingSecret (preferred) or database.external.password",
        ),
        ({"database": {"mode": "url"}}, "database.mode=url needs database.url.existingSecret"),
        ({"tls": {"enabled": True}}, "tls.enabled needs tls.existingSecret"),
        (
            {"tls": {"enabled": True, "certManager": {"enabled": True}}},
            "tls.certManager.enabled needs tls.certManager.issuerRef.name",
        ),
        (
            {"broker": {"databasePool": {"minSize": 12, "maxSize": 4}}},
            "broker.databasePool.minSize must be <= broker.databasePool.maxSize",
        ),
    ],
)
def test_incomplete_values_fail_with_the_fix(values, message):
    assert message in render_error(BROKER, values)


@pytest.mark.parametrize("scenario", ["", *charts.SCENARIOS])
def test_secrets_never_land_in_configmaps_or_plain_env(scenario):
    values = {"database": {"external": {"password": SENTINEL}}} if scenario == "" else {}
    if scenario == "":
        values["database"]["mode"] = "external"
        values["database"]["external"]["host"] = "db"
    manifests = render(BROKER, values, scenario)
    assert SENTINEL not in str(manifests.all("ConfigMap"))
    for obj in manifests.all("ConfigMap"):
        assert not any(
            k in ("BROKKR__DATABASE__PASSWORD", "BROKKR__DATABASE__URL", "BROKKR__BROKER__PAK_HASH")
            for k in obj["data"]
        )
    for _, spec in manifests.pod_specs():
        assert SENTINEL not in str(spec)
        for container in spec["containers"]:
            for name, value in env(container).items():
                if any(word in name for word in ("PASSWORD", "PAK", "URL")):
                    assert isinstance(value, dict) or name.endswith("_FILE"), name


def test_config_changes_roll_the_pods():
    def checksum(values):
        return render(BROKER, values).one("Deployment")["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/config"]

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"broker": {"log": {"level": "debug"}}})


def test_scheduling_and_pod_options():
    spread = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
    }
    manifests = render(
        BROKER,
        {
            "nodeSelector": {"pool": "system"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "affinity": {"podAntiAffinity": {}},
            "topologySpreadConstraints": [spread],
            "priorityClassName": "high",
            "podLabels": {"team": "x"},
            "podAnnotations": {"note": "hello"},
            "resources": {"limits": {"cpu": "2"}},
            "extraEnv": [{"name": "EXTRA", "value": "1"}],
            "extraVolumes": [{"name": "extra", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "extra", "mountPath": "/extra"}],
        },
    )
    template = manifests.one("Deployment")["spec"]["template"]
    spec = template["spec"]
    assert spec["nodeSelector"] == {"pool": "system"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert spec["affinity"] == {"podAntiAffinity": {}}
    assert spec["priorityClassName"] == "high"
    constraint = spec["topologySpreadConstraints"][0]
    assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "broker"
    assert template["metadata"]["labels"]["team"] == "x"
    assert template["metadata"]["annotations"]["note"] == "hello"
    container = spec["containers"][0]
    assert container["resources"]["limits"]["cpu"] == "2"
    assert env(container)["EXTRA"] == "1"
    assert {"name": "extra", "mountPath": "/extra"} in container["volumeMounts"]


def spread_of(values: dict) -> list:
    spec = render(BROKER, values).one("Deployment")["spec"]["template"]["spec"]
    return list(spec.get("topologySpreadConstraints") or [])


def test_several_replicas_spread_over_nodes_by_default_and_settings_win():
    assert spread_of({}) == [], "one replica needs no spread"
    (default,) = spread_of({"replicaCount": 2})
    assert {k: v for k, v in default.items() if k != "labelSelector"} == {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",  # soft: a one-node cluster still schedules
    }
    assert default["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "broker"
    assert spread_of({"autoscaling": {"enabled": True}}), "an autoscaled broker spreads too"
    # The user's own placement wins: their constraints, or an affinity of their own.
    zone = {
        "maxSkew": 2,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
    }
    (mine,) = spread_of({"replicaCount": 3, "topologySpreadConstraints": [zone]})
    assert mine["topologyKey"] == "topology.kubernetes.io/zone" and mine["maxSkew"] == 2
    assert spread_of({"replicaCount": 3, "affinity": {"podAntiAffinity": {}}}) == []


def test_broker_served_tls_from_cert_manager():
    manifests = render(
        BROKER,
        {
            "tls": {
                "enabled": True,
                "certManager": {
                    "enabled": True,
                    "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
                },
            }
        },
    )
    cert = manifests.one("Certificate")["spec"]
    assert cert["secretName"] == "brokkr-brokkr-broker-tls"
    assert "brokkr-brokkr-broker.brokkr.svc" in cert["dnsNames"]
    container = broker_container(manifests)
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    config = manifests.one("ConfigMap")["data"]
    assert config["BROKKR__BROKER__TLS__ENABLED"] == "true"
    assert config["BROKKR__BROKER__TLS__CERT_FILE"] == "/etc/brokkr/tls/tls.crt"


def test_ingress_with_tls():
    ingress = render(
        BROKER,
        {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "tls": [{"secretName": "t", "hosts": ["brokkr.example.com"]}],
            }
        },
    ).one("Ingress")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": ["brokkr.example.com"], "secretName": "t"}]
    assert ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"] == "http"


def test_production_has_pdb_spread_networkpolicy_and_monitoring():
    manifests = render(BROKER, scenario="production")
    assert manifests.one("Deployment")["spec"]["replicas"] >= 2
    assert manifests.one("PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert manifests.one("Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert manifests.one("NetworkPolicy")["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert manifests.one("ServiceMonitor")["spec"]["endpoints"][0]["path"] == "/metrics"
    assert not manifests.all("StatefulSet")


def test_default_resources_cap_cpu_and_memory():
    """CPU limits by default (a scan finding): a runaway pod cannot starve its node."""
    for _, spec in render(BROKER).pod_specs():
        for container in spec["containers"]:
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}, container["name"]


def test_network_policies_can_be_turned_off():
    assert not render(BROKER, {"networkPolicy": {"enabled": False}}).all("NetworkPolicy")


def test_bundled_postgresql_is_reachable_only_from_the_broker_when_policies_are_on():
    policy = render(BROKER, {"networkPolicy": {"enabled": True}}).one(
        "NetworkPolicy", "-postgresql"
    )
    peer = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert peer["app.kubernetes.io/component"] == "broker"


def test_storage_class_dash_asks_for_no_class():
    sts = render(BROKER, {"postgresql": {"persistence": {"storageClass": "-"}}}).one("StatefulSet")
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == ""
    default = render(BROKER).one("StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]
    assert "storageClassName" not in default


def test_no_service_links_in_any_pod():
    for name, spec in render(BROKER).pod_specs():
        assert spec["enableServiceLinks"] is False, name


def test_workers_and_pool_size_reach_the_broker_with_defaults_for_one_cpu():
    data = render(BROKER).one("ConfigMap", "broker")["data"]
    assert (data["BROKKR__BROKER__WORKERS"], data["BROKKR__DATABASE__POOL_MAX_SIZE"]) == ("1", "10")
    assert data["BROKKR__DATABASE__POOL_MIN_SIZE"] == "2"
    sized = {"broker": {"workers": 2, "databasePool": {"minSize": 4, "maxSize": 8}}}
    data = render(BROKER, sized).one("ConfigMap", "broker")["data"]
    assert data["BROKKR__BROKER__WORKERS"] == "2"
    assert (data["BROKKR__DATABASE__POOL_MIN_SIZE"], data["BROKKR__DATABASE__POOL_MAX_SIZE"]) == (
        "4",
        "8",
    )
    assert "workers" in render_error(BROKER, {"broker": {"workers": 0}})


def test_shutdown_delay_and_drain_reach_the_broker_and_fit_the_grace_period():
    """A rollout refuses nothing: the broker stays up `shutdownDelay` seconds after
    SIGTERM while endpoints drop it, then drains; the kubelet waits for both."""
    rendered = render(BROKER)
    data = rendered.one("ConfigMap", "broker")["data"]
    assert (data["BROKKR__BROKER__SHUTDOWN_DELAY"], data["BROKKR__BROKER__DRAIN_TIMEOUT"]) == (
        "5",
        "25",
    )
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 35
    tuned = render(BROKER, {"broker": {"shutdownDelay": 2.5, "drainTimeout": 10}})
    assert tuned.one("ConfigMap", "broker")["data"]["BROKKR__BROKER__SHUTDOWN_DELAY"] == "2.5"
    pod = tuned.one("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 18  # ceil(12.5) + 5
    assert "shutdownDelay" in render_error(BROKER, {"broker": {"shutdownDelay": -1}})


# --- helm test ---------------------------------------------------------------------


def test_helm_test_pod_checks_readyz_through_the_service_with_the_broker_image():
    manifests = render(BROKER)
    pod = manifests.one("Pod", "-test-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == [
        "python",
        "-m",
        "brokkr.common.healthcheck",
        "http://brokkr-brokkr-broker.brokkr.svc:3000/readyz",
        "10",
        "30",
    ]
    assert container["image"] == broker_container(manifests)["image"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    # Neither the Service nor the Deployment may select the test pod.
    labels = pod["metadata"]["labels"]
    for selector in (
        manifests.one("Service", "-broker")["spec"]["selector"],
        manifests.one("Deployment")["spec"]["selector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items()


def test_helm_test_pod_verifies_tls_against_the_secrets_ca():
    pod = render(BROKER, {"tls": {"enabled": True, "existingSecret": "broker-tls"}}).one("Pod")
    container = pod["spec"]["containers"][0]
    assert container["command"][3] == "https://brokkr-brokkr-broker.brokkr.svc:3000/readyz"
    assert env(container)["SSL_CERT_FILE"] == "/etc/brokkr/tls/ca.crt"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["tls"]["secret"] == {
        "secretName": "broker-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }


def test_helm_test_pod_can_be_left_out():
    assert not render(BROKER, {"tests": {"enabled": False}}).all("Pod")


def test_restricted_ingress_still_admits_the_helm_test_pod():
    peer = {"namespaceSelector": {"matchLabels": {"team": "agents"}}}
    values = {"networkPolicy": {"enabled": True, "ingressFrom": [peer]}}
    manifests = render(BROKER, values)
    policy = manifests.one("NetworkPolicy", "brokkr-broker")["spec"]
    sources = policy["ingress"][0]["from"]
    assert sources[0] == peer
    test_labels = manifests.one("Pod", "-test-health")["metadata"]["labels"]
    assert sources[1]["podSelector"]["matchLabels"].items() <= test_labels.items()
    assert len(sources) == 2
    values["tests"] = {"enabled": False}
    policy = render(BROKER, values).one("NetworkPolicy", "brokkr-broker")["spec"]
    assert policy["ingress"][0]["from"] == [peer]
