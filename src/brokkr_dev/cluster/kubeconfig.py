"""Writing and reading kubeconfig files (client-certificate and token users)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


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
    """The current context's server and credentials, with a clear error for what is
    unsupported (exec plugins, auth providers) or missing."""
    try:
        document: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"kubeconfig {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError(f"kubeconfig {path} is not a mapping")
    try:
        current = document["current-context"]
        context = _named(document, "contexts", current, path)["context"]
        cluster = _named(document, "clusters", context["cluster"], path)["cluster"]
        user = _named(document, "users", context["user"], path).get("user") or {}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"kubeconfig {path} lacks {exc} in its current context") from exc
    if "exec" in user or "auth-provider" in user:
        raise ValueError(
            f"kubeconfig {path} uses an exec/auth-provider plugin, which these tools do not "
            "run; give a kubeconfig with a client certificate or a token"
        )
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_data_or_file(cluster, "certificate-authority", path) or b"",
        cert_pem=_data_or_file(user, "client-certificate", path),
        key_pem=_data_or_file(user, "client-key", path),
        token=user.get("token"),
    )


def _named(document: dict[str, Any], section: str, name: str, path: Path) -> dict[str, Any]:
    for entry in document.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise ValueError(f"kubeconfig {path}: no entry named {name!r} in {section}")


def _data_or_file(section: dict[str, Any], field: str, path: Path) -> bytes | None:
    if section.get(f"{field}-data"):
        return base64.b64decode(section[f"{field}-data"])
    if section.get(field):
        file = Path(section[field])
        return (file if file.is_absolute() else path.parent / file).read_bytes()
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
