"""Release v1.0.0 to the local registry with the real charts, then `helm install` the
broker chart from oci://<registry>/charts at 1.0.0 into the local cluster and see its
pods Ready with the released image reference.

Needs the charts (charts/brokkr-broker) and the local cluster fixture
(tests/fixtures/kube.py). The images are the tiny two-platform stand-ins: the local
cluster's nodes are simulated (kwok) and never pull, so what is checked is the image
*reference* the released chart deploys, and that it exists in the registry.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from brokkr_dev.base import paths
from brokkr_dev.release.registry import Registry
from tests.fixtures.release import run

# The charts and the local cluster fixture always exist: no skip guard, so a rename or
# a lost chart fails this test instead of silently skipping it.
CHARTS = paths.REPO_ROOT / "charts"
pytestmark = [pytest.mark.release, pytest.mark.k8s, pytest.mark.charts, pytest.mark.slow]


@pytest.fixture
def real_charts_repo(brokkr_repo):
    """The release test repository, with the project's real charts instead of stand-ins."""
    chart = CHARTS / "brokkr-broker" / "Chart.yaml"
    assert chart.is_file(), f"{chart} is missing: this test releases the project's charts"
    shutil.rmtree(brokkr_repo / "charts")
    shutil.copytree(CHARTS, brokkr_repo / "charts")
    run("git", "add", "-A", cwd=brokkr_repo)
    run("git", "commit", "-qm", "feat: the real charts", cwd=brokkr_repo)
    return brokkr_repo


@pytest.mark.usefixtures("real_charts_repo")
def test_released_chart_installs_and_runs_the_released_image(
    do_release, oci_registry, k8s_cluster, k8s_namespace, release_tools
):
    outcome = do_release("v1.0.0", sbom=False)
    assert outcome is not None
    host = oci_registry.host
    chart = f"oci://{host}/brokkr/charts/brokkr-broker"
    # the chart's default tag is its appVersion; the release publishes it as 1.0.0 too
    expected_image = f"{host}/brokkr/brokkr-broker:1.0.0"
    registry = Registry(host)
    assert registry.digest("brokkr/brokkr-broker", "1.0.0") == outcome.images["brokkr-broker"]
    assert registry.digest("brokkr/brokkr-broker", "v1.0.0") == outcome.images["brokkr-broker"]
    installed = subprocess.run(
        [
            str(release_tools["helm"]),
            "install",
            "broker",
            chart,
            "--version",
            "1.0.0",
            "--plain-http",
            "--namespace",
            k8s_namespace,
            # the released chart points at ghcr.io; this registry holds the same tags
            "--set",
            f"image.registry={host}",
            "--set",
            "image.repository=brokkr/brokkr-broker",
            # the local cluster has no storage provisioner: the bundled database uses emptyDir
            "--set",
            "postgresql.persistence.enabled=false",
            "--wait",
            "--timeout",
            "180s",
        ],
        env=k8s_cluster.env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr

    def ready_broker_pods():
        pods = k8s_cluster.client.get(f"/api/v1/namespaces/{k8s_namespace}/pods")["items"]
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
        ]
        return ready if ready and len(ready) == len(pods) else None

    pods = k8s_cluster.wait_for(ready_broker_pods, "the broker pods to be Ready", timeout=180)
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert expected_image in images
