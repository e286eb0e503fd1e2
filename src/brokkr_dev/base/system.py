"""Debian packages the automation needs, grouped by feature; stdlib only.

`.ci/run` calls `python3 -m brokkr_dev.base.system all` before anything else is
installed, so this module must not import third-party packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable

from brokkr_dev.base.errors import AutomationError

# Feature -> Debian bookworm packages. Keep each list minimal and explain why.
FEATURES: dict[str, tuple[str, ...]] = {
    # python3-venv: the bootstrap venv; git: version stamps and release notes;
    # curl and jq: the operator guides' commands, which tests/docs runs.
    "base": ("git", "python3-venv", "ca-certificates", "curl", "jq"),
    # A real PostgreSQL for the broker's integration tests and `nox -s up`;
    # openssl makes the certificate authority of the broker's TLS tests.
    "postgres": ("postgresql", "postgresql-contrib", "openssl"),
    # Container builds without a Docker engine, foreign architectures by emulation,
    # local base images, and a local OCI registry for release tests.
    "containers": (
        "podman",
        "buildah",
        "runc",
        "uidmap",
        "fuse-overlayfs",
        "qemu-user-static",
        "binfmt-support",
        "debootstrap",
        "docker-registry",
    ),
    # The Docker engine kind runs on where none is running (src/brokkr_dev/containers/engine):
    # dockerd with its containerd and runc; iptables for its bridges.
    "engine": ("docker.io", "iptables"),
}
# Installed only when needed, not by `all`: the engine only where no Docker engine
# answers (on GitHub Actions, docker.io would conflict with the runner's own Docker).
ON_DEMAND = frozenset({"engine"})


class SystemError(AutomationError):
    """A system package could not be installed; the message says how to fix it."""


def packages_for(features: Iterable[str]) -> list[str]:
    """The union of packages of the named features, in a stable order."""
    wanted: list[str] = []
    for feature in features:
        if feature not in FEATURES:
            raise SystemError(f"unknown feature {feature!r}; choose from: {', '.join(FEATURES)}")
        wanted.extend(p for p in FEATURES[feature] if p not in wanted)
    return wanted


def missing(packages: Iterable[str]) -> list[str]:
    """Packages that dpkg does not report as installed."""
    absent = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if "install ok installed" not in result.stdout:
            absent.append(package)
    return absent


def ensure(features: Iterable[str]) -> list[str]:
    """Install what is missing for the features; return the packages installed."""
    wanted = packages_for(features)
    if not shutil.which("dpkg-query"):
        raise SystemError(
            "this is not a Debian/Ubuntu system; install the equivalents of: " + " ".join(wanted)
        )
    todo = missing(wanted)
    if not todo:
        return []
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise SystemError(
                "these packages are missing and this user is not root: "
                + " ".join(todo)
                + "\nrun: sudo apt-get install -y "
                + " ".join(todo)
            )
        prefix = ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing Debian packages: {' '.join(todo)}", flush=True)
    for command in (
        [*prefix, "apt-get", "update", "-qq"],
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *todo],
    ):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise SystemError(f"`{' '.join(command)}` failed; see the output above")
    return todo


def main(argv: list[str]) -> int:
    """`python3 -m brokkr_dev.base.system FEATURE... | all`."""
    if not argv or argv[0] in {"-h", "--help"}:
        print(
            f"usage: python3 -m brokkr_dev.base.system all | FEATURE...\nfeatures: {', '.join(FEATURES)}"
        )
        return 0 if argv else 2
    features = [f for f in FEATURES if f not in ON_DEMAND] if argv == ["all"] else argv
    try:
        ensure(features)
    except SystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
