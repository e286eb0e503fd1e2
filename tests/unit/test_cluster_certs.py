"""The local cluster's certificates."""

from __future__ import annotations

import ipaddress
import stat

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from brokkr_dev.clusters import certs


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_leaf_certificates_are_signed_by_the_cluster_ca(tmp_path) -> None:
    pki = certs.ensure_pki(tmp_path)
    ca = load(pki.ca)
    for name in ("apiserver", "etcd-server", *certs.IDENTITIES):
        cert = load(pki.crt(name))
        cert.verify_directly_issued_by(ca)
        assert stat.S_IMODE(pki.key(name).stat().st_mode) == 0o600


def test_apiserver_serving_certificate_names_loopback_and_in_cluster_names(tmp_path) -> None:
    pki = certs.ensure_pki(tmp_path)
    cert = load(pki.crt("apiserver"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_client_identities_carry_user_and_groups(tmp_path) -> None:
    pki = certs.ensure_pki(tmp_path)
    admin = load(pki.crt("admin")).subject
    assert admin.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "brokkr-admin"
    assert admin.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    scheduler = load(pki.crt("scheduler")).subject
    assert scheduler.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-scheduler"
    assert scheduler.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []


def test_ca_and_service_account_key_survive_a_restart_and_leaves_are_renewed(tmp_path) -> None:
    first = certs.ensure_pki(tmp_path)
    ca, sa, leaf = first.ca.read_bytes(), first.sa_key.read_bytes(), first.crt("admin").read_bytes()
    second = certs.ensure_pki(tmp_path)
    assert second.ca.read_bytes() == ca
    assert second.sa_key.read_bytes() == sa
    assert second.crt("admin").read_bytes() != leaf
