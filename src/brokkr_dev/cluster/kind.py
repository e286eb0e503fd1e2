"""The `kind` provider: a kind cluster, for machines where Docker or Podman works.

It shares the cluster directory, kubeconfig location, status report and readiness
checks with `local`; kind itself runs the control plane in a container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from brokkr_dev import toolchain
from brokkr_dev.cluster.api import KubeClient
from brokkr_dev.cluster.common import (
    ClusterError,
    ClusterStatus,
    Log,
    ready_nodes,
    server_version,
    wait_until_usable,
)
from brokkr_dev.cluster.layout import ClusterDir
from brokkr_dev.cluster.local import _check_provider

ENGINES = ("docker", "podman")
START_TIMEOUT = 300.0


def find_engine(engines: tuple[str, ...] = ENGINES) -> tuple[str | None, list[str]]:
    """The first container engine that answers `<engine> info`, and why each other
    one did not. A CLI without a running engine (docker without dockerd) does not count."""
    reasons = []
    for engine in engines:
        binary = shutil.which(engine)
        if binary is None:
            reasons.append(f"{engine}: not installed")
            continue
        try:
            result = subprocess.run(
                [binary, "info"], capture_output=True, text=True, timeout=30, check=False
            )
        except subprocess.TimeoutExpired:
            reasons.append(f"{engine}: `{engine} info` did not answer within 30 s")
            continue
        if result.returncode == 0:
            return engine, reasons
        last = (result.stderr or result.stdout).strip().splitlines()
        reasons.append(f"{engine}: `{engine} info` failed: {last[-1] if last else 'no output'}")
    return None, reasons


class KindProvider:
    """A kind cluster named `brokkr-<name>` whose kubeconfig is kept in the cluster dir."""

    provider = "kind"

    def __init__(self, name: str, *, base: Path | None = None, log: Log = print) -> None:
        try:
            self.dir = ClusterDir.of(name, base)
        except ValueError as exc:
            raise ClusterError(str(exc)) from exc
        self.name = name
        self.log = log

    @property
    def kubeconfig(self) -> Path:
        return self.dir.kubeconfig

    @property
    def kind_name(self) -> str:
        return f"brokkr-{self.name}"

    def up(self) -> ClusterStatus:
        """Create the kind cluster (node image at the pinned Kubernetes version)."""
        _check_provider(self.dir, self.provider)
        engine = self._engine()
        if self.kind_name in self._kind(engine, "get", "clusters").split():
            self.log(f"cluster {self.name} is already running; nothing to do")
            self._kind(engine, "export", "kubeconfig", "--name", self.kind_name)
            return self.status()
        self.dir.create()
        self.dir.provider_file.write_text(self.provider + "\n")
        version = toolchain.load_manifest()["kubernetes"].version
        self._kind(
            engine,
            "create",
            "cluster",
            "--name",
            self.kind_name,
            "--image",
            f"kindest/node:{version}",
            "--wait",
            f"{int(START_TIMEOUT)}s",
        )
        wait_until_usable(KubeClient.from_kubeconfig(self.kubeconfig), START_TIMEOUT)
        self.log(f"kubeconfig: {self.kubeconfig}")
        return self.status()

    def down(self) -> None:
        """Delete the kind cluster (kind removes its containers)."""
        engine = self._engine()
        self._kind(engine, "delete", "cluster", "--name", self.kind_name)
        self.log(f"cluster {self.name} deleted")

    def status(self) -> ClusterStatus:
        result = ClusterStatus(self.name, self.provider, self.kubeconfig, running=False)
        if not self.kubeconfig.exists():
            result.detail = "no kubeconfig: the cluster was never started"
            return result
        client = KubeClient.from_kubeconfig(self.kubeconfig, timeout=5)
        if client.healthy():
            result.running = True
            result.server = client.server
            result.version = server_version(client)
            result.ready_nodes = ready_nodes(client)
        else:
            result.detail = "the API server does not answer"
        return result

    def _engine(self) -> str:
        engine, reasons = find_engine()
        if engine is None:
            raise ClusterError(
                "the kind provider needs a working container engine, and none was found ("
                + "; ".join(reasons)
                + "). Start Docker or Podman, or use `--provider local`, which needs no "
                "container engine."
            )
        return engine

    def _kind(self, engine: str, *args: str) -> str:
        try:
            kind = toolchain.ensure(toolchain.load_manifest()["kind"], log=self.log)
        except toolchain.ToolError as exc:
            raise ClusterError(str(exc)) from exc
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        if engine == "podman":
            env["KIND_EXPERIMENTAL_PROVIDER"] = "podman"
        result = subprocess.run(
            [str(kind), *args], capture_output=True, text=True, env=env, check=False
        )
        if result.returncode != 0:
            hint = ""
            if "failed to pull image" in result.stderr:
                hint = (
                    "\nkind pulls its node image from Docker Hub; where that registry is "
                    "out of reach, use `--provider local`."
                )
            raise ClusterError(
                f"`kind {' '.join(args)}` failed (engine: {engine}):\n"
                f"{result.stderr.strip()[-2000:]}{hint}"
            )
        return result.stdout
