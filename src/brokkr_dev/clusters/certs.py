"""The cluster's certificates and keys, made with `cryptography` at start.

The CA and the service-account signing key are made once per cluster and kept, so
kubeconfigs and tokens stay valid across restarts. Leaf certificates (serving and
client) are issued again at every start: cheap with EC keys, and never stale.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
# In-cluster names of the API server; 10.96.0.1 is the first address of the
# service range given to the API server (flags.SERVICE_CIDR).
APISERVER_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", "10.96.0.1")


@dataclass(frozen=True)
class Identity:
    """A client certificate: user name (CN) and groups (O)."""

    user: str
    groups: tuple[str, ...] = ()


# Who each component is to the API server. The controller manager and scheduler use
# the user names that Kubernetes' default RBAC roles are bound to. kwok acts for every
# fake node and pod, so it gets the admin group; it runs only inside this test cluster.
IDENTITIES: dict[str, Identity] = {
    "admin": Identity("brokkr-admin", ("system:masters",)),
    "controller-manager": Identity("system:kube-controller-manager"),
    "scheduler": Identity("system:kube-scheduler"),
    "kwok": Identity("kwok-controller", ("system:masters",)),
    "apiserver-etcd-client": Identity("kube-apiserver-etcd-client"),
}


@dataclass(frozen=True)
class Pki:
    """Paths of the files that `ensure_pki` writes into a cluster's certs directory."""

    directory: Path

    def crt(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.crt("ca")

    @property
    def sa_key(self) -> Path:
        return self.key("service-account")

    @property
    def sa_pub(self) -> Path:
        return self.directory / "service-account.pub"


def ensure_pki(directory: Path, now: datetime.datetime | None = None) -> Pki:
    """Create the CA and SA key once, then issue every leaf certificate afresh."""
    now = now or datetime.datetime.now(datetime.UTC)
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (pki.ca.exists() and pki.key("ca").exists()):
        ca_key = _new_key()
        _write_key(pki.key("ca"), ca_key)
        _write_cert(pki.ca, _ca_certificate(ca_key, now))
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        sa_key = _new_key()
        _write_key(pki.sa_key, sa_key)
        pki.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    ca_key = _load_key(pki.key("ca"))
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    _issue(pki, "apiserver", Identity("kube-apiserver"), ca_cert, ca_key, now=now, server=True)
    _issue(pki, "etcd-server", Identity("etcd"), ca_cert, ca_key, now=now, server=True)
    for name, identity in IDENTITIES.items():
        _issue(pki, name, identity, ca_cert, ca_key, now=now, server=False)
    return pki


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key; delete the cluster directory")
    return key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "brokkr-local-ca")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue(
    pki: Pki,
    name: str,
    identity: Identity,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    now: datetime.datetime,
    server: bool,
) -> None:
    key = _new_key()
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in identity.groups]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.user))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in APISERVER_DNS]
                + [x509.IPAddress(ipaddress.ip_address(i)) for i in APISERVER_IPS]
            ),
            critical=False,
        )
    _write_key(pki.key(name), key)
    _write_cert(pki.crt(name), builder.sign(ca_key, hashes.SHA256()))
