"""`python -m brokkr.agent.registration`: is this agent registered, ACTIVE and heard from?

The agent chart's `helm test` hook runs this in a pod with the agent's own settings
(the same ConfigMap and PAK Secret), so it asks the broker exactly what the agent
would: whose PAK this is, and that agent's record. It passes when the record has
the configured name and cluster, status ACTIVE, a recent heartbeat, and the agent
last reported the Kubernetes API reachable. Exit 0 on success, 1 with the reasons
on stderr, 2 on bad configuration.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from brokkr.agent.broker_client import BrokerClient, BrokerError
from brokkr.agent.settings import AgentSettings, load_settings
from brokkr.common.config import ConfigError

# A heartbeat older than this many polling intervals (at least MIN_STALE_SECONDS)
# means the agent has stopped talking to the broker.
STALE_INTERVALS = 3
MIN_STALE_SECONDS = 60.0


def problems(
    settings: AgentSettings, who: dict[str, Any], agent: dict[str, Any] | None, now: datetime
) -> list[str]:
    """Everything wrong with the broker's view of this agent (empty when healthy)."""
    if not who.get("agent") or agent is None:
        return ["the configured PAK is not an agent's PAK"]
    found: list[str] = []
    expected = (settings.agent_name, settings.cluster_name)
    if (agent.get("name"), agent.get("cluster_name")) != expected:
        found.append(
            f"the PAK belongs to agent {agent.get('name')!r} in cluster "
            f"{agent.get('cluster_name')!r}, not {expected[0]!r} in {expected[1]!r}"
        )
    if agent.get("status") != "ACTIVE":
        found.append(f"status is {agent.get('status')!r}, not 'ACTIVE'")
    heartbeat = agent.get("last_heartbeat")
    limit = max(STALE_INTERVALS * settings.polling_interval, MIN_STALE_SECONDS)
    if not heartbeat:
        found.append("the agent never sent a heartbeat")
    else:
        age = (now - datetime.fromisoformat(heartbeat)).total_seconds()
        if age > limit:
            found.append(f"the last heartbeat is {age:.0f} s old (more than {limit:.0f} s)")
    if agent.get("k8s_reachable") is not True:
        found.append("the agent's last heartbeat reported the Kubernetes API unreachable")
    return found


def check(settings: AgentSettings) -> list[str]:
    """Ask the broker about the agent this PAK belongs to; the problems found."""
    client = BrokerClient(
        settings.broker_url,
        settings.pak.get_secret_value(),
        settings.ca_file,
        settings.request_timeout,
    )
    who = client.verify_pak()
    agent = client.get_agent(str(who["agent"])) if who.get("agent") else None
    return problems(settings, who, agent, datetime.now(UTC))


def main() -> int:
    try:
        settings = load_settings().agent
    except ConfigError as exc:
        print(f"brokkr-agent registration check: {exc}", file=sys.stderr)
        return 2
    try:
        found = check(settings)
    except BrokerError as exc:
        print(f"brokkr-agent registration check: {exc}", file=sys.stderr)
        return 1
    if found:
        for problem in found:
            print(f"agent {settings.agent_name}: {problem}", file=sys.stderr)
        return 1
    print(f"agent {settings.agent_name} is ACTIVE at {settings.broker_url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
