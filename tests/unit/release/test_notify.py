"""Release notifications, posted to a real local webhook receiver (http.server)."""

from __future__ import annotations

import socket

from brokkr_dev.release.notify import ENV_URL, Notifier, message
from brokkr_dev.release.pipeline import Outcome
from brokkr_dev.release.plan import ChartPlan, ImagePlan, Options, Plan
from brokkr_dev.release.tags import release_tags
from brokkr_dev.release.version import parse

SECRET_PATH = "/services/T000/B000/not-a-real-secret"
BROKER = "sha256:" + "b" * 64
AMD64, ARM64, CHART = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "c" * 64


def a_plan() -> Plan:
    version = parse("v1.2.0")
    options = Options(version=version, registry="127.0.0.1:5000/brokkr")
    image = ImagePlan(
        "brokkr-broker", "127.0.0.1:5000/brokkr/brokkr-broker", release_tags(version, set())
    )
    chart = ChartPlan(
        "brokkr-broker", "1.2.0", "1.2.0", "127.0.0.1:5000/brokkr/charts/brokkr-broker"
    )
    return Plan(options, [], [image], [chart])


def an_outcome() -> Outcome:
    return Outcome(
        images={"brokkr-broker": BROKER},
        platforms={"brokkr-broker": {"linux/amd64": AMD64, "linux/arm64": ARM64}},
        charts={"brokkr-broker": CHART},
        github_url="https://github.example/releases/v1.2.0",
    )


def test_completed_release_message_is_slack_text_plus_the_facts(webhook):
    log: list[str] = []
    notifier = Notifier.from_env({ENV_URL: webhook.url + SECRET_PATH}, log.append)
    assert notifier.completed(a_plan(), an_outcome())
    (request,) = webhook.requests
    assert request["path"] == SECRET_PATH
    assert request["content_type"] == "application/json"
    body = request["body"]
    assert body["text"].startswith("Brokkr v1.2.0 released.")
    assert f"127.0.0.1:5000/brokkr/brokkr-broker:v1.2.0@{BROKER}" in body["text"]
    facts = body["release"]
    assert (facts["status"], facts["version"], facts["prerelease"]) == (
        "published",
        "v1.2.0",
        False,
    )
    assert facts["release_url"] == "https://github.example/releases/v1.2.0"
    (image,) = facts["images"]
    assert image["digest"] == BROKER
    assert image["platforms"] == {"linux/amd64": AMD64, "linux/arm64": ARM64}
    assert "127.0.0.1:5000/brokkr/brokkr-broker:latest" in image["references"]
    assert facts["charts"] == [
        {
            "name": "brokkr-broker",
            "reference": "oci://127.0.0.1:5000/brokkr/charts/brokkr-broker:1.2.0",
            "digest": CHART,
        }
    ]
    assert facts["error"] is None
    assert log == ["notify: published message for v1.2.0 delivered (HTTP 200)"]


def test_failure_message_names_the_error():
    body = message(a_plan(), None, "refusing to release commit abc: `nox -s unit` failed\nmore")
    assert body["text"] == (
        "Brokkr v1.2.0 release FAILED: refusing to release commit abc: `nox -s unit` failed"
    )
    assert body["release"]["status"] == "failed"
    assert body["release"]["images"][0]["digest"] is None


def test_a_failing_webhook_is_reported_without_raising_or_showing_the_url(webhook):
    webhook.status_override = 500
    log: list[str] = []
    url = webhook.url + SECRET_PATH
    assert not Notifier(url, log.append).completed(a_plan(), an_outcome())
    assert len(webhook.requests) == 1
    # a receiver that is not there at all
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}{SECRET_PATH}"
    assert not Notifier(closed, log.append).failed(a_plan(), None, "boom")
    assert log == [
        "notify: published message for v1.2.0 not delivered (webhook answered HTTP 500); "
        "the release is unaffected",
        "notify: failed message for v1.2.0 not delivered (ConnectionError); "
        "the release is unaffected",
    ]
    assert not any("not-a-real-secret" in line or "127.0.0.1" in line for line in log)


def test_no_url_means_no_notification(webhook):
    assert not Notifier.from_env({}, print).completed(a_plan(), an_outcome())
    assert webhook.requests == []
