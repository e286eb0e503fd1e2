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
        # root file systems for base and node images, as any user (--mode=unshare);
        # arch-test: mmdebstrap refuses a foreign architecture without it
        "mmdebstrap",
        "arch-test",
        "docker-registry",
        # the release tests' throw-away GPG key for Helm's chart signing (.prov)
        "gpg",
        "gpg-agent",
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


def installed_packages() -> dict[str, set[str]]:
    """Installed package -> the names it provides (a package provides itself)."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\t${Provides}\n"],
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, set[str]] = {}
    for line in result.stdout.splitlines():
        name, status, provides = [*line.split("\t"), "", ""][:3]
        if not status.startswith("ii"):
            continue
        names = {name} | {p.split()[0] for p in provides.split(",") if p.strip()}
        found[name] = names
    return found


def missing(packages: Iterable[str], installed: dict[str, set[str]] | None = None) -> list[str]:
    """Packages neither installed nor provided by an installed package.

    A provider counts: on a host with Docker's own packages, containerd.io provides
    (and conflicts with) Debian's runc, which must then not be installed.
    """
    have = installed_packages() if installed is None else installed
    provided = set().union(*have.values()) if have else set()
    return [p for p in packages if p not in provided]


def sudo_prefix() -> list[str]:
    """How to run apt: [] as root, sudo with passwordless sudo, else [] (see ensure)."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if (
        sudo
        and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        # sudo drops the environment; apt must still run without questions
        return [sudo, "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    return []


def install_command(packages: Iterable[str]) -> str:
    """The one command a user runs to install these packages."""
    return "sudo apt-get install -y --no-install-recommends " + " ".join(packages)


def would_remove(packages: list[str]) -> list[str]:
    """Packages apt would remove to install these (a conflict), from a simulation."""
    result = subprocess.run(
        ["apt-get", "-s", "-qq", "install", "--no-install-recommends", *packages],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith("Remv ")]


def ensure(features: Iterable[str]) -> list[str]:
    """Install what is missing for the features; return the packages installed.

    Refuses before anything else happens when a package is missing and this user can
    neither install it (not root, no passwordless sudo) nor do without it, naming
    the packages and the command; and never removes an installed package (a conflict
    is an error, not a trade).
    """
    wanted = packages_for(features)
    if not shutil.which("dpkg-query"):
        raise SystemError(
            "this is not a Debian/Ubuntu system; install the equivalents of: " + " ".join(wanted)
        )
    todo = missing(wanted)
    if not todo:
        return []
    prefix = sudo_prefix()
    if os.geteuid() != 0 and not prefix:
        raise SystemError(
            f"missing Debian packages: {' '.join(todo)}; this user is not root and has no "
            f"passwordless sudo, so nothing was built. Install them once, then re-run:\n"
            f"  {install_command(todo)}"
        )
    removed = would_remove(todo)
    if removed:
        raise SystemError(
            f"installing {' '.join(todo)} would remove {' '.join(removed)} (a conflict with "
            "what this machine runs); nothing was changed. Install the equivalents that fit "
            "this machine by hand, or remove the conflicting packages first."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing Debian packages: {' '.join(todo)}", flush=True)
    for command in (
        [*prefix, "apt-get", "update", "-qq"],
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *todo],
    ):
        if subprocess.run(command, env=env, check=False).returncode != 0:
            raise SystemError(f"`{' '.join(command)}` failed; see the output above")
    return todo


def sbin_program(name: str) -> str | None:
    """A program by name, also where Debian puts it outside a normal user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


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
