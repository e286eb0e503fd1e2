"""Which storage podman uses: overlay in our own store when the kernel allows it, else vfs.

vfs copies the whole root file system for every build step and container, which
makes a code-only image rebuild take about a minute; overlay stacks the layers
instead. The machine-wide store (/var/lib/containers/storage) stays as it is: other
tools and users on a shared host rely on its vfs driver, and podman refuses to open
one store with two drivers. Overlay therefore gets its own store under the cache
(`podman-storage/<variant>`), with its own run and temporary directories; the base
images are imported into it from their cached tarballs on first use (baseimages).

BROKKR_PODMAN_STORAGE chooses:

- `auto` (default): native overlay (root, a kernel and file system that allow it),
  else overlay through fuse-overlayfs, else the machine-wide vfs store, saying why;
- `overlay`: the same, but an error instead of the vfs fallback;
- `vfs`: the machine-wide vfs store, as before.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import paths
from brokkr_dev.base.errors import AutomationError

ENV = "BROKKR_PODMAN_STORAGE"
CHOICES = ("auto", "overlay", "vfs")
RUN_DIR = Path("/run/brokkr-podman")
FUSE_OVERLAYFS = "fuse-overlayfs"
PROBE_TIMEOUT = 120


class StorageError(AutomationError):
    """The requested podman storage cannot be used here; the message says what to do."""


@dataclass(frozen=True)
class Storage:
    """One podman storage: its global flags and why it was chosen."""

    driver: str  # "overlay" or "vfs"
    flags: tuple[str, ...]
    reason: str


def vfs() -> Storage:
    """The machine-wide store with the vfs driver (works everywhere, copies a lot)."""
    return Storage("vfs", ("--storage-driver", "vfs"), "vfs requested")


def overlay(root: Path, mount_program: str | None = None) -> Storage:
    """Overlay in a store of our own under `root` (graph root, run and tmp dirs kept apart).

    The run directory is derived from the graph root, so every process that opens
    this store shares its locks.
    """
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    run = RUN_DIR / key
    flags = ["--storage-driver", "overlay", "--root", str(root / "graph")]
    flags += ["--runroot", str(run / "storage"), "--tmpdir", str(run / "libpod")]
    if mount_program:
        flags += ["--storage-opt", f"overlay.mount_program={mount_program}"]
    name = "fuse-overlayfs" if mount_program else "native overlay"
    return Storage("overlay", tuple(flags), f"{name} in {root}")


def store_root(variant: str) -> Path:
    """Where an overlay variant keeps its store: ~/.cache/brokkr/podman-storage/<variant>."""
    return paths.cache_dir() / "podman-storage" / variant


def probe(storage: Storage) -> str | None:
    """None when podman opens the store with this driver; otherwise podman's reason."""
    command = ["podman", *storage.flags, "info", "--format", "{{.Store.GraphDriverName}}"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode == 0 and result.stdout.strip() == storage.driver:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def overlay_candidates(is_root: bool, fuse_program: str | None) -> tuple[list[Storage], list[str]]:
    """The overlay stores worth probing, in order, and why others were not tried."""
    if not is_root:
        # rootless podman keeps its own store under the user's home; overlay works
        # there on kernels that allow it in a user namespace (else fuse-overlayfs)
        return [
            Storage("overlay", ("--storage-driver", "overlay"), "the user's rootless store")
        ], []
    candidates = [overlay(store_root("overlay"))]
    skipped = []
    if fuse_program:
        candidates.append(overlay(store_root("fuse-overlayfs"), fuse_program))
    else:
        skipped.append("fuse-overlayfs is not installed")
    return candidates, skipped


def select(
    requested: str,
    *,
    is_root: bool,
    fuse_program: str | None,
    check: Callable[[Storage], str | None] = probe,
) -> Storage:
    """The storage for `requested` (auto, overlay or vfs); errors name the fix."""
    if requested not in CHOICES:
        raise StorageError(
            f"{ENV}={requested!r} is not a storage choice; use one of {', '.join(CHOICES)}"
        )
    if requested == "vfs":
        return vfs()
    candidates, reasons = overlay_candidates(is_root, fuse_program)
    for candidate in candidates:
        failure = check(candidate)
        if failure is None:
            return candidate
        reasons.append(f"{candidate.reason}: {failure}")
    why = "; ".join(reasons)
    if requested == "overlay":
        raise StorageError(
            f"overlay storage is not usable here ({why}); run as root on a kernel with "
            f"overlayfs, install fuse-overlayfs, or set {ENV}=vfs"
        )
    return Storage("vfs", vfs().flags, f"overlay not usable ({why})")


@functools.cache
def current() -> Storage:
    """The storage of this process (chosen once; a vfs fallback is announced on stderr)."""
    requested = os.environ.get(ENV, "auto").strip().lower() or "auto"
    chosen = select(
        requested,
        is_root=os.geteuid() == 0,
        fuse_program=shutil.which(FUSE_OVERLAYFS),
    )
    if requested == "auto" and chosen.driver == "vfs":
        print(
            f"podman storage: falling back to the vfs driver, {chosen.reason}; image builds "
            f"copy the root file system at every step and are slower (set {ENV}=vfs to "
            "choose it explicitly)",
            file=sys.stderr,
        )
    return chosen
