"""Every value of both charts changes the rendering, where its `# @changes` promise says.

For each leaf of values.yaml (the schema is generated from the same file, so these are
also the schema's properties with a default) the chart is rendered as `helm install`
would, once as is and once with that value changed to another valid value. The test
fails, naming the value, when the rendering does not change, changes where the
promise does not say, or leaves a promised place unchanged.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import yaml

from brokkr_dev.charts import lint as charts
from tests.charts import mutation
from tests.charts.render import AGENT, AGENT_REQUIRED, BROKER, merge

pytestmark = pytest.mark.charts

DIGEST = "sha256:" + "ab" * 32
CA = "-----BEGIN CERTIFICATE-----\nMIIBmutant\n-----END CERTIFICATE-----\n"
PEER = [{"podSelector": {"matchLabels": {"app": "mutant"}}}]
TOLERATION = [{"key": "mutant", "operator": "Exists", "effect": "NoSchedule"}]
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "mutant", "operator": "Exists"}]}]
        }
    }
}
RESOURCES = {"requests": {"cpu": "77m", "memory": "77Mi"}, "limits": {"memory": "777Mi"}}
SPREAD = [
    {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}
]
ENV = [{"name": "MUTANT", "value": "1"}]
VOLUMES = [{"name": "mutant", "emptyDir": {}}]
MOUNTS = [{"name": "mutant", "mountPath": "/mutant"}]

# Values whose new value cannot be derived from the type alone (formats the schema
# does not spell out, lists of objects). Everything else: booleans flip, numbers
# move by one, enums take another member, strings get a suffix, string lists and
# string maps get one more entry.
COMMON: dict[str, Any] = {
    "image.registry": "registry.example.com",
    "image.repository": "mirror/brokkr",
    "image.tag": "9.9.9",
    "image.digest": DIGEST,
    "global.imageRegistry": "mirror.example.com",
    "resources": RESOURCES,
    "tests.resources": RESOURCES,
    "tolerations": TOLERATION,
    "affinity": AFFINITY,
    "topologySpreadConstraints": SPREAD,
    "extraEnv": ENV,
    "extraVolumes": VOLUMES,
    "extraVolumeMounts": MOUNTS,
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 20002},
    "securityContext": {"runAsUser": 20002},
    "appArmorProfile": {"type": "RuntimeDefault"},
    "probes.liveness": {"periodSeconds": 17},
    "probes.readiness": {"periodSeconds": 17},
    "probes.startup": {"periodSeconds": 17},
    "telemetry.endpoint": "https://collector.example.com",
    "telemetry.cidr": "10.40.0.0/16",
    "metrics.serviceMonitor.interval": "45s",
    "metrics.serviceMonitor.scrapeTimeout": "7s",
    "metrics.podMonitor.interval": "45s",
    "metrics.podMonitor.scrapeTimeout": "7s",
}
EXPLICIT: dict[str, dict[str, Any]] = {
    "brokkr-broker": {
        **COMMON,
        "postgresql.image.registry": "registry.example.com",
        "postgresql.image.repository": "mirror/postgres",
        "postgresql.image.tag": "17.7",
        "postgresql.image.digest": DIGEST,
        "postgresql.persistence.size": "20Gi",
        "postgresql.persistence.accessModes": ["ReadWriteOncePod"],
        "postgresql.resources": RESOURCES,
        "postgresql.tolerations": TOLERATION,
        "postgresql.affinity": AFFINITY,
        "database.external.host": "db2.example.com",
        "tls.certManager.duration": "720h",
        "tls.certManager.renewBefore": "24h",
        "tls.certManager.issuerRef.group": "issuers.example.com",
        "tls.certManager.dnsNames": ["brokkr.example.com"],
        "ingress.hosts": [
            {"host": "other.example.com", "paths": [{"path": "/api", "pathType": "Prefix"}]}
        ],
        "ingress.tls": [{"secretName": "ingress-tls", "hosts": ["brokkr.example.com"]}],
        "networkPolicy.ingressFrom": PEER,
        "networkPolicy.externalDatabaseCIDR": "10.20.0.0/16",
        "networkPolicy.egressExtra": [{"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}]}],
        "podDisruptionBudget.minAvailable": "50%",
        # Not 1: an empty maxUnavailable already renders as 1.
        "podDisruptionBudget.maxUnavailable": "25%",
    },
    "brokkr-agent": {
        **COMMON,
        "broker.url": "https://other.example.com:8443",
        "broker.caBundle": CA,
        "broker.cidr": "10.30.0.0/16",
        "pak.value": "brokkr_mutant00_abcdefghijklmnopqrstuvwx",
        "rbac.managedResources": [{"apiGroups": ["apps"], "resources": ["deployments"]}],
        "rbac.managedVerbs": ["create", "patch", "list", "delete", "get"],
        "rbac.extraRules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        "networkPolicy.apiServerCIDRs": ["10.96.0.1/32"],
        "networkPolicy.apiServerPorts": [443],
        "networkPolicy.metricsFrom": PEER,
    },
}

# Values that only act together with another: (the values that make them matter,
# why). Tested as pairs: the companion values are in both renderings, only the value
# under test differs.
BROKER_PAIRS: dict[str, tuple[dict[str, Any], str]] = {
    "ingress.": ({"ingress": {"enabled": True}}, "the Ingress exists only when enabled"),
    "autoscaling.": ({"autoscaling": {"enabled": True}}, "the HPA exists only when enabled"),
    "podDisruptionBudget.maxUnavailable": (
        {"podDisruptionBudget": {"enabled": True, "minAvailable": ""}},
        "used only when the PDB exists and minAvailable is empty",
    ),
    "podDisruptionBudget.": (
        {"podDisruptionBudget": {"enabled": True}},
        "the PDB exists only when enabled",
    ),
    "tls.enabled": ({"tls": {"existingSecret": "broker-tls"}}, "TLS needs a certificate Secret"),
    "tls.existingSecret": (
        {"tls": {"enabled": True, "existingSecret": "broker-tls"}},
        "read only when TLS is on (which needs a Secret)",
    ),
    "tls.certManager.enabled": (
        {
            "tls": {
                "enabled": True,
                "existingSecret": "t",
                "certManager": {"issuerRef": {"name": "ca"}},
            }
        },
        "cert-manager issues the TLS Secret only with TLS on and an issuer named",
    ),
    "tls.certManager.": (
        {"tls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}},
        "the Certificate exists only with TLS from cert-manager",
    ),
    "database.mode": (
        {"database": {"external": {"host": "db.example.com", "existingSecret": "db"}}},
        "mode external needs a host and a password Secret",
    ),
    "database.external.passwordKey": (
        {
            "database": {
                "mode": "external",
                "external": {"host": "db.example.com", "existingSecret": "db"},
            }
        },
        "the key in a Secret you bring (mode external with existingSecret)",
    ),
    "database.external.": (
        {
            "database": {
                "mode": "external",
                "external": {"host": "db.example.com", "password": "pw"},
            }
        },
        "read only in mode external",
    ),
    "database.url.": (
        {"database": {"mode": "url", "url": {"existingSecret": "db-url"}}},
        "read only in mode url",
    ),
    "networkPolicy.externalDatabaseCIDR": (
        {"database": {"mode": "url", "url": {"existingSecret": "db-url"}}},
        "the egress rule to an external database exists only without the bundled one",
    ),
    "telemetry.": (
        {"telemetry": {"endpoint": "http://otel-collector.observability:4318"}},
        "tracing settings are rendered only with an endpoint",
    ),
    "admin.pak.hashKey": (
        {"admin": {"pak": {"existingSecret": "admin"}}},
        "key in a Secret you bring",
    ),
    "metrics.serviceMonitor.": (
        {"metrics": {"serviceMonitor": {"enabled": True}}},
        "exists only when enabled",
    ),
    "metrics.prometheusRule.": (
        {"metrics": {"prometheusRule": {"enabled": True}}},
        "exists only when enabled",
    ),
    "metrics.grafanaDashboard.": (
        {"metrics": {"grafanaDashboard": {"enabled": True}}},
        "exists only when enabled",
    ),
}
AGENT_PAIRS: dict[str, tuple[dict[str, Any], str]] = {
    "pak.value": (
        {"pak": {"existingSecret": "", "value": "brokkr_original_abcdefghijklmnopqrstuvwx"}},
        "existingSecret wins over an inline PAK",
    ),
    "broker.caBundleKey": (
        {"broker": {"caBundleConfigMap": "broker-ca"}},
        "key in a ConfigMap you bring",
    ),
    "telemetry.": (
        {"telemetry": {"endpoint": "http://otel-collector.observability:4318"}},
        "tracing settings are rendered only with an endpoint",
    ),
    "rbac.watchNamespace": ({"rbac": {"scope": "namespace"}}, "read only in namespace scope"),
    "metrics.podMonitor.": (
        {"metrics": {"podMonitor": {"enabled": True}}},
        "exists only when enabled",
    ),
    "metrics.prometheusRule.": (
        {"metrics": {"prometheusRule": {"enabled": True}}},
        "exists only when enabled",
    ),
    "metrics.grafanaDashboard.": (
        {"metrics": {"grafanaDashboard": {"enabled": True}}},
        "exists only when enabled",
    ),
}
CHARTS = {
    BROKER.name: (BROKER, {}, BROKER_PAIRS),
    AGENT.name: (AGENT, AGENT_REQUIRED, AGENT_PAIRS),
}


def companions(pairs: dict[str, tuple[dict[str, Any], str]], key: str) -> dict[str, Any]:
    """The values that make `key` matter: the longest matching pairs entry, if any."""
    found = [p for p in pairs if key == p or (p.endswith(".") and key.startswith(p))]
    if not found:
        return {}
    best = max(found, key=len)
    enabled = best + "enabled"
    return {} if key == enabled else pairs[best][0]


def schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        schema = schema["properties"][key]
    return schema


def mutant(chart: str, path: tuple[str, ...], default: Any, schema: dict[str, Any]) -> Any:
    """Another valid value for the key; pytest.fail names keys that need an explicit one."""
    key = ".".join(path)
    items = schema.get("items", {}).get("type")
    if key in EXPLICIT[chart]:
        value = EXPLICIT[chart][key]
    elif isinstance(default, bool):
        value = not default
    elif "enum" in schema:
        value = next(v for v in schema["enum"] if v != default)
    elif isinstance(default, int | float):
        value = default - 1 if default + 1 > schema.get("maximum", default + 1) else default + 1
    elif isinstance(default, str) and "pattern" not in schema:
        value = f"{default}-mutant" if default else "mutant"
    elif isinstance(default, list) and items == "string":
        value = [*default, "mutant"]
    elif isinstance(default, dict) and schema.get("additionalProperties") == {"type": "string"}:
        value = {**default, "example.com/mutant": "yes"}
    else:
        pytest.fail(f"{chart}: no mutation for {key}; add one to EXPLICIT in {__file__}")
    return value


def all_leaves() -> list[tuple[str, tuple[str, ...]]]:
    found = []
    for name, (chart, _, _) in CHARTS.items():
        text = chart.values_text
        notes = charts.parse_annotations(text)
        found += [(name, p) for p in charts.leaves(yaml.safe_load(text), notes)]
    return found


@functools.cache
def baseline(chart_name: str, context_json: str) -> tuple[dict[str, Any], frozenset[str]]:
    """The flattened base rendering and its noisy keys (random PAKs and passwords)."""
    chart = CHARTS[chart_name][0]
    values = json.loads(context_json)
    prefix = mutation.fullname(chart)
    first = mutation.flatten(mutation.install_dry_run(chart, values), prefix)
    second = mutation.flatten(mutation.install_dry_run(chart, values), prefix)
    noisy = frozenset(k for k in first if second.get(k) != first[k])
    return first, noisy


def mutate(chart_name: str, path: tuple[str, ...]) -> tuple[set[str], list[str]]:
    """The keys that change when the value does, and the value's promise."""
    chart, required, pairs = CHARTS[chart_name]
    text = chart.values_text
    key = ".".join(path)
    context = merge(required, companions(pairs, key))
    base, noisy = baseline(chart_name, json.dumps(context, sort_keys=True))
    defaults = merge(yaml.safe_load(text), context)
    current: Any = defaults
    for part in path:
        current = current[part]
    schema = schema_at(charts.generate_schema(text), path)
    changed = mutation.set_path(context, path, mutant(chart_name, path, current, schema))
    other = mutation.flatten(mutation.install_dry_run(chart, changed), mutation.fullname(chart))
    promise = charts.parse_annotations(text)[path].changes
    return mutation.changed_keys(base, other, set(noisy)), promise


@pytest.mark.parametrize(
    ("chart", "path"), all_leaves(), ids=lambda v: ".".join(v) if isinstance(v, tuple) else v
)
def test_value_changes_the_rendering_where_it_promises(chart, path):
    keys, promise = mutate(chart, path)
    key = ".".join(path)
    assert keys, f"{chart}: value {key} changes nothing in the rendering (a dead value)"
    assert promise, f"{chart}: value {key} has no `# @changes` promise in values.yaml"
    verdict = mutation.judge(keys, promise)
    assert not verdict.unpromised, (
        f"{chart}: value {key} changes places its `# @changes` does not promise: "
        f"{verdict.unpromised}"
    )
    assert not verdict.unmet, (
        f"{chart}: value {key} promises changes that do not happen: {verdict.unmet} "
        f"(it changed {sorted(keys)})"
    )


def test_pairs_name_real_values():
    """The allow-list cannot go stale: every entry names a value (or a group) that exists."""
    for name, (_, _, pairs) in CHARTS.items():
        keys = {".".join(p) for c, p in all_leaves() if c == name}
        for entry in pairs:
            assert any(k == entry or k.startswith(entry) for k in keys), (name, entry)
