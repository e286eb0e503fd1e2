"""Release notifications: one JSON POST to a webhook when a release completes or fails.

The URL comes from the environment only (`BROKKR_RELEASE_WEBHOOK_URL`, a CI secret):
a webhook URL is a credential, and a command-line option would show it in process
lists and shell history. It is never logged; errors name only the status or the kind
of failure. The body is Slack-compatible (`text`) and carries the structured facts
under `release` for other receivers.

A notification is a report about the release, not part of it: when it fails the run
says so and carries on; a finished release stays finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from brokkr_dev.base.log import Log
from brokkr_dev.release.pipeline import Outcome
from brokkr_dev.release.plan import Plan

ENV_URL = "BROKKR_RELEASE_WEBHOOK_URL"
TIMEOUT = 10


def facts(plan: Plan, outcome: Outcome | None, status: str, error: str | None) -> dict[str, Any]:
    """The structured part of the message: what was (or was to be) published."""
    version = plan.version
    images = []
    for image in plan.images:
        digest = outcome.images.get(image.name) if outcome else None
        images.append(
            {
                "name": image.name,
                "references": [f"{image.repository}:{change.tag}" for change in image.tags],
                "digest": digest,
                "platforms": (outcome.platforms.get(image.name, {}) if outcome else {}),
            }
        )
    charts = [
        {
            "name": chart.name,
            "reference": chart.reference,
            "digest": outcome.charts.get(chart.name) if outcome else None,
        }
        for chart in plan.charts
    ]
    return {
        "status": status,
        "version": version.tag,
        "prerelease": version.is_prerelease,
        "registry": plan.options.registry,
        "images": images,
        "charts": charts,
        "release_url": outcome.github_url if outcome else None,
        "error": error,
    }


def message(plan: Plan, outcome: Outcome | None, error: str | None = None) -> dict[str, Any]:
    """The webhook body: Slack's `text` plus the facts."""
    status = "failed" if error else "published"
    body = facts(plan, outcome, status, error)
    tag = plan.version.tag
    if error:
        first = error.strip().splitlines()[0] if error.strip() else "unknown error"
        text = f"Brokkr {tag} release FAILED: {first}"
    else:
        lines = [f"Brokkr {tag} released."]
        lines += [f"{i['references'][0]}@{i['digest']}" for i in body["images"]]
        lines += [f"{c['reference']}@{c['digest']}" for c in body["charts"]]
        if body["release_url"]:
            lines.append(body["release_url"])
        text = "\n".join(lines)
    return {"text": text, "release": body}


@dataclass(frozen=True)
class Notifier:
    """Posts release messages to one webhook URL (or does nothing without one)."""

    url: str | None
    log: Log = print

    @classmethod
    def from_env(cls, env: Mapping[str, str], log: Log = print) -> Notifier:
        return cls(env.get(ENV_URL) or None, log)

    def send(self, body: dict[str, Any]) -> bool:
        """POST the body; True when the receiver accepted it. Never raises."""
        if not self.url:
            return False
        what = f"notify: {body['release']['status']} message for {body['release']['version']}"
        try:
            response = requests.post(self.url, json=body, timeout=TIMEOUT)
        except requests.RequestException as exc:
            # str(exc) would contain the URL: name the kind of failure only.
            self.log(f"{what} not delivered ({type(exc).__name__}); the release is unaffected")
            return False
        if response.status_code >= 300:
            self.log(
                f"{what} not delivered (webhook answered HTTP {response.status_code}); "
                "the release is unaffected"
            )
            return False
        self.log(f"{what} delivered (HTTP {response.status_code})")
        return True

    def completed(self, plan: Plan, outcome: Outcome) -> bool:
        return self.send(message(plan, outcome))

    def failed(self, plan: Plan, outcome: Outcome | None, error: str) -> bool:
        return self.send(message(plan, outcome, error))
