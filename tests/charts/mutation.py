"""Render a chart as an install would, flatten the result and diff two renderings.

The mutation test (test_values_mutation.py) changes one value at a time and checks
that the rendering changes exactly where the value's `# @changes` promise in
values.yaml says. A rendering is flattened to `{key: scalar}`, where a key names the
object and the field:

    <Kind><name suffix>:<path>

The name suffix is the object's name with the release's full name taken off
(`Secret-admin`, `StatefulSet-postgresql`; `ConfigMap` for the main one; a
cluster-scoped object's namespace prefix is dropped too); other names follow a
slash (`Secret/agent-pak`). Paths are
dotted; list items are `[name]` when they have a name, else `[index]`. The NOTES
text is the pseudo-object `NOTES:text`.
"""

from __future__ import annotations

import atexit
import functools
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from brokkr_dev.charts import lint as charts

RELEASE = "rel"
NAMESPACE = "ns"
# Pod-template checksums follow the ConfigMaps and Secrets they hash; the checksum
# tests (test_checksums.py) prove them, so a promise need not repeat them.
DERIVED = "*:spec.template.metadata.annotations.checksum/*"


@dataclass
class Release:
    """What `helm install` would create: objects (hooks included) and the NOTES."""

    objects: list[dict[str, Any]]
    notes: str

    def text(self) -> str:
        """Everything a user or the cluster would see, as one string (for leak checks)."""
        return yaml.safe_dump_all(self.objects) + self.notes


def install_dry_run(chart: charts.Chart, values: dict[str, Any]) -> Release:
    """What `helm install` would create, NOTES included, rendered offline.

    `helm install --dry-run=client` still wants a cluster, and `helm template` leaves
    NOTES.txt out; so the chart is rendered from a copy where the NOTES text also
    fills one extra document (kind NOTES), which is then taken off.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values, handle)
        handle.flush()
        text = charts.render(
            _with_notes_document(chart), [Path(handle.name)], release=RELEASE, namespace=NAMESPACE
        )
    objects = [o for o in yaml.safe_load_all(text) if o]
    notes = [o["text"] for o in objects if o["kind"] == "NOTES"]
    return Release([o for o in objects if o["kind"] != "NOTES"], notes[0])


@functools.cache
def _with_notes_document(chart: charts.Chart) -> charts.Chart:
    copy = Path(tempfile.mkdtemp(prefix="chart-notes-")) / chart.name
    shutil.copytree(chart.path, copy)
    templates = copy / "templates"
    notes = (templates / "NOTES.txt").read_text()
    (templates / "_zz_notes.tpl").write_text(
        '{{- define "zz.notes" -}}\n' + notes + "\n{{- end }}\n"
    )
    (templates / "zz-notes.yaml").write_text(
        'kind: NOTES\ntext: {{ include "zz.notes" . | toJson }}\n'
    )
    atexit.register(shutil.rmtree, copy.parent, True)
    return charts.Chart(copy)


def fullname(chart: charts.Chart) -> str:
    """The release's full name prefix, as the charts' fullname templates compute it."""
    return f"{RELEASE}-{chart.name}"


def flatten(release: Release, prefix: str) -> dict[str, Any]:
    """The rendering as `{key: scalar}` (see the module docstring)."""
    flat: dict[str, Any] = {"NOTES:text": release.notes}
    for obj in release.objects:
        name = obj.get("metadata", {}).get("name", "")
        # Cluster-scoped objects carry the namespace in front: `ns-rel-brokkr-agent-x`.
        name = name.removeprefix(f"{NAMESPACE}-")
        suffix = name[len(prefix) :] if name.startswith(prefix) else f"/{name}"
        _walk(obj, f"{obj['kind']}{suffix}:", flat)
    return flat


def _walk(node: Any, key: str, flat: dict[str, Any]) -> None:
    if isinstance(node, dict) and node:
        for name, child in node.items():
            _walk(child, f"{key}{'' if key.endswith(':') else '.'}{name}", flat)
    elif isinstance(node, list) and node:
        for index, child in enumerate(node):
            label = child.get("name", index) if isinstance(child, dict) else index
            _walk(child, f"{key}[{label}]", flat)
    else:
        flat[key] = node


def changed_keys(base: dict[str, Any], other: dict[str, Any], noisy: set[str]) -> set[str]:
    """Keys added, removed, or whose value differs (noisy keys: only when added or removed)."""
    keys = set(base) ^ set(other)
    keys |= {k for k in set(base) & set(other) if base[k] != other[k] and k not in noisy}
    return keys


def glob(key: str, pattern: str) -> bool:
    """`*` matches anything; every other character (brackets too) stands for itself."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, key) is not None


def matches(key: str, pattern: str) -> bool:
    """A promise pattern covers a key: the key itself or any field below it.

    `ConfigMap:data.BROKKR__LOG__LEVEL` covers exactly that key; `Ingress` covers every
    field of the Ingress; `Deployment:*.env[BROKKR__X]` covers that env entry.
    """
    if ":" not in pattern:
        return glob(key, pattern + ":*")
    return any(glob(key, pattern + tail) for tail in ("", ".*", "[*"))


@dataclass
class Verdict:
    """How a changed rendering compares with a promise: what broke it, if anything."""

    unpromised: list[str]
    unmet: list[str]

    @property
    def ok(self) -> bool:
        return not self.unpromised and not self.unmet


def judge(keys: set[str], promise: list[str]) -> Verdict:
    """Every changed key must be promised; every promised pattern must see a change."""
    unpromised = sorted(
        k for k in keys if not any(matches(k, p) for p in promise) and not glob(k, DERIVED)
    )
    unmet = [p for p in promise if not any(matches(k, p) for k in keys)]
    return Verdict(unpromised, unmet)


def set_path(values: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `values` with one nested key set."""
    out: dict[str, Any] = json.loads(json.dumps(values))
    cursor = out
    for key in path[:-1]:
        cursor = cursor.setdefault(key, {})
    cursor[path[-1]] = value
    return out


def values_file(chart: charts.Chart) -> Path:
    return chart.path / "values.yaml"
