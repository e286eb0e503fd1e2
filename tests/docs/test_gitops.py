"""The GitOps guide's Argo CD Applications, validated against Argo CD's own CRD.

The CRD comes from Argo CD's Go module (downloaded once into the Go module cache
through the Go module proxy): the API server then checks the guide's objects by a
server-side dry run, with the CRD's real OpenAPI schema.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from brokkr_dev.base import paths
from brokkr_dev.clusters.api import crd_established
from tests.fixtures import docexec

pytestmark = [pytest.mark.k8s, pytest.mark.charts, pytest.mark.slow]
# The newest Argo CD release whose go.mod the pinned Go toolchain accepts.
ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3@v3.5.7"
GUIDE = paths.REPO_ROOT / "docs" / "operators" / "gitops.md"


def guide_objects(kind: str) -> list[dict]:
    return docexec.yaml_objects(GUIDE, kind)


@pytest.fixture(scope="module")
def application_crd() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to fetch Argo CD's CRD from its module; install golang")
    done = subprocess.run(
        [go, "mod", "download", "-json", ARGOCD_MODULE],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=paths.REPO_ROOT,
    )
    info = json.loads(done.stdout or "{}")
    assert done.returncode == 0 and "Dir" in info, (
        f"go mod download failed: {done.stdout}{done.stderr}"
    )
    return Path(info["Dir"]) / "manifests" / "crds" / "application-crd.yaml"


@pytest.fixture(scope="module")
def argo_cd_crd(application_crd: Path, k8s_cluster) -> None:
    """Argo CD's Application CRD, installed and Established, and its namespace."""
    k8s_cluster.kubectl("apply", "--server-side", "-f", str(application_crd))
    k8s_cluster.wait_for(
        lambda: crd_established(k8s_cluster.client, "applications.argoproj.io"),
        "the Application CRD to be Established",
    )
    k8s_cluster.kubectl("create", "namespace", "argocd", check=False)


def test_argo_cd_applications_pass_a_server_side_dry_run(argo_cd_crd, k8s_cluster):
    applications = guide_objects("Application")
    assert {a["metadata"]["name"] for a in applications} == {"brokkr-broker", "brokkr-agent"}
    for application in applications:
        done = subprocess.run(
            [
                str(paths.BIN_DIR / "kubectl"),
                "apply",
                "--server-side",
                "--dry-run=server",
                "-f",
                "-",
            ],
            input=yaml.safe_dump(application),
            env=k8s_cluster.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "serverside-applied (server dry run)" in done.stdout


def test_a_broken_application_is_refused_by_the_same_dry_run(argo_cd_crd, k8s_cluster):
    """The check can fail: a typo'd field is rejected by the CRD's schema."""
    broken = guide_objects("Application")[0]
    broken["spec"]["source"]["targetRevison"] = "0.1.0"
    done = subprocess.run(
        [str(paths.BIN_DIR / "kubectl"), "apply", "--server-side", "--dry-run=server", "-f", "-"],
        input=yaml.safe_dump(broken),
        env=k8s_cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "targetRevison" in done.stderr
