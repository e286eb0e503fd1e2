"""Command lines of the local cluster's components (pure functions, unit-tested)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.clusters.certs import Pki
from brokkr_dev.clusters.layout import ClusterDir

HOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
KWOK_POD_CIDR = "10.244.0.1/16"  # kwok's form: first address and prefix
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
PORT_NAMES = (
    "etcd_client",
    "etcd_peer",
    "apiserver",
    "controller_manager",
    "scheduler",
    "kwok",
)
# What the controller manager runs: enough for Deployments, namespaces, garbage
# collection, ServiceAccounts and their tokens, Jobs and aggregated RBAC roles. The
# node lifecycle controller lifts the `not-ready` taint that every new Node gets at
# admission once kwok reports the node Ready (kwok keeps its lease fresh).
CONTROLLERS = (
    "node-lifecycle-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "endpointslice-controller",
)


@dataclass(frozen=True)
class Binaries:
    """Paths of the executables the local provider runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path


def etcd(binary: Path, cluster: ClusterDir, pki: Pki, ports: dict[str, int]) -> list[str]:
    client = f"https://{HOST}:{ports['etcd_client']}"
    peer = f"http://{HOST}:{ports['etcd_peer']}"
    return [
        str(binary),
        "--name=default",
        f"--data-dir={cluster.data / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        # Clients (only the API server) must present a certificate from the cluster CA.
        "--client-cert-auth=true",
        f"--trusted-ca-file={pki.ca}",
        f"--cert-file={pki.crt('etcd-server')}",
        f"--key-file={pki.key('etcd-server')}",
        # A throwaway test cluster: skipping fsync makes it several times faster to
        # start on a busy disk. A clean stop (SIGTERM) still persists everything.
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=1073741824",
        "--log-level=warn",
    ]


def apiserver(binary: Path, cluster: ClusterDir, pki: Pki, ports: dict[str, int]) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=https://{HOST}:{ports['etcd_client']}",
        f"--etcd-cafile={pki.ca}",
        f"--etcd-certfile={pki.crt('apiserver-etcd-client')}",
        f"--etcd-keyfile={pki.key('apiserver-etcd-client')}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={ports['apiserver']}",
        f"--tls-cert-file={pki.crt('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca}",
        "--authorization-mode=Node,RBAC",
        # PodSecurity and ServiceAccount are on by default; NodeRestriction limits
        # what node identities may change, as on a real cluster.
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Privileged Pods are allowed by the server, as on kind, so that PodSecurity
        # admission (not this flag) is what rejects them in restricted namespaces.
        "--allow-privileged=true",
        # Only the kube-scheduler and controller manager read this (to authenticate
        # requests to their own ports); no front proxy exists, so no name is allowed.
        f"--requestheader-client-ca-file={pki.ca}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        # The `kubernetes` Service cannot point at a loopback address; nothing in a
        # fake Pod would use it anyway.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        f"--cert-dir={cluster.certs}",
        "--v=1",
    ]


def controller_manager(
    binary: Path, cluster: ClusterDir, pki: Pki, ports: dict[str, int]
) -> list[str]:
    return [
        str(binary),
        *_component(cluster, "controller-manager", ports["controller_manager"]),
        f"--controllers={','.join(CONTROLLERS)}",
        # Each controller acts as its own ServiceAccount, with the narrow roles that
        # Kubernetes' default RBAC policy gives it.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca}",
        f"--cluster-cidr={POD_CIDR}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
    ]


def scheduler(binary: Path, cluster: ClusterDir, ports: dict[str, int]) -> list[str]:
    return [str(binary), *_component(cluster, "scheduler", ports["scheduler"])]


def _component(cluster: ClusterDir, name: str, port: int) -> list[str]:
    """Flags shared by controller-manager and scheduler: own kubeconfig, serving, one replica."""
    kubeconfig = cluster.config / f"{name}.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={cluster.config / f'{name}-serving'}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def kwok(binary: Path, cluster: ClusterDir, pki: Pki, ports: dict[str, int]) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={cluster.config / 'kwok.kubeconfig'}",
        f"--config={cluster.config / 'kwok.yaml'}",
        # Only nodes that the provider created for kwok, never any other node.
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
        f"--tls-cert-file={pki.crt('kwok')}",
        f"--tls-private-key-file={pki.key('kwok')}",
        f"--node-ip={HOST}",
        f"--node-port={ports['kwok']}",
        f"--server-address={HOST}:{ports['kwok']}",
        "--node-lease-duration-seconds=40",
        f"--cidr={KWOK_POD_CIDR}",
    ]


KWOK_ANNOTATION = "kwok.x-k8s.io/node"


def fake_node(name: str, arch: str = "amd64") -> dict[str, object]:
    """A Node object that kwok adopts and reports Ready, with room for many Pods."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
        },
    }
