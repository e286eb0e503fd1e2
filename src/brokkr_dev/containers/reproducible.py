"""Reproducible images with podman: one commit, built twice, the same digests.

What differed between two clean builds of one commit, and what removes it:

- every file's mtime, the config's `created` and each history entry's time:
  `podman build --timestamp 0` sets them all to the epoch. A constant, not the
  commit's time, so a layer whose content did not change keeps its digest across
  commits too (the dependency layer of a code-only change);
- .pyc files stamped with each source's install time: the Dockerfile sets
  SOURCE_DATE_EPOCH in the builder stage, so compileall writes hash-based .pyc
  (PEP 552), and for `useradd`, so /etc/shadow carries no build day;
- what docker-format configs (kept for HEALTHCHECK) record of the build itself: the
  build container's id and hostname, the parent image and history comments that name
  intermediate images, all random per build. `normalise` takes them out and
  re-imports the image under its tags; `--layers=false` keeps intermediate images
  (and their cache) out of the build.

Buildx on a Docker Engine's own BuildKit does not take part: docs/images.md says why.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brokkr_dev.base.commands import run
from brokkr_dev.containers.podman import ContainerError, podman

EPOCH = 0
BUILD_FLAGS = ("--layers=false", "--timestamp", str(EPOCH))
# A history comment naming the intermediate image a step started from.
_INTERMEDIATE = re.compile(r"FROM [0-9a-f]{12,64}")


def strip_build_identity(config: dict[str, Any]) -> dict[str, Any]:
    """A docker-format image config without what names the build rather than the
    image: `container`, `parent`, the hostnames and intermediate-image comments."""
    cleaned = copy.deepcopy(config)
    cleaned.pop("container", None)
    cleaned.pop("parent", None)
    for key in ("config", "container_config"):
        section = cleaned.get(key)
        if isinstance(section, dict) and "Hostname" in section:
            section["Hostname"] = ""
    for entry in cleaned.get("history") or []:
        if _INTERMEDIATE.fullmatch(entry.get("comment", "")):
            del entry["comment"]
    return cleaned


def rewrite_config(directory: Path) -> bool:
    """In a `dir:` copy of an image (manifest.json and blobs named by their hex
    digest), replace the config by its stripped form; whether it changed."""
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    old = directory / manifest["config"]["digest"].split(":", 1)[1]
    config = json.loads(old.read_bytes())
    cleaned = strip_build_identity(config)
    if cleaned == config:
        return False
    data = json.dumps(cleaned, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(data).hexdigest()
    old.unlink()
    (directory / digest).write_bytes(data)
    manifest["config"]["digest"] = f"sha256:{digest}"
    manifest["config"]["size"] = len(data)
    manifest_path.write_text(json.dumps(manifest, separators=(",", ":")))
    return True


def image_id(reference: str) -> str:
    done = run(podman("image", "inspect", "--format", "{{.Id}}", reference))
    return done.stdout.strip()


def normalise(references: Sequence[str]) -> str:
    """Strip the build's identity from the image the references name (one image) and
    put the references on the result; its image id (the config's digest)."""
    if not references:
        raise ContainerError("normalise: no image reference given")
    before = image_id(references[0])
    with tempfile.TemporaryDirectory(prefix="brokkr-normalise-") as scratch:
        copy_dir = Path(scratch) / "image"
        run(podman("push", "--quiet", "--format", "v2s2", references[0], f"dir:{copy_dir}"))
        if not rewrite_config(copy_dir):
            return before
        pulled = run(podman("pull", "--quiet", f"dir:{copy_dir}")).stdout.strip().splitlines()
    after = pulled[-1]
    for reference in references:
        run(podman("tag", after, reference))
    # The build's own image keeps no tag now; a manifest list may still hold it.
    run(podman("image", "rm", before), check=False)
    return after
