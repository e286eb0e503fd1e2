"""Local base images made with debootstrap: the air-gapped path for image builds.

A base image is a Debian minbase root filesystem with Python 3, venv and CA
certificates, i.e. what the official `python:3.11-slim` image provides. The root
filesystem is cached as a tarball under ~/.cache/brokkr/base-images, keyed by suite,
architecture and package list, and imported into podman storage whenever the image
is missing there, so debootstrap runs once per machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import paths
from brokkr_dev.base.log import Log
from brokkr_dev.containers.podman import ContainerError, podman

SUITE = "bookworm"  # Debian 12: Python 3.11, as the services require
MIRROR = "http://deb.debian.org/debian"
# debootstrap installs the release's packages only; the security suite's fixes are
# applied on top (the security scan reports any the image lacks: docs/security.md).
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# passwd: useradd/groupadd for the image's non-root user, as in the official image.
PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")
REPOSITORY = "localhost/brokkr-base"
# Bump when the way the root filesystem is made changes (invalidates cached tarballs).
RECIPE = 3
KEY_LABEL = "io.brokkr.base.key"
# Debian's names for the Go/OCI architectures we build.
DEBIAN_ARCH = {"amd64": "amd64", "arm64": "arm64"}
# What the official image sets, so the Dockerfile works the same on either base.
IMAGE_CONFIG = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)


@dataclass(frozen=True)
class BaseImage:
    """One local base image: where its rootfs tarball is cached and its podman tag."""

    suite: str
    arch: str
    packages: tuple[str, ...] = PACKAGES
    repository: str = REPOSITORY
    # Globs (relative to the root filesystem) removed after debootstrap, for files a
    # package ships that the image never uses.
    drop: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Short digest of everything that goes into the root filesystem."""
        parts: list[object] = [RECIPE, self.suite, self.arch, sorted(self.packages), MIRROR]
        if self.drop:  # absent for the plain base, so its cached tarball stays valid
            parts.append(sorted(self.drop))
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        """The podman reference, e.g. localhost/brokkr-base:bookworm-arm64."""
        return f"{self.repository}:{self.suite}-{self.arch}"

    def tarball(self, cache: Path | None = None) -> Path:
        """Cached rootfs tarball path, e.g. ~/.cache/brokkr/base-images/bookworm-arm64-<key>.tar."""
        root = cache or paths.cache_dir()
        stem = self.repository.rsplit("/", 1)[-1].removeprefix("brokkr-").removeprefix("base")
        prefix = f"{stem}-" if stem else ""
        return root / "base-images" / f"{prefix}{self.suite}-{self.arch}-{self.key}.tar"


def for_arch(arch: str, suite: str = SUITE) -> BaseImage:
    """The base image for a Go architecture name, with a clear error for others."""
    if arch not in DEBIAN_ARCH:
        raise ContainerError(f"no base image for {arch!r}; supported: {', '.join(DEBIAN_ARCH)}")
    return BaseImage(suite=suite, arch=arch)


def ensure(image: BaseImage, log: Log = print) -> str:
    """Make `image.tag` exist in podman storage (debootstrap once, import when missing).

    Returns the image by digest (`localhost/brokkr-base@sha256:...`): builds name
    their base by digest, so a re-import under the same tag cannot change what a
    build is based on unnoticed.
    """
    if _podman_label(image.tag, KEY_LABEL) == image.key:
        return pinned(image)
    tarball = image.tarball()
    if not tarball.exists():
        build_rootfs(image, tarball, log)
    log(f"importing {tarball.name} as {image.tag}")
    changes = [
        arg
        for line in (*IMAGE_CONFIG, f"LABEL {KEY_LABEL}={image.key}")
        for arg in ("--change", line)
    ]
    command = podman(
        "import",
        "--quiet",
        "--os",
        "linux",
        "--arch",
        image.arch,
        *changes,
        str(tarball),
        image.tag,
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ContainerError(f"podman import of {tarball} failed: {result.stderr.strip()}")
    return pinned(image)


def pinned(image: BaseImage) -> str:
    """The imported base image by digest, e.g. localhost/brokkr-base@sha256:..."""
    digest = _podman_format(image.tag, "{{.Digest}}")
    if not digest or not digest.startswith("sha256:"):
        raise ContainerError(f"podman reports no digest for {image.tag}; re-run to re-import it")
    return f"{REPOSITORY}@{digest}"


def build_rootfs(image: BaseImage, tarball: Path, log: Log = print) -> None:
    """debootstrap the root filesystem and store it as a tarball (written atomically)."""
    if not shutil.which("debootstrap"):
        raise ContainerError(
            "debootstrap is not installed; run `invoke system.install --features containers`"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {image.suite} {image.arch} (once per machine, 1-3 minutes)")
    with tempfile.TemporaryDirectory(prefix="brokkr-rootfs-", dir=tarball.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--arch={DEBIAN_ARCH[image.arch]}",
            f"--include={','.join(image.packages)}",
            image.suite,
            str(rootfs),
            MIRROR,
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        finally:
            _unmount_below(rootfs)  # a failed debootstrap can leave /proc mounted inside
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise ContainerError(
                f"`{' '.join(command)}` failed (for a foreign architecture, qemu-user-static "
                f"must be enabled: `invoke images.setup`):\n{tail}"
            )
        security_upgrade(rootfs, image.suite, log)
        slim(rootfs)
        drop(rootfs, image.drop)
        partial = Path(tmp) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], check=True
        )
        partial.replace(tarball)


def security_upgrade(rootfs: Path, suite: str, log: Log = print) -> None:
    """Install the published Debian security updates into the root filesystem.

    Runs apt inside the root filesystem (chroot; a foreign architecture runs under
    the qemu binfmt handler that debootstrap already needed).
    """
    log(f"applying {suite}-security updates")
    (rootfs / "etc" / "apt" / "sources.list").write_text(
        f"deb {MIRROR} {suite} main\ndeb {SECURITY_MIRROR} {suite}-security main\n"
    )
    environment = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C",
    }
    for command in (
        ["apt-get", "-qq", "update"],
        ["apt-get", "-qq", "-y", "-o", "Dpkg::Options::=--force-confold", "upgrade"],
        ["apt-get", "clean"],
    ):
        result = subprocess.run(
            ["chroot", str(rootfs), *command],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
            raise ContainerError(
                f"`{' '.join(command)}` in the new root filesystem failed:\n{tail}"
            )


def _unmount_below(root: Path) -> None:
    """Unmount anything still mounted inside root, deepest first, before it is deleted."""
    mounts = [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()
    ]
    inside = [m for m in mounts if m == str(root) or m.startswith(f"{root}/")]
    for mount in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)


# Package caches and documentation, as Debian's slim images leave them out; licence
# texts (usr/share/doc/*/copyright) stay.
SLIM_FILES = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/cache/apt/*.bin")
SLIM_TREES = ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/doc")


def slim(rootfs: Path) -> None:
    """Drop package caches, manuals, translations and docs (but not copyright files)."""
    for pattern in SLIM_FILES:
        for path in rootfs.glob(pattern):
            if path.is_file():
                path.unlink()
    for tree in SLIM_TREES:
        top = rootfs / tree
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.name == "copyright" and tree == "usr/share/doc":
                continue
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def drop(rootfs: Path, patterns: tuple[str, ...]) -> None:
    """Remove what the globs match below rootfs (files, links and whole trees)."""
    for pattern in patterns:
        for path in sorted(rootfs.glob(pattern), key=lambda p: len(p.parts), reverse=True):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)


def _podman_label(reference: str, label: str) -> str | None:
    return _podman_format(reference, f'{{{{index .Labels "{label}"}}}}')


def _podman_format(reference: str, template: str) -> str | None:
    result = subprocess.run(
        podman("image", "inspect", "--format", template, reference),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None
