"""Well-known locations of the repository, the project-local bin/ and the cache."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
# Project-local tool directory: every pinned CLI is linked here (gitignored).
BIN_DIR = Path(os.environ.get("BROKKR_BIN_DIR", REPO_ROOT / "bin"))
TOOLS_MANIFEST = REPO_ROOT / "tools.toml"


def cache_dir() -> Path:
    """Machine-wide cache shared by every clone (tools, Kubernetes binaries, base images).

    Kept outside the work tree so that a fresh clone (as CI makes) reuses what an
    earlier run built. Override with BROKKR_CACHE_DIR.
    """
    explicit = os.environ.get("BROKKR_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "brokkr"


def state_dir() -> Path:
    """Per-clone runtime state (local clusters, databases, logs); gitignored."""
    return Path(os.environ.get("BROKKR_STATE_DIR", REPO_ROOT / ".local"))
