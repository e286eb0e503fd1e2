"""The `kind` provider: a kind cluster whose pods run real containers, offline.

It runs on the Docker engine from `brokkr_dev.containers.engine` (one that answers, or our own
dockerd) with the node image from `brokkr_dev.containers.nodeimage` (built here once, with every
image the cluster needs inside, or kind's published image where it can be pulled).
It shares the cluster directory, kubeconfig location, status report and readiness
checks with `local`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from brokkr_dev.base import toolchain
from brokkr_dev.base.log import Log
from brokkr_dev.clusters import noderegistries, podnetwork
from brokkr_dev.clusters.api import ClusterClient, wait_for
from brokkr_dev.clusters.common import (
    ClusterError,
    ClusterStatus,
    check_provider,
    ready_nodes,
    server_version,
    wait_until_usable,
)
from brokkr_dev.clusters.layout import ClusterDir
from brokkr_dev.containers.engine import Engine, EngineError, ensure_engine
from brokkr_dev.containers.nodeimage import kube_versions, recipe
from brokkr_dev.containers.nodeimage.build import NodeImageError, ensure_node_image, pins
from brokkr_dev.containers.podman import podman

START_TIMEOUT = 300.0
# Workloads of the node image that must be Ready before tests use the cluster.
SYSTEM_WORKLOADS = (
    ("kube-system", "deployments", "coredns"),
    ("kube-system", "daemonsets", "kube-proxy"),
    ("local-path-storage", "deployments", "local-path-provisioner"),
)
NETWORK_POLICY_WORKLOAD = ("kube-system", "daemonsets", "kube-router")


def kind_config(etcd_tag: str | None, coredns_tag: str | None = None, workers: int = 0) -> str:
    """The kind cluster configuration: a control-plane node (and `workers` worker
    nodes), and the kubeadm patches these hosts need. kubelet >= 1.35 refuses cgroup v1 unless told otherwise (these VMs are
    hybrid); our node image carries the pinned etcd and CoreDNS, not the defaults of
    each kubeadm release. The patches match by kind, so they apply to the kubeadm
    config kind writes for every node minor (v1beta3 before 1.36, v1beta4 from it)."""
    patches = ["    kind: KubeletConfiguration\n    failCgroupV1: false\n"]
    if etcd_tag or coredns_tag:
        cluster = "    kind: ClusterConfiguration\n"
        if etcd_tag:
            cluster += f"    etcd:\n      local:\n        imageTag: {etcd_tag}\n"
        if coredns_tag:
            cluster += f"    dns:\n      imageTag: {coredns_tag}\n"
        patches.append(cluster)
    body = "".join(f"  - |\n{patch}" for patch in patches)
    return (
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
        "nodes:\n  - role: control-plane\n"
        + "  - role: worker\n" * workers
        + f"kubeadmConfigPatches:\n{body}"
        + "containerdConfigPatches:\n  - |\n"
        + "".join(f"    {line}\n" for line in noderegistries.CONTAINERD_PATCH.splitlines())
    )


def ready_workload(resource: str, obj: dict) -> bool:
    """True when a Deployment or DaemonSet has all its wanted Pods ready."""
    status = obj.get("status", {})
    if resource == "daemonsets":
        wanted = status.get("desiredNumberScheduled", 0)
        return wanted > 0 and status.get("numberReady", 0) == wanted
    wanted = obj.get("spec", {}).get("replicas", 1)
    return status.get("readyReplicas", 0) >= wanted


class KindProvider:
    """A kind cluster named `brokkr-<name>` whose kubeconfig is kept in the cluster dir,
    on nodes of one pinned Kubernetes minor (`kubernetes`, e.g. "1.35"; the newest
    pinned when not given): one control-plane node, plus `workers` worker nodes whose
    pod networks brokkr_dev.clusters.podnetwork joins."""

    provider = "kind"

    def __init__(
        self,
        name: str,
        *,
        base: Path | None = None,
        log: Log = print,
        kubernetes: str | None = None,
        workers: int = 0,
    ) -> None:
        try:
            self.dir = ClusterDir.of(name, base)
        except ValueError as exc:
            raise ClusterError(str(exc)) from exc
        self.kubernetes = kube_versions.choose(kubernetes)
        if workers < 0:
            raise ClusterError(f"workers must be 0 or more, not {workers}")
        self.name = name
        self.log = log
        self.workers = workers
        self._engine: Engine | None = None
        self.image: str | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.dir.kubeconfig

    @property
    def kind_name(self) -> str:
        return f"brokkr-{self.name}"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = ensure_engine(self.log)
            except EngineError as exc:
                raise ClusterError(
                    f"the kind provider needs a Docker engine: {exc}. Or use "
                    "`--provider local`, which needs no container engine."
                ) from exc
        return self._engine

    def exists(self) -> bool:
        """True when kind knows a cluster of this name on the engine."""
        return self.kind_name in self._kind("get", "clusters").split()

    def up(self) -> ClusterStatus:
        """Create the kind cluster, or reuse it when it already answers."""
        check_provider(self.dir, self.provider)
        if self.exists():
            self._kind("export", "kubeconfig", "--name", self.kind_name)
            if ClusterClient.from_kubeconfig(self.kubeconfig, timeout=5).healthy():
                running = self.status()
                self.check_minor(running.version)
                self.log(f"cluster {self.name} is already running; nothing to do")
                return running
            self.log(f"cluster {self.name} exists but does not answer: recreating it")
            self.down()
        started = time.monotonic()
        try:
            self.image = ensure_node_image(self.engine, self.log, kubernetes=self.kubernetes)
        except (NodeImageError, EngineError) as exc:
            raise ClusterError(f"no kind node image: {exc}") from exc
        self.dir.create()
        self.dir.provider_file.write_text(self.provider + "\n")
        config = self.dir.config / "kind.yaml"
        ours = self.image.startswith(recipe.REPOSITORY)
        versions = pins(kubernetes=self.kubernetes)
        config.write_text(
            kind_config(
                recipe.etcd_image_tag(versions), recipe.coredns_image_tag(versions), self.workers
            )
            if ours
            else kind_config(None, workers=self.workers)
        )
        created = time.monotonic()
        self._kind(
            "create",
            "cluster",
            "--name",
            self.kind_name,
            "--image",
            self.image,
            "--config",
            str(config),
            "--wait",
            f"{int(START_TIMEOUT)}s",
        )
        self.kubeconfig.chmod(0o600)
        if self.workers and ours:  # kindnetd does this on kind's published image
            self.join_pod_networks()
        self.wait_ready(check_network_policy=ours)
        self.log(
            f"cluster {self.name} ready in {time.monotonic() - created:.0f} s "
            f"({time.monotonic() - started:.0f} s with the node image step); "
            f"kubeconfig: {self.kubeconfig}"
        )
        return self.status()

    def join_pod_networks(self) -> None:
        """Each node its own pod range, routes between them (podnetwork), and the pods
        that started with an address of the static range started again."""
        client = ClusterClient.from_kubeconfig(self.kubeconfig)
        try:
            wanted = 1 + self.workers

            def registered() -> bool:
                items = client.get("/api/v1/nodes")["items"]
                return len(items) == wanted and all(i["spec"].get("podCIDR") for i in items)

            wait_for(registered, START_TIMEOUT, f"{wanted} nodes registered with a pod range")
            nodes = podnetwork.nodes_of(client.get("/api/v1/nodes")["items"])
            podnetwork.wire(nodes, self.node_run)
            for pod in podnetwork.stale_pods(client.get("/api/v1/pods")["items"], nodes):
                meta = pod["metadata"]
                client.request(
                    "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                )
            self.log(
                "pod networks joined: "
                + ", ".join(f"{node.name} {node.pod_cidr}" for node in nodes)
            )
        finally:
            client.close()

    def node_run(self, node: str, *command: str, input_text: str | None = None) -> str:
        """Run a command in a node's container (`input_text` on its stdin)."""
        flags = ("-i",) if input_text is not None else ()
        return self.engine.docker("exec", *flags, node, *command, input_text=input_text)

    def node_names(self) -> list[str]:
        """The node containers' names (kind's node names)."""
        return self._kind("get", "nodes", "--name", self.kind_name).split()

    def gateway(self) -> str:
        """The IPv4 address the nodes reach this machine at (their network's gateway)."""
        node = self.node_names()[0]
        networks = self.engine.docker(
            "inspect", "--format", "{{json .NetworkSettings.Networks}}", node
        )
        try:
            return noderegistries.gateway_ipv4(networks)
        except ValueError as exc:
            raise ClusterError(str(exc)) from exc

    def trust_registry(self, host: str) -> None:
        """Let the nodes pull from the plain-HTTP registry at `host` (HOST:PORT)."""
        try:
            noderegistries.trust(self.node_names(), host, self.node_run)
        except ValueError as exc:
            raise ClusterError(str(exc)) from exc

    def forget_registry(self, host: str) -> None:
        """Undo `trust_registry` (the nodes keep what they pulled)."""
        noderegistries.forget(self.node_names(), host, self.node_run)

    def check_minor(self, server_version: str | None) -> None:
        """Refuse to reuse a running cluster of another Kubernetes minor than asked for."""
        minor = kube_versions.minor_of(server_version or "")
        if minor and minor != self.kubernetes.minor:
            raise ClusterError(
                f"kind cluster {self.name} runs Kubernetes {server_version}, not "
                f"{self.kubernetes.minor}: delete it (`invoke cluster.down --provider kind "
                f"--name {self.name}`) or give the cluster another name"
            )

    def wait_ready(
        self, *, check_network_policy: bool = True, timeout: float = START_TIMEOUT
    ) -> None:
        """Wait for the node, DNS, kube-proxy, storage and NetworkPolicy enforcement."""
        client = ClusterClient.from_kubeconfig(self.kubeconfig)
        wait_until_usable(client, timeout)
        workloads = list(SYSTEM_WORKLOADS)
        if check_network_policy:
            workloads.append(NETWORK_POLICY_WORKLOAD)
        for namespace, resource, name in workloads:
            path = f"/apis/apps/v1/namespaces/{namespace}/{resource}/{name}"

            def ready(resource: str = resource, path: str = path) -> bool:
                return ready_workload(resource, client.get(path))

            wait_for(ready, timeout, f"{resource[:-1]} {namespace}/{name} to be ready")
        client.close()

    def down(self) -> None:
        """Delete the kind cluster (kind removes its node container)."""
        self._kind("delete", "cluster", "--name", self.kind_name)
        self.kubeconfig.unlink(missing_ok=True)
        self.log(f"cluster {self.name} deleted")

    def load_images(self, images: Iterable[str | Path]) -> None:
        """Put images into the node: podman image references (saved with podman) or
        image archives (docker-archive or OCI tar files)."""
        archives = [Path(i) for i in images if isinstance(i, Path)]
        references = [i for i in images if isinstance(i, str)]
        with tempfile.TemporaryDirectory(prefix="brokkr-kind-load-") as tmp:
            if references:
                bundle = Path(tmp) / "images.tar"
                started = time.monotonic()
                result = subprocess.run(
                    podman("save", "--multi-image-archive", "--output", str(bundle), *references),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode != 0:
                    raise ClusterError(
                        f"`podman save {' '.join(references)}` failed: {result.stderr.strip()}"
                    )
                self.log(
                    f"podman save of {len(references)} image(s): {time.monotonic() - started:.0f} s"
                )
                archives.append(bundle)
            for archive in archives:
                started = time.monotonic()
                self._kind("load", "image-archive", str(archive), "--name", self.kind_name)
                self.log(f"kind load {archive.name}: {time.monotonic() - started:.0f} s")

    def status(self) -> ClusterStatus:
        result = ClusterStatus(self.name, self.provider, self.kubeconfig, running=False)
        if not self.kubeconfig.exists():
            result.detail = "no kubeconfig: the cluster was never started"
            return result
        client = ClusterClient.from_kubeconfig(self.kubeconfig, timeout=5)
        if client.healthy():
            result.running = True
            result.server = client.server
            result.version = server_version(client)
            result.ready_nodes = ready_nodes(client)
        else:
            result.detail = "the API server does not answer"
        return result

    def _kind(self, *args: str) -> str:
        try:
            kind = toolchain.ensure(toolchain.load_manifest()["kind"], log=self.log)
        except toolchain.ToolError as exc:
            raise ClusterError(str(exc)) from exc
        env = {**os.environ, **self.engine.env, "KUBECONFIG": str(self.kubeconfig)}
        env.pop("KIND_EXPERIMENTAL_PROVIDER", None)  # always the Docker engine
        result = subprocess.run(
            [str(kind), *args], capture_output=True, text=True, env=env, check=False
        )
        if result.returncode != 0:
            raise ClusterError(
                f"`kind {' '.join(args)}` failed (DOCKER_HOST={self.engine.host}):\n"
                f"{result.stderr.strip()[-3000:]}"
            )
        return result.stdout
