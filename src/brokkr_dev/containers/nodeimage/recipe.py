"""What goes into the kind node image: packages, images, pins, and the cache key.

Pure data and decisions (unit-tested); the build itself is in build.py.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import paths
from brokkr_dev.containers.baseimages import BaseImage
from brokkr_dev.containers.nodeimage import kube_versions

SUITE = "bookworm"
# Bump when the way the node image is assembled changes (invalidates the cache).
RECIPE = 1
REPOSITORY = "brokkr.local/kind-node"
KEY_LABEL = "io.brokkr.kind-node.key"
# The key of the node's Kubernetes version in the pins; its tools.toml entry is the
# chosen [kubernetes-node-1.NN] (kube_versions.py).
KUBERNETES = kube_versions.PIN

# The node's root filesystem: systemd as PID 1, containerd and runc (Debian's), and
# what kubelet, kubeadm, kube-proxy and the CNI plugins call on the node.
NODE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "containerd",
    "runc",
    "iptables",
    "nftables",
    "ipset",
    "conntrack",
    "iproute2",
    "ethtool",
    "util-linux",
    "mount",
    "kmod",
    "libseccomp2",
    "pigz",
    "ca-certificates",
    "curl",
    "jq",
    "procps",
    "containernetworking-plugins",
    "socat",
    "ebtables",
    "e2fsprogs",
    "bash",
)
# Base of the images that run network tools in pods (kube-proxy, kube-router) or a
# shell (local-path-provisioner's helper pod).
TOOLS_PACKAGES = ("iptables", "ipset", "conntrack", "kmod", "iproute2")


@dataclass(frozen=True)
class ComponentImage:
    """One image imported into the node's containerd at boot."""

    name: str  # the reference kubeadm or our manifests ask for
    binary: str  # its entrypoint, a binary of one of IMAGE_TOOLS ("" for the base)


TOOLS_IMAGE = "brokkr.local/node-tools:1"


def component_images(pins: dict[str, str]) -> list[ComponentImage]:
    """The images the node needs, named as kubeadm and our manifests expect: the
    control plane at the node's Kubernetes version, etcd and CoreDNS at our pins (the
    kind config points kubeadm at those tags, whatever its own release's defaults).

    All of them are the small network-tools base plus one binary: kube-proxy and
    kube-router call iptables, the storage helper pod needs a shell, and the base
    layer is stored once in the saved archive.
    """
    kube = pins[KUBERNETES]
    control_plane = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
    return [
        ComponentImage(TOOLS_IMAGE, ""),
        *(ComponentImage(f"registry.k8s.io/{name}:{kube}", name) for name in control_plane),
        ComponentImage(f"registry.k8s.io/etcd:{etcd_image_tag(pins)}", "etcd"),
        ComponentImage(f"registry.k8s.io/coredns/coredns:{coredns_image_tag(pins)}", "coredns"),
        ComponentImage(f"registry.k8s.io/pause:{pins['pause'].lstrip('v')}", "pause"),
        ComponentImage(f"brokkr.local/kube-router:{pins['kube-router']}", "kube-router"),
        ComponentImage(
            f"brokkr.local/local-path-provisioner:{pins['local-path-provisioner']}",
            "local-path-provisioner",
        ),
    ]


def etcd_image_tag(pins: dict[str, str]) -> str:
    """kubeadm's tag style for etcd images (3.6.16-0); the kind config points
    kubeadm at it, since kubeadm's default is the etcd of its own release."""
    return f"{pins['etcd'].lstrip('v')}-0"


def coredns_image_tag(pins: dict[str, str]) -> str:
    """The CoreDNS tag (v1.14.2); the kind config points kubeadm at it, since kubeadm's
    default is the CoreDNS of its own release (v1.13.1 in 1.35, v1.14.6 in 1.37)."""
    return pins["coredns"]


# The other tools.toml entries the node is made of, the same for every Kubernetes minor:
# the binaries of the component images, and kind (its node files; its binary runs on
# the machine that creates the cluster, so it is not built for the node).
IMAGE_TOOLS = ("etcd", "coredns", "pause", "kube-router", "local-path-provisioner")
PINNED_TOOLS = (*IMAGE_TOOLS, "kind")


def node_rootfs(arch: str) -> BaseImage:
    return BaseImage(suite=SUITE, arch=arch, packages=NODE_PACKAGES)


def tools_rootfs(arch: str) -> BaseImage:
    return BaseImage(suite=SUITE, arch=arch, packages=TOOLS_PACKAGES)


def cache_dir() -> Path:
    """Saved node images and the root filesystems they are made from."""
    return paths.cache_dir() / "kind-node"


def input_digest(pins: dict[str, str], arch: str, files: dict[str, bytes]) -> str:
    """A digest of everything the node image is made from: the recipe, the pinned
    versions, the package lists, kind's node files and our own build files."""
    digest = hashlib.sha256()
    header = {
        "recipe": RECIPE,
        "arch": arch,
        "suite": SUITE,
        "pins": dict(sorted(pins.items())),
        "node": NODE_PACKAGES,
        "tools": TOOLS_PACKAGES,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def image_tag(pins: dict[str, str], key: str) -> str:
    """The node image reference: Kubernetes version plus the input digest."""
    return f"{REPOSITORY}:{pins[KUBERNETES]}-{key}"


def containerd_config(text: str, pause_image: str) -> str:
    """kind's containerd config with our pause image, and restrict_oom_score_adj on:
    on hosts that withhold CAP_SYS_RESOURCE, runc cannot give a pod sandbox the
    negative OOM score containerd asks for otherwise (harmless elsewhere)."""
    settings = {
        "sandbox_image": f'"{pause_image}"',
        "restrict_oom_score_adj": "true",
    }
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and key in settings:
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(f"{indent}{key} = {settings.pop(key)}")
        else:
            lines.append(line)
    if settings:
        raise ValueError(f"kind's containerd config has no {', '.join(settings)} setting")
    return "\n".join(lines) + "\n"
