"""`brokkr-broker` commands that work on the database."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from brokkr.broker import bootstrap, pak
from brokkr.broker.settings import load_settings
from brokkr_dev.local.services import LocalBroker
from tests.integration.broker import in_process

pytestmark = pytest.mark.postgres


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return LocalBroker({"database": {"url": database_url}}).run_to_exit(*args, timeout=60)


def test_create_generator_and_agent_print_working_paks(database_url: str):
    made = cli(database_url, "create-generator", "--name", "from-cli")
    assert made.returncode == 0, made.stderr
    generator_pak = json.loads(made.stdout)["pak"]
    agent = cli(database_url, "create-agent", "--name", "a", "--cluster-name", "c")
    assert agent.returncode == 0, agent.stderr
    agent_pak = json.loads(agent.stdout)["initial_pak"]
    again = cli(database_url, "create-agent", "--name", "a", "--cluster-name", "c")
    assert again.returncode == 1 and "already taken" in again.stderr
    with in_process(database_url) as api:
        assert api.post("/auth/pak", pak=generator_pak).json()["generator"]
        assert api.post("/auth/pak", pak=agent_pak).json()["agent"]


def test_rotate_admin_writes_a_private_file_and_revokes_the_old_pak(
    database_url: str, tmp_path: Path
):
    old = pak.generate()
    bootstrap.ensure_admin(
        database_url,
        load_settings(
            {"BROKKR__DATABASE__URL": database_url, "BROKKR__BROKER__PAK_HASH": old.hash}
        ).broker,
    )
    target = tmp_path / "admin.pak"
    rotated = cli(database_url, "rotate-admin", "--output", str(target))
    assert rotated.returncode == 0, rotated.stderr
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    new = target.read_text().strip()
    assert new not in rotated.stdout + rotated.stderr
    # Serve without a configured hash so the rotated one stays in force.
    from starlette.testclient import TestClient  # noqa: PLC0415

    from brokkr.broker.app import create_app  # noqa: PLC0415 - local to this check

    settings = load_settings({"BROKKR__DATABASE__URL": database_url})
    with TestClient(create_app(settings)) as client:
        who = client.post("/api/v1/auth/pak", headers={"Authorization": new})
        assert who.json()["admin"] is True
        assert (
            client.post("/api/v1/auth/pak", headers={"Authorization": old.pak}).status_code == 401
        )
