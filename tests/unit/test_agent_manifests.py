"""Parsing, ordering, stamping and scope rules of the agent (no cluster needed)."""

import threading
import tracemalloc

import pytest

from brokkr.agent import manifests as m
from brokkr.agent.reconcile import Reconciler

STACK = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: demo}
data: {a: "1"}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, namespace: demo}
"""


def test_parse_flattens_lists_and_skips_empty_documents():
    objects = m.parse("---\n" + STACK + "\n---\n")
    assert [o["kind"] for o in objects] == [
        "ConfigMap",
        "CustomResourceDefinition",
        "Namespace",
        "Deployment",
    ]


def test_namespaces_then_crds_then_the_rest_in_document_order():
    ordered = m.order_for_apply(m.parse(STACK))
    assert [o["kind"] for o in ordered] == [
        "Namespace",
        "CustomResourceDefinition",
        "ConfigMap",
        "Deployment",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [1,", "invalid YAML"),
        ("- just\n- a list\n", "expected a Kubernetes object"),
        ("kind: ConfigMap\nmetadata: {name: x}\n", "missing or empty `apiVersion`"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "missing `metadata.name`"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: [a]}\n", "metadata.labels"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: Secret\n", "document 2"),
    ],
)
def test_bad_documents_are_named_with_the_problem(text, problem):
    with pytest.raises(m.ManifestError, match=problem):
        m.parse(text)


def test_stamp_adds_annotations_and_labels_without_touching_the_input():
    original = m.parse(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels: {app: x}\n"
    )[0]
    stamped = m.stamp(
        original,
        stack_id="s1",
        checksum="abc",
        deployment_object_id="d1",
        owner_id="a1",
        namespace="team",
    )
    meta = stamped["metadata"]
    assert meta["namespace"] == "team"
    assert meta["annotations"] == {
        "k8s.brokkr.io/stack": "s1",
        "k8s.brokkr.io/deployment-checksum": "abc",
        "brokkr.io/deployment-object-id": "d1",
        "brokkr.io/owner-id": "a1",
    }
    assert meta["labels"] == {"app": "x", "brokkr.io/owner-id": "a1", "k8s.brokkr.io/stack": "s1"}
    assert "annotations" not in original["metadata"]
    assert "namespace" not in original["metadata"]


def test_scope_of_a_namespaced_agent():
    inside = m.ObjectKey("", "ConfigMap", "team", "c")
    outside = m.ObjectKey("", "ConfigMap", "other", "c")
    cluster = m.ObjectKey("", "Namespace", "", "team")
    assert m.scope_problem(inside, True, "team") is None
    assert "namespace 'other' is outside" in (m.scope_problem(outside, True, "team") or "")
    assert "cluster-scoped" in (m.scope_problem(cluster, False, "team") or "")
    assert m.scope_problem(cluster, False, "") is None


def test_newest_deployment_object_per_stack_wins():
    items = [
        {"id": "a", "stack_id": "s1", "sequence_id": 3},
        {"id": "b", "stack_id": "s1", "sequence_id": 7},
        {"id": "c", "stack_id": "s2", "sequence_id": 5},
    ]
    assert {k: v["id"] for k, v in m.newest_per_stack(items).items()} == {"s1": "b", "s2": "c"}


def test_object_keys_read_well_in_messages():
    assert str(m.ObjectKey("apps", "Deployment", "demo", "web")) == "Deployment.apps demo/web"
    assert str(m.ObjectKey("", "Namespace", "", "demo")) == "Namespace demo"


def alias_bomb(levels: int, width: int = 9) -> str:
    """A ConfigMap whose aliases stand for about width**levels nodes in a few hundred bytes."""
    lines = ["  l0: &l0 [x]"]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "\n".join(lines)


def test_an_alias_bomb_is_refused_before_it_is_loaded():
    # 9**8 = 43 million nodes, the size that took a running agent past 4 GB.
    text = alias_bomb(9)
    assert len(text) < 600
    tracemalloc.start()
    try:
        with pytest.raises(m.ManifestError, match="aliases expand to more than 100000 nodes"):
            m.parse(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_a_few_aliases_and_merge_keys_still_parse():
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata: {a: '1'}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: &l {app: web}}\n"
        "spec: {selector: {<<: *l, tier: front}}\n"
    )
    service = m.parse(text)[1]
    assert service["metadata"]["labels"] == {"app": "web"}
    assert service["spec"]["selector"] == {"app": "web", "tier": "front"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: x, self: *m}\n", "contains it"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: " + "[" * 150, "deeper"),
    ],
)
def test_cycles_and_deep_nesting_are_refused_before_loading(text, problem):
    with pytest.raises(m.ManifestError, match=problem):
        m.parse(text)


def test_the_reconciler_reports_a_bomb_as_a_failure_without_touching_the_cluster():
    # No cluster: refusing the object must not need one (kube is never called).
    reconciler = Reconciler(None, "owner", "", threading.Event())  # type: ignore[arg-type]
    outcome = reconciler.apply(
        {"id": "d", "stack_id": "s", "yaml_content": alias_bomb(9), "is_deletion_marker": False}
    )
    assert outcome.status == "FAILURE"
    assert "nothing applied" in outcome.message and "aliases expand" in outcome.message
    assert reconciler._desired_keys({"yaml_content": alias_bomb(9)}) is None
