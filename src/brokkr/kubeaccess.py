"""Credentials and transport for the Kubernetes API, shared by the agent and the automation.

lightkube (comparison and choice in docs/agent.md) reads the kubeconfig or the pod's
service account and builds the HTTP client: contexts, CA data and files, client
certificates, tokens, token files re-read when the server says 401 (rotated service
account tokens), and `exec` credential plugins (EKS, GKE, AKS). This module adds the
two things lightkube leaves to its caller: the cluster's `proxy-url` (lightkube's
kubeconfig model drops it) and error messages that name the file and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import yaml
from lightkube.config.client_adapter import Client as _adapter_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import SERVICE_ACCOUNT, KubeConfig, SingleConfig
from lightkube.config.models import User
from lightkube.core.exceptions import ConfigError

# The ExecCredential versions lightkube's exec support speaks (it reads `status.token`).
EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1beta1",
    "client.authentication.k8s.io/v1alpha1",
)


class KubeConfigError(RuntimeError):
    """No usable cluster credentials; the message says where we looked and what to set."""


@dataclass(frozen=True)
class Access:
    """One context's server and credentials, and the proxy to reach it through."""

    config: SingleConfig
    proxy: str | None
    source: str

    @property
    def server(self) -> str:
        return str(self.config.cluster.server).rstrip("/")

    def with_token(self, token: str) -> Access:
        """The same server and CA with a bearer token as the only credential."""
        return Access(self.config._replace(user=User(token=token)), self.proxy, self.source)

    def http_client(self, timeout: float, trust_env: bool = True) -> httpx2.Client:
        """An HTTP client with base URL, TLS and authentication set; paths are relative."""
        params = ConnectionParams(
            timeout=httpx2.Timeout(timeout), trust_env=trust_env, proxy=self.proxy
        )
        try:
            return _adapter_client(self.config, params)
        except (ConfigError, OSError, ValueError) as exc:
            raise KubeConfigError(f"{self.source}: unusable TLS or credentials: {exc}") from None


def from_kubeconfig(path: Path, context: str | None = None) -> Access:
    """The given (default: current) context of a kubeconfig file."""
    try:
        document: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"kubeconfig {path}: cannot read it: {exc}") from None
    if not isinstance(document, dict):
        raise KubeConfigError(f"kubeconfig {path}: not a mapping; give a kubeconfig file")
    name = context or document.get("current-context")
    if not name:
        raise KubeConfigError(f"kubeconfig {path}: no current-context set")
    entry = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    if name not in entry:
        raise KubeConfigError(f"kubeconfig {path}: no context named {name!r}")
    for section, wanted in (
        ("clusters", entry[name].get("cluster")),
        ("users", entry[name].get("user")),
    ):
        if wanted and wanted not in {item.get("name") for item in document.get(section) or []}:
            raise KubeConfigError(
                f"kubeconfig {path}: context {name!r} names {section[:-1]} {wanted!r}, "
                f"which is not in {section}"
            )
    try:
        config = KubeConfig.from_dict(document, fname=path.absolute()).get(name)
    except (ConfigError, KeyError, TypeError, msgspec.ValidationError) as exc:
        raise KubeConfigError(f"kubeconfig {path}: {exc}") from None
    if config is None or not config.cluster.server:
        raise KubeConfigError(f"kubeconfig {path}: cluster of context {name!r} has no server")
    if config.user and config.user.auth_provider:
        raise KubeConfigError(
            f"kubeconfig {path}: user of context {name!r} uses an auth-provider, which "
            "kubectl itself dropped; use the provider's exec credential plugin instead"
        )
    exec_plugin = config.user.exec if config.user else None
    if exec_plugin and exec_plugin.apiVersion not in EXEC_API_VERSIONS:
        raise KubeConfigError(
            f"kubeconfig {path}: exec plugin {exec_plugin.command!r} asks for "
            f"{exec_plugin.apiVersion}; set the user's exec apiVersion to "
            "client.authentication.k8s.io/v1beta1 (which every current cloud plugin accepts)"
        )
    clusters = {c.get("name"): c.get("cluster") or {} for c in document.get("clusters") or []}
    proxy = clusters.get(entry[name].get("cluster"), {}).get("proxy-url")
    return Access(config, proxy, f"kubeconfig {path} (context {name})")


def in_cluster(account: Path = Path(SERVICE_ACCOUNT)) -> Access | None:
    """The pod's service account access, or None outside a pod."""
    if not os.environ.get("KUBERNETES_SERVICE_HOST") or not (account / "token").exists():
        return None
    try:
        config = KubeConfig.from_service_account(str(account)).get()
    except (ConfigError, KeyError) as exc:
        raise KubeConfigError(f"in-cluster service account {account}: {exc}") from None
    if config is None:  # from_service_account always sets its one context
        raise KubeConfigError(f"in-cluster service account {account}: no context")
    return Access(config, None, "in-cluster service account")


def resolve(kubeconfig: str | None) -> Access:
    """The given kubeconfig if set, else the in-cluster account, else $KUBECONFIG or ~/.kube/config."""
    if kubeconfig:
        return from_kubeconfig(Path(kubeconfig))
    access = in_cluster()
    if access:
        return access
    fallback = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(
        Path.home() / ".kube/config"
    )
    if Path(fallback).exists():
        return from_kubeconfig(Path(fallback))
    raise KubeConfigError(
        "no Kubernetes credentials: not running in a pod (no service account token) and no "
        f"kubeconfig at {fallback}; set BROKKR__AGENT__KUBECONFIG to a kubeconfig file"
    )
