"""A PostgreSQL image from Debian's packages, for the broker chart where no registry is.

The chart's default PostgreSQL is the official public image; an air-gapped cluster
(like the kind cluster of `nox -s e2e-kind`) points `postgresql.image.*` at this one
instead. It is built with podman on a local debootstrap root filesystem that has
Debian's `postgresql-<major>` installed (cached like the other base images), plus
one small layer: the non-root user and docker/postgresql/entrypoint.sh, which
follows the official image's environment contract (POSTGRES_USER, POSTGRES_DB,
POSTGRES_PASSWORD_FILE, PGDATA).

The tag carries a digest of every input, so a changed recipe gets a new tag (a
cluster that already holds the old one never runs stale bits) and an unchanged one
is not rebuilt.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import dataclass

from brokkr_dev.base import paths
from brokkr_dev.base.log import Log
from brokkr_dev.containers import baseimages, images
from brokkr_dev.containers.podman import ContainerError, ensure_podman_host, podman

MAJOR = "15"  # Debian 12's PostgreSQL
REPOSITORY = "localhost/brokkr-postgresql"
CONTEXT = paths.REPO_ROOT / "docker" / "postgresql"
# LLVM (and its z3 solver) only serves the JIT compiler (off in the image); the
# packaged cluster and configuration are never used (the entrypoint runs initdb into
# PGDATA); full Perl serves Debian's cluster wrappers, which the image bypasses
# (perl-base stays for dpkg); the i18n sources are for locale tools the server does
# not call.
DROP = (
    "usr/lib/*/libLLVM*",
    "usr/lib/*/libz3*",
    "usr/lib/*/perl/5.*",
    "usr/lib/*/libperl.so*",
    "usr/share/perl/5.*",
    f"usr/lib/postgresql/{MAJOR}/lib/llvmjit*",
    f"usr/lib/postgresql/{MAJOR}/lib/bitcode",
    "var/lib/postgresql/*",
    "etc/postgresql/*",
    "usr/share/i18n",
)


def base_for(arch: str) -> baseimages.BaseImage:
    """The debootstrap root filesystem with Debian's PostgreSQL server packages."""
    baseimages.for_arch(arch)  # validates the architecture
    return baseimages.BaseImage(
        suite=baseimages.SUITE,
        arch=arch,
        packages=(f"postgresql-{MAJOR}", "passwd"),
        repository=f"{REPOSITORY}-base",
        drop=DROP,
    )


@dataclass(frozen=True)
class PostgresImage:
    """The image for one architecture: where it comes from and its reference."""

    arch: str

    @property
    def base(self) -> baseimages.BaseImage:
        return base_for(self.arch)

    @property
    def key(self) -> str:
        """Digest of the base's inputs and the build context's files."""
        digest = hashlib.sha256(self.base.key.encode())
        for path in sorted(CONTEXT.iterdir()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:12]

    @property
    def tag(self) -> str:
        """e.g. 15-amd64-0123456789ab."""
        return f"{MAJOR}-{self.arch}-{self.key}"

    @property
    def reference(self) -> str:
        return f"{REPOSITORY}:{self.tag}"

    def chart_values(self) -> dict[str, object]:
        """`postgresql.image` values that make the broker chart use this image."""
        registry, repository = REPOSITORY.split("/", 1)
        return {
            "registry": registry,
            "repository": repository,
            "tag": self.tag,
            "pullPolicy": "Never",
        }


def ensure(arch: str | None = None, log: Log = print) -> PostgresImage:
    """Build the image unless this exact recipe is already in podman storage."""
    image = PostgresImage(arch or images.native_arch())
    if _exists(image.reference):
        log(f"{image.reference} is up to date")
        return image
    foreign = [image.arch] if image.arch != images.native_arch() else []
    ensure_podman_host(foreign)
    base = baseimages.ensure(image.base, log=log)
    log(f"building {image.reference} (base {base})")
    started = time.monotonic()
    command = podman(
        "build",
        "--isolation",
        "chroot",
        # chroot isolation allows only the host network; the build fetches nothing.
        "--network",
        "host",
        "--layers=true",
        "--pull=never",
        "--platform",
        images.platform_of(image.arch),
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        f"POSTGRES_MAJOR={MAJOR}",
        "--tag",
        image.reference,
        str(CONTEXT),
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
        raise ContainerError(f"building {image.reference} failed:\n{tail}")
    log(f"built {image.reference} in {time.monotonic() - started:.1f} s")
    return image


def _exists(reference: str) -> bool:
    command = podman("image", "exists", reference)
    return subprocess.run(command, capture_output=True, check=False).returncode == 0
