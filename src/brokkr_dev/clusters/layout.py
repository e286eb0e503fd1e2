"""Where one cluster keeps its files: data, certificates, logs, PIDs, kubeconfig."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import paths

NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


def validate_name(name: str) -> str:
    """Return the cluster name, or raise ValueError saying what a valid one looks like."""
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"invalid cluster name {name!r}: use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (for example `dev` or `test-1`)"
        )
    return name


def clusters_root() -> Path:
    """The directory that holds every cluster of this clone (`.local/clusters`)."""
    return paths.state_dir() / "clusters"


@dataclass(frozen=True)
class ClusterDir:
    """The files of one cluster under `<base>/<name>/`."""

    name: str
    base: Path

    @classmethod
    def of(cls, name: str, base: Path | None = None) -> ClusterDir:
        """The directory of cluster `name` (under `.local/clusters` unless `base` is given)."""
        return cls(validate_name(name), base if base is not None else clusters_root())

    @property
    def root(self) -> Path:
        return self.base / self.name

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig that users and tests read."""
        return self.root / "kubeconfig"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def config(self) -> Path:
        """Component kubeconfigs and configuration files (rewritten at every start)."""
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def provider_file(self) -> Path:
        """Records which provider made the cluster, so a mix-up is reported."""
        return self.root / "provider"

    def create(self) -> None:
        """Make the directories, readable by the owner only (they hold keys)."""
        for directory in (self.root, self.data, self.certs, self.config, self.logs, self.pids):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
