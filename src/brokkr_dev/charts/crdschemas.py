"""JSON schemas for kubeconform from CustomResourceDefinitions (offline).

The charts' ServiceMonitor, PodMonitor and PrometheusRule are validated against the
CRDs that prometheus-operator publishes in its Go module, fetched through the Go
module proxy into the module cache (`go mod download`). Each CRD version's
`openAPIV3Schema` becomes one JSON schema file at
`<dir>/<group>/<kind>_<version>.json`, the layout kubeconform's
`{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json` template reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from brokkr_dev.base import paths
from brokkr_dev.base.errors import AutomationError

OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
# The prometheus-operator release whose CRDs the monitoring templates target.
OPERATOR_VERSION = "v0.85.0"
CRD_DIR = "example/prometheus-operator-crd"
# The kinds the charts render (the others are large and unused).
CRD_FILES = ("servicemonitors", "podmonitors", "prometheusrules")
LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


class CrdSchemaError(AutomationError):
    """The CRDs could not be fetched or converted; the message says what to do."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1 reads a bare `=` (a relabeling action in an enum) as the obscure
    `value` tag, which the safe loader refuses; here it is the string it looks like."""


_Loader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def convert(node: Any) -> Any:
    """An OpenAPI v3 (structural CRD) schema node as a JSON schema node.

    Kubernetes extensions are dropped; `nullable` becomes a "null" type; an object
    with declared properties and no `additionalProperties` gets `false` (unless it
    preserves unknown fields), so a misspelt key fails validation as the API server's
    pruning would silently drop it.
    """
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: convert(child) for name, child in value.items()}
        elif key in ("items", "not", "additionalProperties"):
            out[key] = [convert(v) for v in value] if isinstance(value, list) else convert(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [convert(v) for v in value]
        else:
            out[key] = value
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    closed = "properties" in node and "additionalProperties" not in node
    if closed and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def schemas_from_crd(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{relative file path: JSON schema} for every version a CRD serves."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"].lower()
    found = {}
    for version in spec["versions"]:
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            continue
        document = {"$schema": "http://json-schema.org/draft-07/schema#", **convert(schema)}
        found[f"{group}/{kind}_{version['name']}.json"] = document
    return found


def module_dir(go: str = "go") -> Path:
    """The prometheus-operator module in the Go module cache (downloaded on first use)."""
    try:
        done = subprocess.run(
            [go, "mod", "download", "-json", f"{OPERATOR_MODULE}@{OPERATOR_VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tempfile.gettempdir(),
        )
    except OSError as exc:
        raise CrdSchemaError(
            f"cannot run Go to fetch the prometheus-operator CRDs ({exc}); install Go 1.22+"
        ) from exc
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        info = {}
    if done.returncode != 0 or "Dir" not in info:
        reason = info.get("Error") or done.stderr.strip()
        raise CrdSchemaError(
            f"go mod download {OPERATOR_MODULE}@{OPERATOR_VERSION} failed: {reason}; "
            "the Go module proxy must be reachable (GOPROXY)"
        )
    return Path(info["Dir"])


def schema_dir(go: str = "go") -> Path:
    """The converted schemas of every prometheus-operator CRD, cached per version."""
    target = (
        paths.cache_dir() / "kubeconform-crd-schemas" / f"prometheus-operator-{OPERATOR_VERSION}"
    )
    if (target / ".complete").exists():
        return target
    source = module_dir(go) / CRD_DIR
    crds = [source / f"monitoring.coreos.com_{name}.yaml" for name in CRD_FILES]
    absent = [crd.name for crd in crds if not crd.exists()]
    if absent:
        raise CrdSchemaError(f"{source} lacks {', '.join(absent)}; is {OPERATOR_VERSION} right?")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".crd-schemas.", dir=target.parent))
    try:
        for crd_file in crds:
            for document in yaml.load_all(crd_file.read_text(), Loader=_Loader):
                if not document or document.get("kind") != "CustomResourceDefinition":
                    continue
                for relative, schema in schemas_from_crd(document).items():
                    out = staging / relative
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(schema))
        (staging / ".complete").write_text("")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
