"""The launchers with real processes: a broker on the test PostgreSQL, an agent that
cannot reach its broker, and starts that fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from brokkr.broker import pak
from brokkr_dev.base import process as proc
from brokkr_dev.base.localnet import free_port
from brokkr_dev.local.services import LocalAgent, LocalBroker, ServiceError

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEAD_CLUSTER = """\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: x}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
"""


def test_broker_starts_ready_serves_and_stops_cleanly(database_url: str, tmp_path: Path):
    admin = pak.generate()
    broker = LocalBroker(
        {"database": {"url": database_url}, "broker": {"pak_hash": admin.hash}},
        log_file=tmp_path / "logs" / "broker.log",
    )
    with broker:
        assert broker.running
        assert requests.get(broker.url + "/readyz", timeout=5).status_code == 200
        agents = requests.get(
            broker.url + "/api/v1/agents", headers={"Authorization": admin.pak}, timeout=5
        )
        assert agents.status_code == 200
        pid = broker.pid
    assert not broker.running and broker.process is not None
    assert broker.process.returncode == 0
    assert proc.start_ticks(pid) is None  # reaped, not a zombie
    assert "shutdown complete" in broker.log()
    with pytest.raises(requests.ConnectionError):
        requests.get(broker.url + "/healthz", timeout=2)


def test_broker_mints_the_admin_pak_before_it_is_ready(database_url: str, tmp_path: Path):
    broker = LocalBroker(
        {"database": {"url": database_url}, "broker": {"admin_pak_file": tmp_path / "admin.pak"}},
        log_file=tmp_path / "broker.log",
    ).start()
    try:
        who = requests.post(
            broker.url + "/api/v1/auth/pak",
            headers={"Authorization": broker.admin_pak()},
            timeout=5,
        )
        assert who.status_code == 200 and who.json()["admin"] is True
    finally:
        assert broker.stop() == 0


def test_a_start_that_fails_shows_the_log_tail_and_leaves_nothing_running(tmp_path: Path):
    log_file = tmp_path / "broker.log"
    log_file.write_text("an earlier run's line\n")
    nowhere = f"postgresql://brokkr@127.0.0.1:{free_port()}/brokkr?connect_timeout=1"
    broker = LocalBroker(
        {
            "database": {"url": nowhere, "startup_wait": 0},
            "broker": {"pak_hash": pak.generate().hash},
        },
        log_file=log_file,
    )
    with pytest.raises(ServiceError) as failed:
        broker.start(timeout=30)
    message = str(failed.value)
    assert "the broker exited with code 1 during start-up" in message
    assert f"last lines of {log_file}" in message
    assert "cannot reach PostgreSQL" in message  # the broker's own reason, from its log
    assert "an earlier run's line" not in message
    assert not broker.running and broker.process is not None


def test_a_service_that_never_gets_ready_is_stopped_at_the_deadline(tmp_path: Path):
    # The agent serves /health at once but stays "starting": its broker never answers.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(DEAD_CLUSTER.format(port=free_port()))
    agent = LocalAgent(
        {
            "agent": {
                "broker_url": f"http://127.0.0.1:{free_port()}",
                "pak": "brokkr_BRtest_notarealpak",
                "agent_name": "a",
                "cluster_name": "c",
                "kubeconfig": kubeconfig,
                "startup_timeout": 600,
            },
            "log": {"format": "text"},
        },
        log_file=tmp_path / "agent.log",
    )
    with pytest.raises(ServiceError) as failed:
        agent.start(timeout=5)
    message = str(failed.value)
    assert "timed out after 5 s waiting for the agent to be ready" in message
    assert agent.health_url in message
    assert f"last lines of {tmp_path / 'agent.log'}" in message
    assert not agent.running  # stopped, not left behind
    assert agent.process is not None and agent.process.returncode is not None


def test_a_broker_restarts_on_the_same_port(database_url: str, tmp_path: Path):
    broker = LocalBroker(
        {"database": {"url": database_url}, "broker": {"pak_hash": pak.generate().hash}},
        log_file=tmp_path / "broker.log",
    )
    with broker:
        first = broker.pid
    assert broker.stop() == 0  # already stopped: the code stays
    with broker:
        assert broker.pid != first
        assert requests.get(broker.url + "/healthz", timeout=5).status_code == 200
        with pytest.raises(ServiceError, match="already runs"):
            broker.start()
