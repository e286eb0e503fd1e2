"""The broker's admin API, for the automation and the tests (local stack, benches, e2e).

One small client so that `nox -s up`, the agent benchmark and the end-to-end tests
create generators, agents, stacks and targets the same way.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from brokkr_dev.base.errors import AutomationError

# A kept-alive connection that the broker, or a port-forward in front of it, closed
# while it was idle fails the next request sent on it, before any answer. Idempotent
# calls (GET, PUT, DELETE) are sent once more on a new connection; a POST never is.
STALE_CONNECTION = Retry(total=1, connect=1, read=1, status=0, other=0, redirect=0)


class BrokerCallError(AutomationError):
    """The broker answered an admin call with an error status; the message has its body."""


class BrokerUnavailable(BrokerCallError):
    """503: the broker runs but cannot serve now (database away, draining); retry later."""


class BrokerAdmin:
    """The broker API as the admin: set up generators, agents, stacks and targets."""

    def __init__(self, url: str, pak: str) -> None:
        self.api = url + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {pak}"
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=STALE_CONNECTION))

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.session.request(
            method, self.api + path, json=body, params=params or None, timeout=10
        )
        if response.status_code >= 400:
            error = BrokerUnavailable if response.status_code == 503 else BrokerCallError
            raise error(f"broker: {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def generator(self, name: str) -> str:
        return str(self.call("POST", "/generators", {"name": name})["generator"]["id"])

    def agent(self, name: str, cluster: str, active: bool = True) -> tuple[str, str]:
        """Create an agent; returns (id, PAK). Activated unless `active` is False."""
        created = self.call("POST", "/agents", {"name": name, "cluster_name": cluster})
        agent_id = created["agent"]["id"]
        if active:
            self.call("PUT", f"/agents/{agent_id}", {"status": "ACTIVE"})
        return agent_id, created["initial_pak"]

    def register(self, generator_id: str, agent_id: str) -> None:
        self.call("POST", f"/generators/{generator_id}/register", {"agent_id": agent_id})

    def stack(self, name: str, generator_id: str) -> str:
        return str(self.call("POST", "/stacks", {"name": name, "generator_id": generator_id})["id"])

    def deploy(self, stack_id: str, yaml_text: str, deletion: bool = False) -> dict[str, Any]:
        body = {"yaml_content": yaml_text, "is_deletion_marker": deletion}
        result: dict[str, Any] = self.call("POST", f"/stacks/{stack_id}/deployment-objects", body)
        return result

    def target(self, agent_id: str, stack_id: str) -> None:
        self.call(
            "POST", f"/agents/{agent_id}/targets", {"agent_id": agent_id, "stack_id": stack_id}
        )

    def targeted_stack(self, name: str, agent_id: str) -> str:
        """A stack `name` from a generator of the same name that the agent is
        registered with, targeted at the agent: what it posts is the agent's to apply."""
        generator = self.generator(name)
        stack = self.stack(name, generator)
        self.register(generator, agent_id)
        self.target(agent_id, stack)
        return stack

    def untarget(self, agent_id: str, stack_id: str) -> None:
        self.call("DELETE", f"/agents/{agent_id}/targets/{stack_id}")

    def events(self, agent_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", f"/agents/{agent_id}/events")
        return result

    def event_for(self, agent_id: str, deployment_object_id: str) -> dict[str, Any] | None:
        for event in self.events(agent_id):
            if event["deployment_object_id"] == deployment_object_id:
                return event
        return None

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/agents/{agent_id}")
        return result
