"""A real Prometheus scrapes the real broker and agent of a local stack.

It checks that every metric the dashboards and alert rules query is in the scraped
data and that every dashboard panel returns data; then it makes every shipped alert
fire from real faults, each one seen not firing before its fault:

1. a deployment object the Kubernetes API rejects: BrokkrAgentReconcileFailures;
2. a locked table behind a crowd of API clients: the broker's pool runs dry and its
   answers are slow 503s: BrokkrDatabasePoolExhausted and the four burn-rate alerts,
   while readiness (its own connection) stays up: BrokkrDatabaseUnreachable and
   BrokkrBrokerNotReady must not fire, and /health says the pool is saturated;
3. the agent's PAK rotated behind its back: it keeps running but the broker refuses
   it: BrokkrAgentPollStale and BrokkrAgentHeartbeatMissing;
4. the agent stopped: BrokkrAgentDown;
5. PostgreSQL stopped: BrokkrDatabaseUnreachable and BrokkrBrokerNotReady;
6. the broker stopped: BrokkrBrokerDown.

The rules are the shipped ones through `fast_variant` (no `for:` delays, 15 s instead
of 300 s for the heartbeat and poll ages). The panels are drawn into PNGs from this
run (set BROKKR_DASHBOARD_PNG_DIR=docs/images to refresh the pictures in
docs/observability.md).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from psycopg import sql

from brokkr_dev.base import process as proc
from brokkr_dev.base.localnet import wait_for
from brokkr_dev.local import stack as localstack
from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.monitoring import dashboards, prometheus
from brokkr_dev.monitoring import rules as monitoring
from tests.fixtures import panelrender
from tests.fixtures.crowd import Crowd

pytestmark = [pytest.mark.postgres, pytest.mark.k8s, pytest.mark.slow]

# The test thresholds fast_variant puts in place of 300 s.
HEARTBEAT_SECONDS = STALE_SECONDS = 15

DATABASE_DOWN_ALERTS = ("BrokkrDatabaseUnreachable", "BrokkrBrokerNotReady")
POOL_AND_BURN_ALERTS = (
    "BrokkrDatabasePoolExhausted",
    "BrokkrErrorBudgetBurnFast",
    "BrokkrErrorBudgetBurnSlow",
    "BrokkrLatencyBudgetBurnFast",
    "BrokkrLatencyBudgetBurnSlow",
)
BURN_RATIOS = ("brokkr:http_error_ratio:rate1h", "brokkr:http_slow_ratio:rate1h")
SILENT_AGENT_ALERTS = ("BrokkrAgentPollStale", "BrokkrAgentHeartbeatMissing")

# A ConfigMap whose data key the API server refuses (keys are [-._a-zA-Z0-9]+): the
# agent's server-side dry run is rejected and it reports a FAILURE.
REJECTED_STACK = f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: rejected
  namespace: {localstack.SAMPLE_NAMESPACE}
data:
  "not a valid key!": "the API server refuses this object"
"""


def panel_queries(uid: str) -> dict[str, str]:
    document = dashboards.model(dashboards.DASHBOARDS[uid])
    return {f"{title} #{n}": expr for n, (title, expr) in enumerate(dashboards.queries(document))}


def settle(condition: Callable[[], bool], timeout: float) -> None:
    """Poll until the condition holds or the time is up; the caller then asserts the details."""
    with contextlib.suppress(TimeoutError):
        wait_for(condition, timeout, "condition")


def without_data(server: prometheus.Prometheus, uid: str) -> list[str]:
    return [where for where, expr in panel_queries(uid).items() if not server.query(expr)]


def firing(server: prometheus.Prometheus, names: Iterable[str]) -> list[str]:
    """Those of `names` that fire now."""
    now = server.firing_now()
    return [name for name in names if now.get(name)]


def wait_firing(
    server: prometheus.Prometheus, names: Iterable[str], since: float, timeout: float
) -> dict[str, list[dict[str, Any]]]:
    """Poll until every named alert fires; assert each one became active after `since`
    (the fault), so none of them was already pending or firing for another reason."""
    names = list(names)
    settle(lambda: firing(server, names) == names, timeout)
    now = server.firing_now()
    assert [name for name in names if not now.get(name)] == [], f"firing instead: {sorted(now)}"
    early = {n: a["activeAt"] for n in names for a in now[n] if active_at(a) < since}
    assert early == {}, f"active before the fault at {since}"
    return {name: now[name] for name in names}


def active_at(alert: dict[str, Any]) -> float:
    """When Prometheus first saw the alert's expression true (Unix time)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", alert["activeAt"]).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def settle_quiet(server: prometheus.Prometheus, names: Iterable[str], timeout: float) -> None:
    """Wait until none of `names` fires (after an earlier fault), then assert so."""
    names = list(names)
    settle(lambda: not firing(server, names), timeout)
    assert firing(server, names) == []


def has_number(server: prometheus.Prometheus, expr: str) -> bool:
    """Whether an instant query gives one value that is a number (not NaN)."""
    result = server.query(expr)
    return len(result) == 1 and not math.isnan(float(result[0]["value"][1]))


def value(server: prometheus.Prometheus, expr: str) -> float:
    """The single value of an instant query."""
    result = server.query(expr)
    assert len(result) == 1, f"{expr}: {result}"
    return float(result[0]["value"][1])


@contextlib.contextmanager
def table_locked(database_url: str, table: str) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on `table`, as a long schema migration would:
    every statement that reads it waits until the block ends."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))
        )
        try:
            yield
        finally:
            conn.rollback()


def test_prometheus_sees_every_queried_metric_and_every_alert_fires(tmp_path: Path):
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
            c.rules.name: monitoring.fast_variant(
                monitoring.load_rules(c.rules),
                heartbeat_seconds=HEARTBEAT_SECONDS,
                stale_seconds=STALE_SECONDS,
            )
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
        # Ordinary traffic on the route the crowd uses later, so its series exist
        # (and answer fast) before the fault.
        assert admin.call("GET", "/agent-events")

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
        # Healthy: no alert fires, and the burn-rate ratios are evaluated (0 errors).
        # A ratio is 0/0 (NaN) until a scrape after the first has seen /api/ requests
        # counted, so wait for a number before judging it.
        settle(lambda: all(has_number(server, r) for r in BURN_RATIOS), 60)
        assert server.firing_now() == {}
        assert value(server, "brokkr:http_error_ratio:rate1h") == 0
        assert value(server, "brokkr:http_slow_ratio:rate1h") < 0.06
        proven: set[str] = set()

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

        # 1. A stack the Kubernetes API refuses: the agent reports a failed apply.
        fault = time.time()
        generator_id = admin.call("GET", f"/stacks/{info['stack_id']}")["generator_id"]
        rejected_stack = admin.stack("rejected", generator_id)
        rejected = admin.deploy(rejected_stack, REJECTED_STACK)
        admin.target(info["agent_id"], rejected_stack)
        failures = wait_firing(server, ["BrokkrAgentReconcileFailures"], fault, 60)
        assert failures["BrokkrAgentReconcileFailures"][0]["labels"]["result"] == "failure"
        event = admin.event_for(info["agent_id"], rejected["id"])
        assert event and event["status"] == "FAILURE", event
        assert "rejected by the Kubernetes API" in event["message"]
        proven.update(failures)

        # 2. A locked table and more clients than pool connections: the requests that
        # got a connection wait on the lock (slow), the others get none within the
        # pool timeout and are answered 503. PostgreSQL itself is fine, and the
        # readiness probe has a connection of its own: the replica stays ready (it
        # must not leave the Service for being busy) and the database counts as up.
        assert firing(server, [*POOL_AND_BURN_ALERTS, *DATABASE_DOWN_ALERTS]) == []
        pool_size = int(value(server, 'brokkr_db_pool_max_connections{job="brokkr-broker"}'))
        crowd = Crowd(f"{admin.api}/agent-events", admin.session.headers, pool_size + 10)
        with crowd, table_locked(info["database_url"], "agent_events"):
            fault = time.time()
            crowd.start()
            burning = wait_firing(server, POOL_AND_BURN_ALERTS, fault, 60)
            # The broker itself stayed scraped all along: these are not BrokkrBrokerDown.
            assert value(server, 'min_over_time(up{job="brokkr-broker"}[1m])') == 1
            # Ready and connected at every scrape since the fault, so neither alert
            # could fire even for a moment (fast_variant has no `for:` delays).
            since = f"{int(time.time() - fault) + 1}s"
            for gauge in ("brokkr_ready", "brokkr_database_up"):
                assert value(server, f'min_over_time({gauge}{{job="brokkr-broker"}}[{since}])') == 1
            assert firing(server, DATABASE_DOWN_ALERTS) == []
            ready = requests.get(f"{info['broker_url']}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            pool = requests.get(f"{info['broker_url']}/health", timeout=10).json()["pool"]
            assert pool["status"] == "saturated" and pool["available"] == 0, pool
        released = time.time()
        assert crowd.counts().get(503, 0) > 0, crowd.counts()
        assert crowd.failures == []
        for alerts in burning.values():
            assert alerts[0]["labels"]["job"] == "brokkr-broker"
        proven.update(burning)
        # Once the lock is gone the broker and the agent recover by themselves: the
        # agent (after its back-off) completes a cycle and heartbeats again.
        wait_for(
            lambda: server.query(
                f"brokkr_agent_last_successful_poll_timestamp_seconds > {released}"
            ),
            60,
            "a completed agent cycle after the lock was released",
        )
        settle_quiet(
            server,
            [
                *DATABASE_DOWN_ALERTS,
                "BrokkrBrokerDown",
                *SILENT_AGENT_ALERTS,
                "BrokkrAgentDown",
            ],
            60,
        )

        # 3. The agent's PAK is rotated: the agent runs and is scraped, but the broker
        # refuses its heartbeats and polls (it had just completed a cycle).
        assert value(server, "time() - brokkr_agent_last_successful_poll_timestamp_seconds") < 10
        fault = time.time()
        admin.call("POST", f"/agents/{info['agent_id']}/rotate-pak")
        silent = wait_firing(server, SILENT_AGENT_ALERTS, fault, 90)
        assert firing(server, ["BrokkrAgentDown"]) == []
        assert server.targets_up()["brokkr-agent"]
        refused = requests.get(info["agent_health"], timeout=5).json()["broker"]["error"]
        assert " 401 " in refused, refused
        beat = silent["BrokkrAgentHeartbeatMissing"]
        assert beat[0]["labels"]["severity"] == "warning"
        assert float(beat[0]["value"]) == 1  # one silent agent
        proven.update(silent)

        # 4. The agent stops: it cannot be scraped.
        fault = time.time()
        proc.stop(records["agent"], where.pids)
        proven.update(wait_firing(server, ["BrokkrAgentDown"], fault, 30))

        # 5. PostgreSQL stops (fast shutdown): the broker serves 503s and says so.
        assert firing(server, DATABASE_DOWN_ALERTS) == []
        fault = time.time()
        os.kill(records["postgres"].pid, signal.SIGINT)
        wait_for(lambda: not proc.alive(records["postgres"]), 60, "PostgreSQL to stop")
        assert (
            admin.session.get(f"{info['broker_url']}/api/v1/agents", timeout=10).status_code == 503
        )
        down = wait_firing(server, DATABASE_DOWN_ALERTS, fault, 90)
        assert down["BrokkrDatabaseUnreachable"][0]["labels"]["job"] == "brokkr-broker"
        proven.update(down)
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

        # 6. The broker stops: no broker target is scraped any more.
        assert firing(server, ["BrokkrBrokerDown"]) == []
        fault = time.time()
        proc.stop(records["broker"], where.pids)
        proven.update(wait_firing(server, ["BrokkrBrokerDown"], fault, 30))

        assert sorted(set(monitoring.alerts()) - proven) == [], "alerts never seen firing"
    finally:
        if server:
            server.stop()
        localstack.down(lambda _: None, where)
    assert server is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/-/ready", timeout=2)
