"""Parse a deployment object's YAML into Kubernetes objects, order them and stamp ownership.

Pure functions only: no network. The reconciler combines them with the cluster client.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from brokkr.common import yamlbounds

# Annotations the broker's ecosystem reads (the reference contract).
STACK_ANNOTATION = "k8s.brokkr.io/stack"
CHECKSUM_ANNOTATION = "k8s.brokkr.io/deployment-checksum"
OBJECT_ANNOTATION = "brokkr.io/deployment-object-id"
OWNER_ANNOTATION = "brokkr.io/owner-id"
# Labels carry the same owner and stack ids so pruning can find objects with a
# label selector; annotations cannot be selected on.
OWNER_LABEL = "brokkr.io/owner-id"
STACK_LABEL = "k8s.brokkr.io/stack"
FIELD_MANAGER = "brokkr-controller"

# Applied first (and deleted last): everything else may live in or depend on them.
_FIRST_KINDS = {("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")}


class ManifestError(ValueError):
    """The YAML of a deployment object cannot be turned into Kubernetes objects."""


@dataclass(frozen=True)
class ObjectKey:
    """Identity of an object in a cluster: group, kind, namespace ('' if none) and name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


def split_api_version(api_version: str) -> tuple[str, str]:
    """'apps/v1' -> ('apps', 'v1'); 'v1' -> ('', 'v1')."""
    group, _, version = api_version.rpartition("/")
    return group, version


def parse(yaml_text: str) -> list[dict[str, Any]]:
    """All objects of a multi-document YAML stream; `kind: List` is flattened.

    Raises ManifestError naming the document and the problem. The YAML's bounds
    (nesting depth, alias expansion) are checked before it is loaded, so an object
    the broker should have refused (stored by an older broker, or written to the
    database directly) fails alone instead of taking the agent's memory.
    """
    try:
        yamlbounds.check(yaml_text)
        documents = list(yaml.load_all(yaml_text, Loader=yamlbounds.LOADER))
    except yamlbounds.YamlBoundError as exc:
        raise ManifestError(f"refused before parsing: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ManifestError(f"a value cannot be read: {exc}") from None
    objects: list[dict[str, Any]] = []
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        items = _flatten(document, index)
        for item in items:
            _check_object(item, index)
            objects.append(item)
    return objects


def _flatten(document: Any, index: int) -> list[Any]:
    if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
        items = document.get("items")
        if isinstance(items, list):
            return items
    return [document]


def _check_object(item: Any, index: int) -> None:
    where = f"document {index}"
    if not isinstance(item, dict):
        raise ManifestError(
            f"{where}: expected a Kubernetes object (a mapping), got {type(item).__name__}"
        )
    for field in ("apiVersion", "kind"):
        if not isinstance(item.get(field), str) or not item[field]:
            raise ManifestError(f"{where}: missing or empty `{field}`")
    metadata = item.get("metadata")
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("name"), str)
        or not metadata["name"]
    ):
        raise ManifestError(
            f"{where} ({item['kind']}): missing `metadata.name` (generateName is not supported)"
        )
    for field in ("annotations", "labels"):
        if field in metadata and not isinstance(metadata[field], dict):
            raise ManifestError(
                f"{where} ({item['kind']} {metadata['name']}): `metadata.{field}` must be a mapping"
            )


def is_first(obj: dict[str, Any]) -> bool:
    """Namespaces and CRDs: applied before, deleted after, everything else."""
    group, _ = split_api_version(obj["apiVersion"])
    return (group, obj["kind"]) in _FIRST_KINDS


def order_for_apply(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespaces first, then CRDs, then the rest in document order (stable)."""

    def rank(obj: dict[str, Any]) -> int:
        if obj["kind"] == "Namespace" and split_api_version(obj["apiVersion"])[0] == "":
            return 0
        return 1 if is_first(obj) else 2

    return sorted(objects, key=rank)


def key_of(obj: dict[str, Any], namespace: str) -> ObjectKey:
    """The object's key; `namespace` is the effective one ('' for cluster-scoped)."""
    group, _ = split_api_version(obj["apiVersion"])
    return ObjectKey(group, obj["kind"], namespace, obj["metadata"]["name"])


def stamp(
    obj: dict[str, Any],
    *,
    stack_id: str,
    checksum: str,
    deployment_object_id: str,
    owner_id: str,
    namespace: str,
) -> dict[str, Any]:
    """A copy of `obj` with the ownership annotations and labels and its effective namespace."""
    stamped = copy.deepcopy(obj)
    metadata = stamped["metadata"]
    if namespace:
        metadata["namespace"] = namespace
    annotations = dict(metadata.get("annotations") or {})
    annotations.update(
        {
            STACK_ANNOTATION: stack_id,
            CHECKSUM_ANNOTATION: checksum,
            OBJECT_ANNOTATION: deployment_object_id,
            OWNER_ANNOTATION: owner_id,
        }
    )
    labels = dict(metadata.get("labels") or {})
    labels.update({OWNER_LABEL: owner_id, STACK_LABEL: stack_id})
    metadata["annotations"] = annotations
    metadata["labels"] = labels
    return stamped


def scope_problem(key: ObjectKey, namespaced: bool, watch_namespace: str) -> str | None:
    """Why `key` is outside a namespace-scoped agent's reach, or None when it is allowed."""
    if not watch_namespace:
        return None
    if not namespaced:
        return (
            f"{key}: cluster-scoped objects are outside this agent's scope "
            f"(it is limited to namespace {watch_namespace!r}); deploy it with a cluster-scoped agent"
        )
    if key.namespace != watch_namespace:
        return (
            f"{key}: namespace {key.namespace!r} is outside this agent's scope "
            f"(it is limited to namespace {watch_namespace!r})"
        )
    return None


def newest_per_stack(deployment_objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The desired state: for each stack, its deployment object with the highest sequence_id."""
    newest: dict[str, dict[str, Any]] = {}
    for item in deployment_objects:
        current = newest.get(item["stack_id"])
        if current is None or item["sequence_id"] > current["sequence_id"]:
            newest[item["stack_id"]] = item
    return newest
