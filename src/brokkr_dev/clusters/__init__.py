"""Kubernetes clusters for tests and development.

Two providers share one interface (`up`, `down`, `status`):

- `local` runs real control-plane binaries (etcd, kube-apiserver,
  kube-controller-manager, kube-scheduler) plus kwok, which fakes nodes and pod
  status, so no container engine is needed;
- `kind` runs a kind cluster where Docker or Podman works.

Each cluster lives in one directory, `.local/clusters/<name>/`, whose `kubeconfig`
is the admin kubeconfig. See docs/kubernetes.md.
"""

from __future__ import annotations

from collections.abc import Callable

from brokkr_dev.clusters.common import DEFAULT_NAME, ClusterError, ClusterStatus, Provider
from brokkr_dev.clusters.kind import KindProvider
from brokkr_dev.clusters.layout import ClusterDir
from brokkr_dev.clusters.local import LocalProvider

PROVIDERS: dict[str, Callable[..., Provider]] = {"local": LocalProvider, "kind": KindProvider}


def get_provider(provider: str, name: str = DEFAULT_NAME, **options: object) -> Provider:
    """The provider called `provider` for the cluster `name`, with a clear error for a typo."""
    try:
        factory = PROVIDERS[provider]
    except KeyError:
        raise ClusterError(
            f"unknown cluster provider {provider!r}; choose one of: {', '.join(PROVIDERS)}"
        ) from None
    return factory(name, **options)


__all__ = [
    "DEFAULT_NAME",
    "PROVIDERS",
    "ClusterDir",
    "ClusterError",
    "ClusterStatus",
    "KindProvider",
    "LocalProvider",
    "Provider",
    "get_provider",
]
