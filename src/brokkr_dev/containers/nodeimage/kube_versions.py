"""The Kubernetes versions a kind node image is built with: one tools.toml entry per minor.

Each `[kubernetes-node-1.NN]` entry pins one release of that minor (its kubelet,
kubeadm and control plane). `nox -s e2e-kind -- --kubernetes 1.NN` picks one (or
`oldest`/`newest`); without it the newest is used; `nox -s e2e-kind-matrix` runs
them all (docs/e2e.md, "Kubernetes versions").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from brokkr_dev.base import toolchain
from brokkr_dev.base.errors import AutomationError

ENTRY_PREFIX = "kubernetes-node-"
# The key under which the chosen version goes into the node image's pins.
PIN = "kubernetes-node"
_MINOR = re.compile(r"v?(\d+)\.(\d+)")


class NodeVersionError(AutomationError):
    """An unknown or badly pinned node Kubernetes version; the message names the choices."""


@dataclass(frozen=True)
class NodeKubernetes:
    """One pinned minor: `1.35` and its tools.toml entry (version v1.35.4)."""

    minor: str
    tool: toolchain.Tool

    @property
    def version(self) -> str:
        return self.tool.version

    @property
    def slug(self) -> str:
        """`1-35`: the minor where only letters, digits and '-' may go (cluster names)."""
        return self.minor.replace(".", "-")


def minor_of(version: str) -> str | None:
    """v1.35.4, 1.35 or v1.35 -> "1.35"; None for anything else."""
    match = _MINOR.match(version.strip())
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _sort_key(node: NodeKubernetes) -> tuple[int, int]:
    major, minor = node.minor.split(".")
    return int(major), int(minor)


def pinned(manifest: dict[str, toolchain.Tool] | None = None) -> list[NodeKubernetes]:
    """Every pinned node minor, oldest first; refuses an entry named for another minor."""
    manifest = manifest or toolchain.load_manifest()
    found = []
    for name, tool in manifest.items():
        if not name.startswith(ENTRY_PREFIX):
            continue
        minor = name.removeprefix(ENTRY_PREFIX)
        if minor_of(minor) != minor or minor_of(tool.version) != minor:
            raise NodeVersionError(
                f"tools.toml [{name}] pins {tool.version}: an entry [{ENTRY_PREFIX}1.NN] "
                "must pin a release of minor 1.NN; rename the entry or fix its version"
            )
        found.append(NodeKubernetes(minor, tool))
    if not found:
        raise NodeVersionError(
            f"tools.toml pins no node Kubernetes: add an entry [{ENTRY_PREFIX}1.NN] "
            "(docs/kubernetes.md)"
        )
    return sorted(found, key=_sort_key)


def newest(manifest: dict[str, toolchain.Tool] | None = None) -> NodeKubernetes:
    return pinned(manifest)[-1]


def choose(
    requested: str | None, manifest: dict[str, toolchain.Tool] | None = None
) -> NodeKubernetes:
    """The pinned minor asked for (`1.35`, `v1.35`, its exact pinned release, or
    `oldest`/`newest`), the newest when nothing is asked; an unknown or unpinned one
    names the choices."""
    choices = pinned(manifest)
    if not requested or requested == "newest":
        return choices[-1]
    if requested == "oldest":
        return choices[0]
    minor = minor_of(requested)
    for node in choices:
        exact = requested.lstrip("v") == node.version.lstrip("v")
        if node.minor == minor and (exact or re.fullmatch(r"v?\d+\.\d+", requested)):
            return node
    listed = ", ".join(f"{n.minor} ({n.version})" for n in choices)
    raise NodeVersionError(
        f"Kubernetes {requested!r} is not pinned for the kind node; choose one of: "
        f"{listed}, oldest or newest (`--kubernetes {choices[-1].minor}`), or pin another "
        f"minor in tools.toml ([{ENTRY_PREFIX}1.NN], then `invoke cluster.pin`)"
    )
