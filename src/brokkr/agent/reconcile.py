"""Apply a deployment object to the cluster and prune what left the desired state.

Ownership lives in the cluster: every applied object carries the owner/stack labels
and the reference annotations, so the agent can rebuild what it owns after a restart
by listing objects with its owner label.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from brokkr.agent import manifests as m
from brokkr.agent.kube import KubeClient, KubeError, Resource

log = logging.getLogger(__name__)

SUCCESS, FAILURE = "SUCCESS", "FAILURE"
CRD_ESTABLISH_TIMEOUT = 30.0
CRD_RESOURCE = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)


class Abandoned(RuntimeError):
    """Shutdown was requested between two objects; nothing is reported for this object."""


@dataclass
class Outcome:
    status: str
    message: str
    applied: int = 0
    deleted: int = 0


@dataclass
class Owned:
    resource: Resource
    key: m.ObjectKey
    stack_id: str
    deployment_object_id: str


@dataclass
class _Planned:
    obj: dict[str, Any]
    resource: Resource | None
    key: m.ObjectKey | None


class _Rejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        owner_id: str,
        watch_namespace: str,
        stop: threading.Event,
        resource_cache_seconds: float = 300.0,
    ) -> None:
        self.kube = kube
        self.owner_id = owner_id
        self.watch_namespace = watch_namespace
        self.stop = stop
        self.resource_cache_seconds = resource_cache_seconds
        self._listable: list[Resource] | None = None
        self._listable_at = 0.0

    # --- apply -----------------------------------------------------------------

    def apply(self, deployment_object: dict[str, Any]) -> Outcome:
        """Make the cluster match one deployment object; transient KubeErrors propagate."""
        stack_id = deployment_object["stack_id"]
        if deployment_object.get("is_deletion_marker"):
            deleted = self.prune({stack_id: deployment_object}, only_stack=stack_id)
            return Outcome(
                SUCCESS,
                f"deletion marker: removed {deleted} object(s) of the stack",
                deleted=deleted,
            )
        try:
            objects = m.order_for_apply(m.parse(deployment_object["yaml_content"]))
        except m.ManifestError as exc:
            return Outcome(FAILURE, f"nothing applied: {exc}")
        try:
            applied = self._apply_objects(objects, deployment_object)
        except _Rejected as exc:
            return Outcome(FAILURE, exc.message)
        deleted = self.prune({stack_id: deployment_object}, only_stack=stack_id)
        message = f"applied {applied} object(s)"
        if deleted:
            message += f", removed {deleted} object(s) no longer in the stack"
        return Outcome(SUCCESS, message, applied=applied, deleted=deleted)

    def _apply_objects(self, objects: list[dict[str, Any]], do: dict[str, Any]) -> int:
        try:
            plan = [self._plan(obj, objects) for obj in objects]
        except _Rejected as exc:
            raise _Rejected(f"nothing applied: {exc.message}") from None
        problems = [p for p in (self._problem(item) for item in plan if item.resource) if p]
        if problems:
            raise _Rejected("nothing applied: " + "; ".join(problems))
        first = [item for item in plan if m.is_first(item.obj)]
        rest = [item for item in plan if not m.is_first(item.obj)]
        applied = 0
        # Namespaces and CRDs must exist before the rest can be validated against them.
        self._validate(first, do, applied_before=0)
        applied += self._apply_all(first, do, applied, len(plan))
        if any(item.obj["kind"] == "CustomResourceDefinition" for item in first):
            self._wait_established(
                [
                    item.obj["metadata"]["name"]
                    for item in first
                    if item.obj["kind"] == "CustomResourceDefinition"
                ]
            )
            self.kube.forget_discovery()
            self._listable = None
        try:
            rest = [item if item.resource else self._plan(item.obj, []) for item in rest]
        except _Rejected as exc:
            raise _Rejected(f"{_partial(applied)}{exc.message}") from None
        problems = [p for p in (self._problem(item) for item in rest) if p]
        if problems:
            raise _Rejected(f"{_partial(applied)}" + "; ".join(problems))
        self._validate(rest, do, applied_before=applied)
        applied += self._apply_all(rest, do, applied, len(plan))
        return applied

    def _plan(self, obj: dict[str, Any], stack: list[dict[str, Any]]) -> _Planned:
        api_version, kind = obj["apiVersion"], obj["kind"]
        resource = self.kube.resource_for(api_version, kind)
        name = obj["metadata"]["name"]
        if resource is None:
            group, _ = m.split_api_version(api_version)
            if _crd_in(stack, group, kind):
                return _Planned(obj, None, None)  # its CRD is applied first
            raise _Rejected(
                f"{kind} {name}: the cluster serves no kind "
                f"{kind!r} in apiVersion {api_version!r} (typo, or its CRD is not installed)"
            )
        namespace = ""
        if resource.namespaced:
            namespace = obj["metadata"].get("namespace") or self.watch_namespace or "default"
        return _Planned(obj, resource, m.key_of(obj, namespace))

    def _problem(self, item: _Planned) -> str | None:
        resource, key = _resolved(item)
        return m.scope_problem(key, resource.namespaced, self.watch_namespace)

    def _stamped(self, item: _Planned, do: dict[str, Any]) -> dict[str, Any]:
        _, key = _resolved(item)
        obj = m.stamp(
            item.obj,
            stack_id=do["stack_id"],
            checksum=do["yaml_checksum"],
            deployment_object_id=do["id"],
            owner_id=self.owner_id,
            namespace=key.namespace,
        )
        if not key.namespace:
            obj["metadata"].pop("namespace", None)
        return obj

    def _validate(self, items: list[_Planned], do: dict[str, Any], applied_before: int) -> None:
        """Server-side dry-run of every object; the first rejection stops the stack."""
        for item in items:
            self._check_stop()
            resource, key = _resolved(item)
            try:
                self.kube.apply(resource, self._stamped(item, do), dry_run=True)
            except KubeError as exc:
                if exc.transient:
                    raise
                raise _Rejected(
                    f"{_partial(applied_before)}{key}: rejected by the Kubernetes API: {exc}"
                ) from None

    def _apply_all(
        self, items: list[_Planned], do: dict[str, Any], applied: int, total: int
    ) -> int:
        count = 0
        for item in items:
            self._check_stop()
            resource, key = _resolved(item)
            try:
                self.kube.apply(resource, self._stamped(item, do))
            except KubeError as exc:
                if exc.transient:
                    raise
                raise _Rejected(
                    f"{key}: rejected by the Kubernetes API: {exc} "
                    f"({applied + count} of {total} objects were applied)"
                ) from None
            count += 1
        return count

    def _wait_established(self, names: list[str]) -> None:
        deadline = time.monotonic() + CRD_ESTABLISH_TIMEOUT
        pending = set(names)
        while pending:
            for name in sorted(pending):
                crd = self.kube.get(CRD_RESOURCE, "", name) or {}
                conditions = (crd.get("status") or {}).get("conditions") or []
                if any(
                    c.get("type") == "Established" and c.get("status") == "True" for c in conditions
                ):
                    pending.discard(name)
            if pending and (time.monotonic() > deadline or self.stop.wait(0.2)):
                self._check_stop()
                raise _Rejected(
                    f"CustomResourceDefinition(s) {sorted(pending)} not established within {CRD_ESTABLISH_TIMEOUT:.0f} s"
                )

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Abandoned("shutdown requested")

    # --- prune -----------------------------------------------------------------

    def owned(self, stack_id: str | None = None) -> list[Owned]:
        """Objects in the cluster that carry this agent's owner label (optionally one stack's)."""
        selector = f"{m.OWNER_LABEL}={self.owner_id}"
        if stack_id:
            selector += f",{m.STACK_LABEL}={stack_id}"
        found: list[Owned] = []
        for resource in self._listable_resources():
            if self.watch_namespace and not resource.namespaced:
                continue
            try:
                items = list(self.kube.list_metadata(resource, selector, self.watch_namespace))
            except KubeError as exc:
                if exc.transient:
                    raise
                continue  # not allowed to list this kind: we cannot have applied it either
            for meta in items:
                labels = meta.get("labels") or {}
                annotations = meta.get("annotations") or {}
                if not _applied_by(self.owner_id, labels, annotations, meta):
                    continue
                key = m.ObjectKey(
                    resource.group, resource.kind, meta.get("namespace", ""), meta["name"]
                )
                found.append(
                    Owned(
                        resource,
                        key,
                        labels.get(m.STACK_LABEL, ""),
                        annotations.get(m.OBJECT_ANNOTATION, ""),
                    )
                )
        return found

    def _listable_resources(self) -> list[Resource]:
        if (
            self._listable is None
            or time.monotonic() - self._listable_at > self.resource_cache_seconds
        ):
            self._listable = self.kube.listable_resources()
            self._listable_at = time.monotonic()
        return self._listable

    def prune(self, desired: dict[str, dict[str, Any]], only_stack: str | None = None) -> int:
        """Delete owned objects whose stack is gone, marked deleted, or no longer lists them.

        `desired` maps stack id to its newest deployment object (from mode=full). A stack
        whose newest YAML does not parse, or that this agent has not applied yet, is left alone.
        """
        owned = self.owned(only_stack)
        by_stack: dict[str, list[Owned]] = {}
        for item in owned:
            if item.stack_id:
                by_stack.setdefault(item.stack_id, []).append(item)
        doomed: list[Owned] = []
        for stack_id, items in by_stack.items():
            do = desired.get(stack_id)
            if do is None or do.get("is_deletion_marker"):
                doomed += items
                continue
            keep = self._desired_keys(do)
            if keep is None:
                continue
            if keep and not any(i.deployment_object_id == do["id"] for i in items):
                continue  # newest version not applied yet: do not prune ahead of it
            doomed += [i for i in items if i.key not in keep]
        return self._delete(doomed)

    def _desired_keys(self, do: dict[str, Any]) -> set[m.ObjectKey] | None:
        try:
            objects = m.parse(do["yaml_content"])
        except m.ManifestError:
            return None
        keys = set()
        for obj in objects:
            group, _ = m.split_api_version(obj["apiVersion"])
            namespace = obj["metadata"].get("namespace") or self.watch_namespace or "default"
            # Scope is unknown without discovery; keep both forms so a cluster-scoped
            # object is never mistaken for a removed one.
            keys.add(m.ObjectKey(group, obj["kind"], namespace, obj["metadata"]["name"]))
            keys.add(m.ObjectKey(group, obj["kind"], "", obj["metadata"]["name"]))
        return keys

    def _delete(self, doomed: list[Owned]) -> int:
        def rank(item: Owned) -> int:
            return {"Namespace": 2, "CustomResourceDefinition": 1}.get(item.key.kind, 0)

        deleted = 0
        for item in sorted(doomed, key=rank):
            self._check_stop()
            if self.kube.delete(item.resource, item.key.namespace, item.key.name):
                log.info("pruned %s (stack %s)", item.key, item.stack_id)
                deleted += 1
        return deleted


def _applied_by(
    owner_id: str, labels: dict[str, str], annotations: dict[str, str], meta: dict[str, Any]
) -> bool:
    """Whether this agent applied the object itself.

    Controllers copy labels onto objects they generate (the EndpointSlices of a
    Service carry the Service's labels), so the owner label alone is not proof:
    the owner annotation must match too, and an object managed by a controller
    (a controller ownerReference) belongs to that controller, not to us.
    """
    if labels.get(m.OWNER_LABEL) != owner_id or annotations.get(m.OWNER_ANNOTATION) != owner_id:
        return False
    return not any(ref.get("controller") for ref in meta.get("ownerReferences") or [])


def _resolved(item: _Planned) -> tuple[Resource, m.ObjectKey]:
    if item.resource is None or item.key is None:
        raise RuntimeError(f"{item.obj['kind']} was not resolved against discovery")
    return item.resource, item.key


def _crd_in(objects: list[dict[str, Any]], group: str, kind: str) -> bool:
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            if spec.get("group") == group and (spec.get("names") or {}).get("kind") == kind:
                return True
    return False


def _partial(applied: int) -> str:
    if applied:
        return f"{applied} Namespace/CRD object(s) were applied, the rest was not: "
    return "nothing applied: "
