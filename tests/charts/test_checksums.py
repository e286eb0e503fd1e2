"""Rollouts follow configuration: a checksum on the pod template for each mounted object.

Every ConfigMap and Secret a pod reads (envFrom or a volume) is covered by a
`checksum/*` annotation of its pod template: changing the object's content (when the
chart renders it) or which object or key is mounted (when it is brought along) changes
that annotation and no other, so `helm upgrade` rolls exactly the pods concerned.
Objects the chart does not render are also hashed with their current data (lookup),
which only a real cluster answers: rotation on a live release is a kind test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import pytest
import yaml

from brokkr_dev.charts import lint as charts
from tests.charts.mutation import install_dry_run
from tests.charts.render import AGENT, AGENT_REQUIRED, BROKER, merge

pytestmark = pytest.mark.charts

# Existing admin and PostgreSQL Secrets keep the broker's renderings deterministic
# (a minted PAK or password is random in every `helm template`; the minted password's
# checksum has a test of its own below).
BROKER_BASE = {
    "admin": {"pak": {"existingSecret": "admin", "hashKey": "h"}},
    "postgresql": {"auth": {"existingSecret": "pg"}},
}
MINTED_PASSWORD = "rel-brokkr-broker-postgresql"
MINTED_ADMIN = "rel-brokkr-broker-admin"
EXTERNAL = {"mode": "external", "external": {"host": "db.example", "password": "one"}}
URL = {"mode": "url", "url": {"existingSecret": "db-url", "key": "url"}}
CA = "-----BEGIN CERTIFICATE-----\nMIIB{}\n-----END CERTIFICATE-----\n"
# The broker reloads its certificate files itself (tls.reloadInterval): a renewed
# certificate must not roll the pods, so the TLS Secret is hashed nowhere.
UNHASHED = {"broker-tls"}


def checksums(chart: Any, values: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The checksum annotations of each pod template, by workload kind and name."""
    found = {}
    for obj in install_dry_run(chart, values).objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            notes = obj["spec"]["template"]["metadata"].get("annotations") or {}
            found[f"{obj['kind']}/{obj['metadata']['name']}"] = {
                k: v for k, v in notes.items() if k.startswith("checksum/")
            }
    return found


def mounted(chart: Any, values: dict[str, Any]) -> set[str]:
    """Names of the ConfigMaps and Secrets that the chart's workloads read."""
    names = set()
    for obj in install_dry_run(chart, values).objects:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = obj["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            for source in ("secret", "configMap"):
                if source in volume:
                    names.add(volume[source].get("secretName") or volume[source].get("name"))
        for item in spec["containers"]:
            for source in item.get("envFrom", []):
                names.add(next(iter(source.values()))["name"])
    return names


def broker(values: dict[str, Any]) -> dict[str, Any]:
    return merge(BROKER_BASE, values)


def agent(values: dict[str, Any]) -> dict[str, Any]:
    return merge(AGENT_REQUIRED, values)


# (chart, values before, values after, the object whose change it is,
#  {workload: the one checksum annotation that must change})
CASES = [
    (
        BROKER,
        broker({}),
        broker({"broker": {"workers": 2}}),
        "rel-brokkr-broker",
        {"Deployment/rel-brokkr-broker": "checksum/config"},
    ),
    (
        BROKER,
        broker({"database": EXTERNAL}),
        broker({"database": merge(EXTERNAL, {"external": {"password": "two"}})}),
        "rel-brokkr-broker-database",
        {"Deployment/rel-brokkr-broker": "checksum/secret"},
    ),
    (
        BROKER,
        broker({}),
        broker({"admin": {"pak": {"hashKey": "other"}}}),
        "admin",
        {"Deployment/rel-brokkr-broker": "checksum/mounted-secrets"},
    ),
    (
        BROKER,
        broker({}),
        broker({"postgresql": {"auth": {"passwordKey": "pw"}}}),
        "pg",
        {
            "Deployment/rel-brokkr-broker": "checksum/mounted-secrets",
            "StatefulSet/rel-brokkr-broker-postgresql": "checksum/mounted-secrets",
        },
    ),
    (
        BROKER,
        broker({}),
        broker({"postgresql": {"auth": {"existingSecret": "pg2"}}}),
        "pg",
        {
            "Deployment/rel-brokkr-broker": "checksum/mounted-secrets",
            "StatefulSet/rel-brokkr-broker-postgresql": "checksum/mounted-secrets",
        },
    ),
    (
        BROKER,
        broker(
            {"database": {"mode": "external", "external": {"host": "h", "existingSecret": "db"}}}
        ),
        broker(
            {"database": {"mode": "external", "external": {"host": "h", "existingSecret": "db2"}}}
        ),
        "db",
        {"Deployment/rel-brokkr-broker": "checksum/mounted-secrets"},
    ),
    (
        BROKER,
        broker({"database": URL}),
        broker({"database": merge(URL, {"url": {"key": "dsn"}})}),
        "db-url",
        {"Deployment/rel-brokkr-broker": "checksum/mounted-secrets"},
    ),
    (
        AGENT,
        agent({}),
        agent({"agent": {"pollingInterval": 5}}),
        "rel-brokkr-agent",
        {"Deployment/rel-brokkr-agent": "checksum/config"},
    ),
    (
        AGENT,
        agent({"broker": {"caBundle": CA.format("one")}}),
        agent({"broker": {"caBundle": CA.format("two")}}),
        "rel-brokkr-agent-ca",
        {"Deployment/rel-brokkr-agent": "checksum/config"},
    ),
    (
        AGENT,
        agent({"pak": {"existingSecret": "", "value": "brokkr_aaaaaaaa_one"}}),
        agent({"pak": {"existingSecret": "", "value": "brokkr_aaaaaaaa_two"}}),
        "rel-brokkr-agent-pak",
        {"Deployment/rel-brokkr-agent": "checksum/secret"},
    ),
    (
        AGENT,
        agent({}),
        agent({"pak": {"key": "token"}}),
        "agent-pak",
        {"Deployment/rel-brokkr-agent": "checksum/mounted"},
    ),
    (
        AGENT,
        agent({"broker": {"caBundleConfigMap": "ca"}}),
        agent({"broker": {"caBundleConfigMap": "ca", "caBundleKey": "bundle.pem"}}),
        "ca",
        {"Deployment/rel-brokkr-agent": "checksum/mounted"},
    ),
]


@pytest.mark.parametrize(
    ("chart", "before", "after", "covers", "expected"), CASES, ids=[c[3] for c in CASES]
)
def test_changing_a_mounted_object_changes_exactly_its_checksum(
    chart, before, after, covers, expected
):
    old, new = checksums(chart, before), checksums(chart, after)
    for workload, sums in old.items():
        changed = {k for k in sums if new[workload][k] != sums[k]}
        assert changed == ({expected[workload]} if workload in expected else set()), workload


@pytest.mark.parametrize(("chart", "values"), [(BROKER, broker({})), (AGENT, agent({}))])
def test_a_pod_only_change_rolls_nothing_through_the_checksums(chart, values):
    old = checksums(chart, values)
    new = checksums(
        chart,
        merge(
            values,
            {"podLabels": {"team": "x"}, "replicaCount": 3}
            if chart is BROKER
            else {"podLabels": {"team": "x"}},
        ),
    )
    assert old == new
    assert all(old.values()), "every workload carries checksums"


@pytest.mark.parametrize(
    ("chart", "values"),
    [
        (BROKER, broker({})),
        (BROKER, broker({"database": EXTERNAL})),
        (
            BROKER,
            broker({"database": URL, "tls": {"enabled": True, "existingSecret": "broker-tls"}}),
        ),
        (BROKER, {}),
        (
            AGENT,
            agent(
                {
                    "broker": {"caBundle": CA.format("x")},
                    "pak": {"existingSecret": "", "value": "v"},
                }
            ),
        ),
        (AGENT, agent({"broker": {"caBundleConfigMap": "ca"}})),
    ],
)
def test_every_mounted_object_is_covered_by_a_case(chart, values):
    """A new mount without a checksum (and a case above proving it) fails here."""
    covered = {case[3] for case in CASES} | UNHASHED | {MINTED_PASSWORD, MINTED_ADMIN}
    assert mounted(chart, values) <= covered, mounted(chart, values) - covered


def test_the_minted_password_is_hashed_as_the_secret_stores_it():
    """One rendering mints the bundled PostgreSQL password once: the Secret and both
    workloads' checksum see the same value, so the first `helm upgrade` (which reads
    the stored password back) computes the same checksum and rolls nothing."""
    release = install_dry_run(BROKER, {})
    secret = next(
        o
        for o in release.objects
        if o["metadata"]["name"] == MINTED_PASSWORD and o["kind"] == "Secret"
    )
    password = base64.b64decode(secret["data"]["password"]).decode()
    hashed = [[f"{MINTED_PASSWORD} password", {"password": password}]]
    expected = hashlib.sha256(json.dumps(hashed, separators=(",", ":")).encode()).hexdigest()
    for workload in ("Deployment", "StatefulSet"):
        obj = next(o for o in release.objects if o["kind"] == workload)
        assert (
            obj["spec"]["template"]["metadata"]["annotations"]["checksum/mounted-secrets"]
            == expected
        )


def test_the_minted_admin_pak_is_hashed_as_the_secret_stores_it():
    """Likewise the admin PAK: checksum/secret hashes secret.yaml as this same rendering
    stores it (helm prints the file stripped; the hash covers it between newlines)."""
    done = charts.run(
        ["helm", "template", "rel", BROKER.path, "--show-only", "templates/secret.yaml",
         "--show-only", "templates/deployment.yaml"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    parts = re.split(r"^---\n# Source: (\S+)\n", done.stdout, flags=re.M)
    files = dict(zip(parts[1::2], parts[2::2], strict=True))
    secret = files["brokkr-broker/templates/secret.yaml"]
    assert "rel-brokkr-broker-admin" in secret
    deployment = yaml.safe_load(files["brokkr-broker/templates/deployment.yaml"])
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
    assert checksum == hashlib.sha256(f"\n{secret.strip()}\n".encode()).hexdigest()
