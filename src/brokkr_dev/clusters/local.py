"""The `local` provider: real Kubernetes control-plane processes plus kwok.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the pinned
upstream binaries (tools.toml); kwok registers fake nodes and plays the kubelet's
part for Pods (they get scheduled and report Running/Ready, but no container runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from brokkr_dev.base import process, toolchain
from brokkr_dev.base.log import Log
from brokkr_dev.clusters import certs, flags, kubeconfig, kwok_stages, ports
from brokkr_dev.clusters.api import ClusterApiError, ClusterClient, wait_for
from brokkr_dev.clusters.common import (
    ClusterError,
    ClusterStatus,
    check_provider,
    ready_nodes,
    server_version,
)
from brokkr_dev.clusters.layout import ClusterDir

START_TIMEOUT = 120.0
NODE_LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
# Start order; `down` stops in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class LocalProvider:
    """A cluster of local processes in `.local/clusters/<name>/` (or under `base`)."""

    provider = "local"

    def __init__(
        self,
        name: str,
        *,
        base: Path | None = None,
        nodes: int = 1,
        log: Log = print,
        timeout: float = START_TIMEOUT,
        die_with_parent: bool = False,
    ) -> None:
        try:
            self.dir = ClusterDir.of(name, base)
        except ValueError as exc:
            raise ClusterError(str(exc)) from exc
        if nodes < 1:
            raise ClusterError(f"a local cluster needs at least 1 node, got {nodes}")
        self.name = name
        self.nodes = nodes
        self.log = log
        self.timeout = timeout
        self.die_with_parent = die_with_parent

    @property
    def kubeconfig(self) -> Path:
        return self.dir.kubeconfig

    # --- interface -----------------------------------------------------------------

    def up(self) -> ClusterStatus:
        """Start the cluster and wait until a node is Ready; a no-op if it runs."""
        check_provider(self.dir, self.provider)
        running = self._running()
        if running and len(running) == len(COMPONENTS) and self._client().healthy():
            self.log(f"cluster {self.name} is already running; nothing to do")
            self.log(f"kubeconfig: {self.kubeconfig}")
            return self.status()
        if running:
            self.log(f"cluster {self.name} is partly running: stopping it before starting")
            self.down()
        started = time.monotonic()
        binaries = ensure_binaries(self.log)
        self.dir.create()
        self.dir.provider_file.write_text(self.provider + "\n")
        pki = certs.ensure_pki(self.dir.certs)
        for attempt in (1, 2):
            chosen = ports.allocate(flags.PORT_NAMES)
            ports.save(self.dir.ports_file, chosen)
            self._write_configs(pki, chosen)
            try:
                self._start_all(binaries, pki, chosen)
                break
            except ClusterError as exc:
                self.down()
                # Another program may take a port between choosing and binding it.
                if attempt == 2 or "address already in use" not in str(exc):
                    raise
                self.log(f"a port was taken meanwhile ({exc}); retrying with new ports")
            except BaseException:
                self.down()
                raise
        elapsed = time.monotonic() - started
        self.log(f"cluster {self.name} is up in {elapsed:.1f} s")
        self.log(f"kubeconfig: {self.kubeconfig}")
        self.log(f"try: KUBECONFIG={self.kubeconfig} bin/kubectl get nodes")
        return self.status()

    def down(self) -> None:
        """Stop every process this cluster started (by PID); keep its data."""
        if not self.dir.pids.exists():
            self.log(f"cluster {self.name} is not running")
            return
        found = {r.name: r for r in process.records(self.dir.pids)}
        stopped = []
        for name in reversed(COMPONENTS):
            record = found.pop(name, None)
            if record and process.stop(record, self.dir.pids):
                stopped.append(name)
        for record in found.values():  # PID files of unknown names: stop them as well
            if process.stop(record, self.dir.pids):
                stopped.append(record.name)
        if stopped:
            self.log(f"cluster {self.name}: stopped {', '.join(stopped)}")
        else:
            self.log(f"cluster {self.name} is not running")

    def status(self) -> ClusterStatus:
        """Which processes run, and what the API server says."""
        result = ClusterStatus(self.name, self.provider, self.kubeconfig, running=False)
        records = (
            {r.name: r for r in process.records(self.dir.pids)} if self.dir.pids.exists() else {}
        )
        for name in COMPONENTS:
            record = records.get(name)
            if record and process.alive(record):
                rss = process.rss_kib(record.pid) // 1024
                result.processes[name] = f"running, pid {record.pid}, {rss} MiB resident"
            else:
                result.processes[name] = "stopped"
        if not any(state != "stopped" for state in result.processes.values()):
            return result
        client = self._client()
        if client.healthy():
            result.running = True
            result.server = client.server
            result.version = server_version(client)
            try:
                result.ready_nodes = ready_nodes(client)
            except ClusterApiError as exc:
                result.detail = f"cannot list nodes: {exc}"
        else:
            result.detail = f"the API server does not answer; logs are in {self.dir.logs}"
        return result

    # --- steps ---------------------------------------------------------------------

    def _running(self) -> list[str]:
        if not self.dir.pids.exists():
            return []
        return [r.name for r in process.records(self.dir.pids) if process.alive(r)]

    def _client(self) -> ClusterClient:
        if not self.kubeconfig.exists():
            raise ClusterError(f"cluster {self.name} has no kubeconfig at {self.kubeconfig}")
        return ClusterClient.from_kubeconfig(self.kubeconfig, timeout=5)

    def _write_configs(self, pki: certs.Pki, chosen: dict[str, int]) -> None:
        server = f"https://{flags.HOST}:{chosen['apiserver']}"
        ca = pki.ca.read_bytes()
        for name, target in (
            ("admin", self.kubeconfig),
            ("controller-manager", self.dir.config / "controller-manager.kubeconfig"),
            ("scheduler", self.dir.config / "scheduler.kubeconfig"),
            ("kwok", self.dir.config / "kwok.kubeconfig"),
        ):
            credentials = kubeconfig.Credentials(
                server, ca, pki.crt(name).read_bytes(), pki.key(name).read_bytes()
            )
            text = kubeconfig.render(
                f"brokkr-{self.name}", certs.IDENTITIES[name].user, credentials
            )
            kubeconfig.write(target, text)
        stages = kwok_stages.stages_file(_kwok_version())
        (self.dir.config / "kwok.yaml").write_text(stages.read_text())

    def _start_all(self, binaries: flags.Binaries, pki: certs.Pki, chosen: dict[str, int]) -> None:
        d = self.dir
        self._start("etcd", flags.etcd(binaries.etcd, d, pki, chosen))
        self._start("kube-apiserver", flags.apiserver(binaries.kube_apiserver, d, pki, chosen))
        client = ClusterClient.from_kubeconfig(self.kubeconfig, timeout=5)
        self._await(client.healthy, "the API server to report ready", "kube-apiserver")
        self._start(
            "kube-controller-manager",
            flags.controller_manager(binaries.kube_controller_manager, d, pki, chosen),
        )
        self._start("kube-scheduler", flags.scheduler(binaries.kube_scheduler, d, chosen))
        arch = toolchain.host_platform()[1]
        nodes = [f"kwok-node-{index}" for index in range(self.nodes)]
        for node in nodes:
            # A lease left by the kwok of the previous start would keep the new kwok
            # from managing the node until it expires: that kwok is gone, drop it.
            lease = f"{NODE_LEASES}/{node}"
            if client.exists(lease):
                client.delete(lease)
            if not client.exists(f"/api/v1/nodes/{node}"):
                client.create("/api/v1/nodes", flags.fake_node(node, arch))
        self._start("kwok", flags.kwok(binaries.kwok, d, pki, chosen))
        for node in nodes:
            self._await(
                partial(client.exists, f"{NODE_LEASES}/{node}"), f"kwok to take {node}", "kwok"
            )
        self._await(
            lambda: ready_nodes(client), "a Ready node without taints", "kube-controller-manager"
        )
        self._await(
            lambda: client.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            "the default ServiceAccount",
            "kube-controller-manager",
        )

    def _start(self, name: str, argv: list[str]) -> None:
        process.start(name, argv, self.dir.pids, self.dir.logs, self.die_with_parent)

    def _await(self, condition: Callable[[], object], what: str, component: str) -> None:
        """Wait for a condition while checking that every started process still runs."""

        def check() -> bool:
            for record in process.records(self.dir.pids):
                if not process.alive(record):
                    log = self.dir.logs / f"{record.name}.log"
                    raise ClusterError(
                        f"{record.name} exited during start-up; last lines of {log}:\n{_tail(log)}"
                    )
            return bool(condition())

        try:
            wait_for(check, self.timeout, what)
        except TimeoutError as exc:
            log = self.dir.logs / f"{component}.log"
            raise ClusterError(f"{exc}; last lines of {log}:\n{_tail(log)}") from exc


def ensure_binaries(log: Log = print) -> flags.Binaries:
    """Build or find the pinned binaries (cached per version; instant the second time)."""
    manifest = toolchain.load_manifest()
    try:
        kubernetes = manifest["kubernetes"]
        if (
            toolchain.status(kubernetes).status != "ok"
            and not toolchain.cache_root(kubernetes).exists()
        ):
            log(
                f"building Kubernetes {kubernetes.version} from source: about 10 CPU-minutes "
                "(7-8 min on two idle cores), once per machine; see docs/kubernetes.md"
            )
        apiserver = toolchain.ensure(kubernetes, log=log)
        etcd = toolchain.ensure(manifest["etcd"], log=log)
        kwok = toolchain.ensure(manifest["kwok"], log=log)
    except KeyError as exc:
        raise ClusterError(f"tools.toml has no [{exc.args[0]}] entry") from exc
    except toolchain.ToolError as exc:
        raise ClusterError(str(exc)) from exc
    directory = apiserver.resolve().parent
    return flags.Binaries(
        etcd=etcd.resolve(),
        kube_apiserver=apiserver.resolve(),
        kube_controller_manager=directory / "kube-controller-manager",
        kube_scheduler=directory / "kube-scheduler",
        kwok=kwok.resolve(),
    )


def _kwok_version() -> str:
    return toolchain.load_manifest()["kwok"].version


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
