"""Command lines of the local cluster's components."""

from __future__ import annotations

from pathlib import Path

from brokkr_dev.clusters import flags
from brokkr_dev.clusters.certs import Pki
from brokkr_dev.clusters.layout import ClusterDir

PORTS = {
    "etcd_client": 41001,
    "etcd_peer": 41002,
    "apiserver": 41003,
    "controller_manager": 41004,
    "scheduler": 41005,
    "kwok": 41006,
}
CLUSTER = ClusterDir.of("dev", Path("/state"))
PKI = Pki(CLUSTER.certs)


def as_dict(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv[1:])


def test_every_port_name_is_allocated_by_the_provider() -> None:
    assert set(flags.PORT_NAMES) == set(PORTS)


def test_apiserver_enforces_rbac_node_authz_and_uses_tls_to_etcd() -> None:
    args = as_dict(flags.apiserver(Path("/bin/kube-apiserver"), CLUSTER, PKI, PORTS))
    assert args["authorization-mode"] == "Node,RBAC"
    assert "NodeRestriction" in args["enable-admission-plugins"]
    assert "disable-admission-plugins" not in args  # PodSecurity and ServiceAccount stay on
    assert args["etcd-servers"] == "https://127.0.0.1:41001"
    assert args["etcd-certfile"] == "/state/dev/certs/apiserver-etcd-client.crt"
    assert args["secure-port"] == "41003"
    assert args["bind-address"] == "127.0.0.1"
    assert args["service-account-signing-key-file"] == "/state/dev/certs/service-account.key"
    assert args["client-ca-file"] == "/state/dev/certs/ca.crt"


def test_etcd_listens_on_loopback_only_and_requires_client_certificates() -> None:
    args = as_dict(flags.etcd(Path("/bin/etcd"), CLUSTER, PKI, PORTS))
    assert args["listen-client-urls"] == "https://127.0.0.1:41001"
    assert args["listen-peer-urls"] == "http://127.0.0.1:41002"
    assert args["client-cert-auth"] == "true"
    assert args["data-dir"] == "/state/dev/data/etcd"


def test_controller_manager_runs_the_controllers_tests_rely_on() -> None:
    args = as_dict(
        flags.controller_manager(Path("/bin/kube-controller-manager"), CLUSTER, PKI, PORTS)
    )
    controllers = args["controllers"].split(",")
    for needed in (
        "namespace-controller",
        "garbage-collector-controller",
        "deployment-controller",
        "replicaset-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
    ):
        assert needed in controllers
    assert "node-lifecycle-controller" in controllers  # lifts the not-ready taint
    assert args["use-service-account-credentials"] == "true"
    assert args["secure-port"] == "41004"


def test_components_use_distinct_ports_and_their_own_kubeconfigs() -> None:
    scheduler = as_dict(flags.scheduler(Path("/bin/kube-scheduler"), CLUSTER, PORTS))
    kwok = as_dict(flags.kwok(Path("/bin/kwok"), CLUSTER, PKI, PORTS))
    assert scheduler["secure-port"] == "41005"
    assert scheduler["kubeconfig"] == "/state/dev/config/scheduler.kubeconfig"
    assert kwok["server-address"] == "127.0.0.1:41006"
    assert kwok["kubeconfig"] == "/state/dev/config/kwok.kubeconfig"
    assert kwok["manage-all-nodes"] == "false"


def test_fake_node_is_adopted_by_kwok_via_its_annotation() -> None:
    node = flags.fake_node("kwok-node-0", "arm64")
    metadata = node["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["annotations"][flags.KWOK_ANNOTATION] == "fake"
    kwok = as_dict(flags.kwok(Path("/bin/kwok"), CLUSTER, PKI, PORTS))
    assert kwok["manage-nodes-with-annotation-selector"] == f"{flags.KWOK_ANNOTATION}=fake"
    assert metadata["labels"]["kubernetes.io/arch"] == "arm64"
