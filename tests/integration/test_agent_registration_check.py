"""The agent chart's `helm test` check against a real broker on PostgreSQL.

`python -m brokkr.agent.registration` runs as a subprocess with the agent chart's
environment (BROKKR__AGENT__* and a PAK file), as in the test pod. The agent's
heartbeat is sent with the agent's PAK, exactly as the agent sends it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.local.services import LocalAgent, LocalBroker
from tests.fixtures.agent import broker_for_agents

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def broker(database_url: str, tmp_path: Path) -> Iterator[LocalBroker]:
    process = broker_for_agents(database_url, tmp_path / "broker")
    process.start()
    yield process
    process.stop()


def check(broker: LocalBroker, pak: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    pak_file = workdir / "pak"
    pak_file.write_text(pak + "\n")
    agent = LocalAgent(
        {
            "agent": {
                "broker_url": broker.url,
                "pak_file": pak_file,
                "agent_name": "checked",
                "cluster_name": "c1",
                "polling_interval": 5,
            }
        }
    )
    return agent.run_to_exit(module="brokkr.agent.registration", timeout=60)


def heartbeat(broker: LocalBroker, agent_id: str, pak: str, reachable: bool) -> None:
    response = requests.post(
        f"{broker.url}/api/v1/agents/{agent_id}/heartbeat",
        json={"k8s_reachable": reachable, "k8s_api_latency_ms": 3 if reachable else None},
        headers={"Authorization": f"Bearer {pak}"},
        timeout=10,
    )
    assert response.status_code < 300, response.text


def test_passes_only_for_an_active_agent_that_heartbeats_with_kubernetes_reachable(
    broker: LocalBroker, tmp_path: Path
):
    admin = BrokerAdmin(broker.url, broker.admin_pak())
    agent_id, pak = admin.agent("checked", "c1")

    done = check(broker, pak, tmp_path)
    assert done.returncode == 1
    assert "never sent a heartbeat" in done.stderr

    heartbeat(broker, agent_id, pak, reachable=False)
    done = check(broker, pak, tmp_path)
    assert done.returncode == 1
    assert "Kubernetes API unreachable" in done.stderr

    heartbeat(broker, agent_id, pak, reachable=True)
    done = check(broker, pak, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "is ACTIVE" in done.stderr

    admin.call("PUT", f"/agents/{agent_id}", {"status": "INACTIVE"})
    done = check(broker, pak, tmp_path)
    assert done.returncode == 1
    assert "status is 'INACTIVE'" in done.stderr


def test_the_admin_pak_is_not_an_agent(broker: LocalBroker, tmp_path: Path):
    done = check(broker, broker.admin_pak(), tmp_path)
    assert done.returncode == 1
    assert "not an agent's PAK" in done.stderr
