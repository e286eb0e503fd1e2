"""A real Prometheus scrapes the real broker and agent of a local stack.

It checks that every metric the dashboards and alert rules query is in the scraped
data and that every dashboard panel returns data; then it stops the agent and sees
the heartbeat alert fire, stops PostgreSQL and sees the database alert fire. The
panels are drawn into PNGs from this run (set BROKKR_DASHBOARD_PNG_DIR=docs/images
to refresh the pictures in docs/observability.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from brokkr_dev.base import process as proc
from brokkr_dev.base.localnet import wait_for
from brokkr_dev.local import stack as localstack
from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.monitoring import dashboards, prometheus
from brokkr_dev.monitoring import rules as monitoring
from tests.fixtures import panelrender

pytestmark = [pytest.mark.postgres, pytest.mark.k8s, pytest.mark.slow]


def panel_queries(uid: str) -> dict[str, str]:
    document = dashboards.model(dashboards.DASHBOARDS[uid])
    return {f"{title} #{n}": expr for n, (title, expr) in enumerate(dashboards.queries(document))}


def settle(condition: Callable[[], bool], timeout: float) -> None:
    """Poll until the condition holds or the time is up; the caller then asserts the details."""
    with contextlib.suppress(TimeoutError):
        wait_for(condition, timeout, "condition")


def without_data(server: prometheus.Prometheus, uid: str) -> list[str]:
    return [where for where, expr in panel_queries(uid).items() if not server.query(expr)]


def test_prometheus_sees_every_queried_metric_and_the_alerts_fire(tmp_path: Path):
    where = localstack.StackDir(tmp_path / "stack")
    options = localstack.Options(
        cluster_name=f"obs-{os.getpid()}",
        cluster_base=str(tmp_path / "clusters"),
        broker_port=0,
        health_port=0,
    )
    server: prometheus.Prometheus | None = None
    try:
        info = localstack.up(lambda _: None, where, options)
        rules = {
            c.rules.name: monitoring.fast_variant(monitoring.load_rules(c.rules))
            for c in monitoring.COMPONENTS
        }
        targets = {
            "brokkr-broker": urlsplit(info["broker_url"]).netloc,
            "brokkr-agent": urlsplit(info["agent_health"]).netloc,
        }
        server = prometheus.start(tmp_path / "prometheus", targets, rules)
        started = time.time()
        admin = BrokerAdmin(info["broker_url"], Path(info["admin_pak_file"]).read_text().strip())
        records = {r.name: r for r in proc.records(where.pids)}

        # Every metric that a panel or a rule selects, recording rules included.
        wanted: dict[str, set[str]] = {}
        for place, expr in monitoring.queried_expressions().items():
            for name in monitoring.metric_names(expr):
                wanted.setdefault(name, set()).add(place)
        assert len(wanted) > 30

        def missing() -> dict[str, set[str]]:
            names = server.metric_names() if server else set()
            return {name: places for name, places in wanted.items() if name not in names}

        settle(lambda: not missing(), 90)
        assert missing() == {}
        assert server.targets_up() == {"brokkr-broker": True, "brokkr-agent": True}
        settle(lambda: not without_data(server, "brokkr-agents"), 60)
        assert without_data(server, "brokkr-agents") == []
        assert server.firing("BrokkrAgentHeartbeatMissing") == []
        assert server.firing("BrokkrDatabaseUnreachable") == []

        # One more apply while Prometheus watches, so the apply-duration quantile
        # panels have finite points (the sample stack was applied before it started).
        admin.deploy(info["stack_id"], localstack.SAMPLE_STACK)
        wait_for(
            lambda: server.query(
                "sum(increase(brokkr_agent_apply_duration_seconds_count[5m])) > 0"
            ),
            90,
            "an apply seen by Prometheus",
        )

        # The agent stops: its heartbeats go silent past the (test) 15 s threshold.
        proc.stop(records["agent"], where.pids)
        beat = wait_for(
            lambda: server.firing("BrokkrAgentHeartbeatMissing"), 90, "BrokkrAgentHeartbeatMissing"
        )
        assert beat[0]["labels"]["severity"] == "warning"
        assert float(beat[0]["value"]) == 1  # one silent agent
        assert wait_for(lambda: server.firing("BrokkrAgentDown"), 30, "BrokkrAgentDown")

        # PostgreSQL stops (fast shutdown): the broker serves 503s and says so.
        os.kill(records["postgres"].pid, signal.SIGINT)
        wait_for(lambda: not proc.alive(records["postgres"]), 60, "PostgreSQL to stop")
        assert (
            admin.session.get(f"{info['broker_url']}/api/v1/agents", timeout=10).status_code == 503
        )
        down = wait_for(
            lambda: server.firing("BrokkrDatabaseUnreachable"), 90, "BrokkrDatabaseUnreachable"
        )
        assert down[0]["labels"]["job"] == "brokkr-broker"
        assert wait_for(lambda: server.firing("BrokkrBrokerNotReady"), 30, "BrokkrBrokerNotReady")
        settle(lambda: not without_data(server, "brokkr-broker"), 60)
        assert without_data(server, "brokkr-broker") == []
        errors = server.query('brokkr_http_requests_total{route=~"/api/.*",status="503"}')
        assert errors, "the 503 answers are counted by route"

        out = Path(os.environ.get("BROKKR_DASHBOARD_PNG_DIR") or tmp_path / "png")
        for uid in dashboards.DASHBOARDS:
            document = dashboards.model(dashboards.DASHBOARDS[uid])
            png = out / f"dashboard-{uid}.png"
            drawn = panelrender.render(document, server.query_range, started, time.time(), png)
            assert drawn == len(document["panels"]), f"{uid}: panels without data"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        if server:
            server.stop()
        localstack.down(lambda _: None, where)
    assert server is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/-/ready", timeout=2)
