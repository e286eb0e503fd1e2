"""The operator guides' marked commands, run in order against real components.

The `local` environment is `nox -s up`'s stack started in a temporary directory:
PostgreSQL, a broker process, a fresh local Kubernetes cluster (real API server,
kwok nodes: pods become Ready without running) and an ACTIVE agent process. It is
started once per session; each guide gets its own namespace. The time the stack
took from no cluster to a working agent is printed: it is the number the quick
start quotes.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokkr_dev.base import paths
from brokkr_dev.clusters.api import ClusterClient
from brokkr_dev.local import stack as localstack
from tests.docs.guiderun import guide_env, guides_for, run_guide

pytestmark = [pytest.mark.postgres, pytest.mark.k8s, pytest.mark.charts, pytest.mark.slow]


@pytest.fixture(scope="session")
def local_brokkr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A complete local Brokkr (what `nox -s up` starts), on free ports, in tmp."""
    root = tmp_path_factory.mktemp("docs-stack")
    where = localstack.StackDir(root / "stack")
    options = localstack.Options(
        cluster_name=f"docs-{os.getpid()}",
        cluster_base=str(root / "clusters"),
        broker_port=0,
        health_port=0,
    )
    try:
        info = localstack.up(lambda _line: None, where, options)
        print(f"\nlocal Brokkr from no cluster to a working agent: {info['seconds']} s")
        yield info | {"admin_pak": where.admin_pak.read_text().strip()}
    finally:
        localstack.down(lambda _line: None, where)


@pytest.mark.parametrize("guide", guides_for("local", exclude=("air-gapped.md",)), ids=str)
def test_guide_commands_run_on_the_local_stack(
    guide: Path, local_brokkr: dict[str, Any], tmp_path: Path
):
    stem = re.sub(r"[^a-z0-9]+", "-", guide.stem.lower())[:30]
    namespace = f"docs-{stem}-{secrets.token_hex(3)}"
    values = {
        "BROKKR_URL": local_brokkr["broker_url"],
        "BROKKR_ADMIN_PAK": local_brokkr["admin_pak"],
        "BROKKR_AGENT_URL": local_brokkr["agent_health"].removesuffix("/health"),
        "BROKKR_CHARTS": str(paths.REPO_ROOT / "charts"),
        "BROKKR_NAMESPACE": namespace,
    }
    try:
        run_guide(guide, "local", values, tmp_path, guide_env(tmp_path, local_brokkr["kubeconfig"]))
    finally:
        client = ClusterClient.from_kubeconfig(Path(local_brokkr["kubeconfig"]))
        client.request("DELETE", f"/api/v1/namespaces/{namespace}")
        client.close()
