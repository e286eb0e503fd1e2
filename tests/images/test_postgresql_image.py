"""The PostgreSQL image from Debian's packages, run the way the broker chart runs it:
UID 10001, read-only root filesystem, no capabilities, the official image's
environment contract, data in a subdirectory of a mounted volume.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.containers import images, postgres_image
from tests.fixtures.images import Containers, inspect, podman_run

pytestmark = [pytest.mark.images, pytest.mark.slow]

START_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def pg_image() -> postgres_image.PostgresImage:
    return postgres_image.ensure(images.native_arch())


class Volumes:
    """Host directories standing in for the chart's PVC and emptyDirs (writable by 10001)."""

    def __init__(self, root: Path) -> None:
        self.paths = {}
        for name in ("data", "run", "tmp", "secret"):
            path = root / name
            path.mkdir()
            path.chmod(0o777)  # the container's UID 10001 writes here
            self.paths[name] = path
        self.password = secrets.token_urlsafe(24)
        secret = self.paths["secret"] / "password"
        secret.write_text(self.password)
        secret.chmod(0o644)

    def mounts(self) -> list[str]:
        return [
            f"{self.paths['data']}:/var/lib/postgresql/data",
            f"{self.paths['run']}:/var/run/postgresql",
            f"{self.paths['tmp']}:/tmp",
            f"{self.paths['secret']}:/etc/postgresql-secret:ro",
        ]


CHART_ENV = {
    "POSTGRES_DB": "brokkr",
    "POSTGRES_USER": "brokkr",
    "POSTGRES_PASSWORD_FILE": "/etc/postgresql-secret/password",
    "PGDATA": "/var/lib/postgresql/data/pgdata",
}


@pytest.fixture
def volumes(tmp_path: Path) -> Iterator[Volumes]:
    yield Volumes(tmp_path)
    if os.geteuid() != 0:
        # The container's files belong to a subordinate id: only podman's user
        # namespace may remove them (pytest's clean-up of old runs could not).
        written = [str(tmp_path / name) for name in ("data", "run", "tmp")]
        podman_run("unshare", "rm", "-rf", *written)


def start(containers: Containers, image: str, volumes: Volumes, port: int) -> str:
    return containers.start(
        image, "-p", str(port), env=CHART_ENV, volumes=volumes.mounts(), read_only=True
    )


def connect(port: int, password: str) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="brokkr",
        password=password,
        dbname="brokkr",
        connect_timeout=3,
    )


def wait_connected(port: int, password: str) -> psycopg.Connection:
    """A connection as soon as the server accepts one (initdb runs first)."""
    return poll(
        lambda: connect(port, password),
        START_TIMEOUT,
        f"PostgreSQL on port {port}",
        not_yet=(psycopg.OperationalError,),
    )


def test_runs_as_uid_10001_and_keeps_its_data_across_a_restart(
    pg_image, containers: Containers, volumes: Volumes
):
    assert inspect(pg_image.reference)["Config"]["User"] == "10001:10001"
    port = free_port()
    first = start(containers, pg_image.reference, volumes, port)
    with wait_connected(port, volumes.password) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('survives a restart')")
        conn.commit()
    assert containers.terminate(first, timeout=60) == 0  # SIGINT stop signal: fast shutdown
    # The cluster lives on the volume. Its files are the container user's, mode 0700:
    # a test run by a normal user may see the directory, not read inside it.
    pgdata = volumes.paths["data"] / "pgdata"
    assert pgdata.is_dir() and pgdata.stat().st_uid != os.getuid()

    start(containers, pg_image.reference, volumes, port)
    with wait_connected(port, volumes.password) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("survives a restart",)]


def test_a_wrong_password_is_refused(pg_image, containers: Containers, volumes: Volumes):
    port = free_port()
    start(containers, pg_image.reference, volumes, port)
    wait_connected(port, volumes.password).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(port, "not-the-password")


def test_without_a_password_it_exits_naming_the_variable(
    pg_image, containers: Containers, volumes: Volumes
):
    env = {k: v for k, v in CHART_ENV.items() if k != "POSTGRES_PASSWORD_FILE"}
    container = containers.start(
        pg_image.reference, env=env, volumes=volumes.mounts(), read_only=True
    )
    poll(lambda: not containers.running(container), 60, "the container to exit")
    assert "set POSTGRES_PASSWORD_FILE" in containers.logs(container)
    assert not (volumes.paths["data"] / "pgdata").exists()
