"""The services inside the images: health endpoints, readiness, SIGTERM, HEALTHCHECK."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.containers import images
from brokkr_dev.local.services import LocalAgent, LocalBroker
from tests.fixtures.images import BuiltImages, Containers, http_get, podman_run

pytestmark = [pytest.mark.images, pytest.mark.slow]

STARTUP_TIMEOUT = 120.0  # seconds; Python under arm64 emulation starts slowly
DRAIN_TIMEOUT = 5.0  # the broker's BROKKR__BROKER__DRAIN_TIMEOUT in these tests


def broker_env(port: int, database_url: str) -> dict[str, str]:
    return LocalBroker.settings_environment(
        {
            "database": {"url": database_url},
            # The broker mints the admin PAK on first start; /tmp is the writable tmpfs.
            "broker": {
                "port": port,
                "drain_timeout": DRAIN_TIMEOUT,
                "admin_pak_file": "/tmp/admin-pak",
            },
        }
    )


def wait_answering(url: str) -> tuple[int, bytes]:
    return poll(lambda: http_get(url), STARTUP_TIMEOUT, f"{url} to answer")


@pytest.mark.postgres
@pytest.mark.parametrize("arch", images.ARCHES)
def test_broker_readiness_follows_the_database_and_sigterm_exits_0(
    built_images: BuiltImages, containers: Containers, request: pytest.FixtureRequest, arch
):
    # The broker refuses to start without PostgreSQL (it migrates first), so "without
    # a database" is tested by dropping the database under the running broker.
    server = request.getfixturevalue("postgres_server")
    database_url = request.getfixturevalue("database_url")
    port = free_port()
    container = containers.start(
        built_images.ref("broker", arch), env=broker_env(port, database_url)
    )
    base = f"http://127.0.0.1:{port}"
    status, _ = wait_answering(f"{base}/healthz")
    assert status == 200, containers.logs(container)
    poll(
        lambda: (r := http_get(f"{base}/readyz")) and r[0] == 200 and r,
        STARTUP_TIMEOUT,
        "/readyz 200 with the database",
    )
    status, body = http_get(f"{base}/health") or (0, b"")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    # The image's HEALTHCHECK (stdlib probe of /healthz) passes.
    podman_run("healthcheck", "run", container)

    name = urlparse(database_url).path.lstrip("/")
    server.psql(f'DROP DATABASE "{name}" WITH (FORCE)')
    status, body = poll(
        lambda: (r := http_get(f"{base}/readyz")) and r[0] != 200 and r,
        30,
        "/readyz to report the missing database",
    )
    assert status == 503
    assert b"database" in body
    status, body = http_get(f"{base}/health") or (0, b"")
    assert status == 503
    assert json.loads(body)["status"] == "unavailable"
    status, _ = http_get(f"{base}/healthz") or (0, b"")
    assert status == 200  # liveness does not depend on the database
    assert containers.terminate(container, timeout=DRAIN_TIMEOUT + 20) == 0


def agent_env(port: int) -> dict[str, str]:
    return LocalAgent.settings_environment(
        {
            "agent": {
                # Nothing listens there: the agent keeps waiting for its broker, which is
                # what these tests want (health server up, no reconcile loop).
                "broker_url": f"http://127.0.0.1:{free_port()}",
                "pak": "brokkr_BRtest_notarealpak",
                "agent_name": "image-test",
                "cluster_name": "image-test",
                "health_port": port,
                "startup_timeout": 600,
                "kubeconfig": "/kube/config",
            }
        }
    )


def mountable_kubeconfig(config: dict, directory: Path) -> str:
    """Write a kubeconfig the image's user (10001) can read; returns the volume spec.

    A pod gets its kubeconfig from a Secret volume; here a directory with a copy
    owned by 10001, mode 0400, mounted read-only at /kube.
    """
    directory.mkdir()
    directory.chmod(0o755)
    path = directory / "config"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o400)
    if os.geteuid() == 0:
        os.chown(path, 10001, 10001)
    else:  # rootless podman: the container's 10001 is one of the user's subordinate ids
        podman_run("unshare", "chown", "10001:10001", str(path))
    return f"{directory}:/kube:ro"


def self_contained(kubeconfig: Path) -> dict:
    """The kubeconfig with its certificate files inlined as *-data fields."""
    config = yaml.safe_load(kubeconfig.read_text())
    for section, keys in (
        ("clusters", ("certificate-authority",)),
        ("users", ("client-certificate", "client-key")),
    ):
        for entry in config.get(section) or []:
            body = entry[section[:-1]]
            for key in keys:
                if key in body:
                    file = Path(body.pop(key))
                    file = file if file.is_absolute() else kubeconfig.parent / file
                    body[f"{key}-data"] = base64.b64encode(file.read_bytes()).decode()
    return config


@pytest.mark.k8s
@pytest.mark.parametrize("arch", images.ARCHES)
def test_agent_ready_with_a_mounted_kubeconfig(
    built_images: BuiltImages,
    containers: Containers,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    arch,
):
    cluster = request.getfixturevalue("k8s_cluster")
    volume = mountable_kubeconfig(self_contained(Path(cluster.kubeconfig)), tmp_path / "kube")
    port = free_port()
    container = containers.start(
        built_images.ref("agent", arch), env=agent_env(port), volumes=[volume]
    )
    base = f"http://127.0.0.1:{port}"
    status, _ = wait_answering(f"{base}/healthz")
    assert status == 200, containers.logs(container)
    poll(
        lambda: (r := http_get(f"{base}/readyz")) and r[0] == 200 and r,
        60,
        "/readyz 200 against the local Kubernetes API",
    )
    status, body = http_get(f"{base}/health") or (0, b"")
    assert status in {200, 503}
    assert isinstance(json.loads(body), dict)
    podman_run("healthcheck", "run", container)
    assert containers.terminate(container, timeout=60) == 0


@pytest.mark.parametrize("arch", images.ARCHES)
def test_agent_not_ready_when_kubernetes_is_unreachable(
    built_images: BuiltImages, containers: Containers, tmp_path: Path, arch
):
    # A valid kubeconfig whose API server does not exist (a free port, nothing on it).
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "gone",
                "cluster": {
                    "server": f"https://127.0.0.1:{free_port()}",
                    "insecure-skip-tls-verify": True,
                },
            }
        ],
        "users": [{"name": "gone", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
        "current-context": "gone",
    }
    volume = mountable_kubeconfig(config, tmp_path / "kube")
    port = free_port()
    container = containers.start(
        built_images.ref("agent", arch), env=agent_env(port), volumes=[volume]
    )
    base = f"http://127.0.0.1:{port}"
    status, _ = wait_answering(f"{base}/healthz")
    assert status == 200, containers.logs(container)
    status, _ = poll(
        lambda: (r := http_get(f"{base}/readyz")) and r,
        30,
        "/readyz to answer",
    )
    assert status == 503
    assert containers.terminate(container, timeout=60) == 0
