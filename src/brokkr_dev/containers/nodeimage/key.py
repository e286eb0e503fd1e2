"""The kind node image's cache key: what CI's node image cache is keyed by.

The same input digest that names the saved tar (`build.ensure_node_image`), so the
workflow's cache entry changes exactly when the image would be built again.
"""

from __future__ import annotations

from pathlib import Path

from brokkr_dev.base import toolchain
from brokkr_dev.containers.nodeimage import build, kube_versions, recipe


def node_image_key(arch: str | None = None, kubernetes: str | None = None) -> str:
    """`<kubernetes version>-<arch>-<input digest>` of the node image of that Kubernetes
    minor (the newest pinned by default); downloads kind's module (Go) once."""
    arch = arch or toolchain.host_platform()[1]
    versions = build.pins(kubernetes=kube_versions.choose(kubernetes))
    digest = recipe.input_digest(
        versions, arch, build.input_files(build.kind_module(versions["kind"]))
    )
    return f"{versions[recipe.KUBERNETES]}-{arch}-{digest}"


def write_github_output(key: str, output: Path) -> None:
    """Append `key=<key>` to a step's $GITHUB_OUTPUT file."""
    with output.open("a", encoding="utf-8") as file:
        file.write(f"key={key}\n")
