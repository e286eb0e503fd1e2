"""Writing kubeconfig files (client-certificate and token users) for the clusters we start.

Reading one is lightkube's job (`brokkr.kubeaccess`); `load` only turns its view of a
kubeconfig back into the static credentials `render` writes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import yaml
from lightkube.config.models import User

from brokkr import kubeaccess


@dataclass(frozen=True)
class Credentials:
    """Everything a client needs to talk to one API server."""

    server: str
    ca_pem: bytes
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None


def render(context: str, user: str, credentials: Credentials) -> str:
    """A kubeconfig with one cluster, user and context, all named after `context`,
    with every certificate embedded so the file works when copied elsewhere."""
    user_entry: dict[str, str] = {}
    if credentials.cert_pem and credentials.key_pem:
        user_entry["client-certificate-data"] = _b64(credentials.cert_pem)
        user_entry["client-key-data"] = _b64(credentials.key_pem)
    if credentials.token:
        user_entry["token"] = credentials.token
    if not user_entry:
        raise ValueError("a kubeconfig user needs a client certificate and key, or a token")
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": credentials.server,
                    "certificate-authority-data": _b64(credentials.ca_pem),
                },
            }
        ],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False)


def write(path: Path, text: str) -> None:
    """Write a kubeconfig readable by its owner only (it holds a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def load(path: Path) -> Credentials:
    """The current context's server and static credentials, as lightkube reads them
    (`brokkr.kubeaccess`), to derive other kubeconfigs from (a token user on the same
    server, a dead server with the same CA). An exec plugin's credentials are not static,
    so such a kubeconfig is refused with the fix."""
    try:
        config = kubeaccess.from_kubeconfig(path).config
    except kubeaccess.KubeConfigError as exc:
        raise ValueError(str(exc)) from None
    user = config.user or User()
    if user.exec:
        raise ValueError(
            f"kubeconfig {path} gets its credentials from an exec plugin, which have nothing "
            "static to copy; give a kubeconfig with a client certificate or a token"
        )
    cluster = config.cluster

    def data_or_file(data: str | None, file: str | None) -> bytes | None:
        if data:
            return base64.b64decode(data)
        return Path(config.abs_file(file)).read_bytes() if file else None

    return Credentials(
        server=str(cluster.server).rstrip("/"),
        ca_pem=data_or_file(cluster.certificate_auth_data, cluster.certificate_auth) or b"",
        cert_pem=data_or_file(user.client_cert_data, user.client_cert),
        key_pem=data_or_file(user.client_key_data, user.client_key),
        token=user.token,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
