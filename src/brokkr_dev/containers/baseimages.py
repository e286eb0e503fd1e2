"""Local base images made with mmdebstrap: the air-gapped path for image builds.

A base image is a Debian minbase root filesystem with Python 3, venv and CA
certificates, i.e. what the official `python:3.11-slim` image provides. The root
filesystem is cached as a tarball under ~/.cache/brokkr/base-images, keyed by suite,
architecture and package list, and imported into podman storage whenever the image
is missing there, so mmdebstrap runs once per machine (as root or as any user).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import paths, system
from brokkr_dev.base.commands import run
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
RECIPE = 4  # 4: mmdebstrap with the security suite as a source
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
    """mmdebstrap the root filesystem into a tarball (written atomically), as any user.

    As root mmdebstrap works in place; as a normal user it runs in a user namespace
    (`--mode=unshare`, the user's /etc/subuid range), so no step needs root. The
    security suite is a source from the start, so the packages are the patched ones;
    a hook slims the tree before it is packed.
    """
    program = system.sbin_program("mmdebstrap")
    if not program:
        raise ContainerError(
            "mmdebstrap is not installed; run `invoke system.install --features containers`"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    mode = "root" if os.geteuid() == 0 else "unshare"
    log(f"mmdebstrap {image.suite} {image.arch} ({mode} mode; once per machine, 1-3 minutes)")
    hook = shlex.join(
        [sys.executable, "-m", "brokkr_dev.containers.baseimages", "slim", "--drop", *image.drop]
    )
    with tempfile.TemporaryDirectory(prefix="brokkr-rootfs-", dir=tarball.parent) as tmp:
        partial = Path(tmp) / "rootfs.tar"
        command = [
            program,
            "--variant=minbase",
            f"--mode={mode}",
            f"--architectures={DEBIAN_ARCH[image.arch]}",
            f"--include={','.join(image.packages)}",
            # the hook runs our Python on the host, with the tree's path as $1
            f'--customize-hook={hook} "$1"',
            image.suite,
            str(partial),
            f"deb {MIRROR} {image.suite} main",
            f"deb {SECURITY_MIRROR} {image.suite}-security main",
        ]
        env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT / "src")}
        run(
            command,
            env=env,
            hint="for a foreign architecture, qemu-user-static must be enabled "
            "(`invoke images.setup`); as a normal user, /etc/subuid needs a range for it",
        )
        partial.replace(tarball)


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


def drop(rootfs: Path, patterns: Sequence[str]) -> None:
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


def main(argv: list[str]) -> int:
    """`python -m brokkr_dev.containers.baseimages slim --drop [GLOB...] ROOTFS`: the
    mmdebstrap hook that slims a new root filesystem."""
    if len(argv) < 3 or argv[:2] != ["slim", "--drop"]:
        print("usage: python -m brokkr_dev.containers.baseimages slim --drop [GLOB...] ROOTFS")
        return 2
    rootfs = Path(argv[-1])
    slim(rootfs)
    drop(rootfs, argv[2:-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
