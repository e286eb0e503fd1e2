"""A throw-away Prometheus server (the pinned build in bin/) and its HTTP API.

Used by the end-to-end observability test and the dashboard renderer: it scrapes
the given targets under the job names the rules and dashboards expect, evaluates
the given rule documents, and answers queries on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from brokkr_dev.base import paths
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.localnet import free_port, wait_for
from brokkr_dev.base.process import stop_child


class PrometheusError(AutomationError):
    """Prometheus did not start or answered an error; the message says where its log is."""


@dataclass
class Prometheus:
    """A running server: its URL, working directory and process."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.root / "prometheus.log"

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; the `data` of a success, PrometheusError otherwise."""
        response = self.session.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('error') or response.text}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        return list(self.api("query", query=expr)["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query's result matrix."""
        return list(self.api("query_range", query=expr, start=start, end=end, step=step)["result"])

    def metric_names(self) -> set[str]:
        """Every metric name in the database, recording rule outputs included."""
        return set(self.api("label/__name__/values"))

    def firing(self, alert: str) -> list[dict[str, Any]]:
        """The alert's instances that are firing now."""
        return self.firing_now().get(alert, [])

    def firing_now(self) -> dict[str, list[dict[str, Any]]]:
        """alert name -> its instances that are firing now (one API call for all alerts)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for alert in self.api("alerts")["alerts"]:
            if alert["state"] == "firing":
                found.setdefault(alert["labels"]["alertname"], []).append(alert)
        return found

    def targets_up(self) -> dict[str, bool]:
        """job -> whether every target of that job was scraped successfully last time."""
        jobs: dict[str, bool] = {}
        for target in self.api("targets")["activeTargets"]:
            job = target["labels"]["job"]
            jobs[job] = jobs.get(job, True) and target["health"] == "up"
        return jobs

    def stop(self) -> None:
        if self.process:
            stop_child(self.process, timeout=15)
        self.session.close()


def config(targets: dict[str, str], rule_files: list[str], interval: str) -> dict[str, Any]:
    """prometheus.yml: one static job per target, the given rule files."""
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": "1s",
        },
        "rule_files": rule_files,
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [address]}]}
            for job, address in targets.items()
        ],
    }


def start(
    root: Path,
    targets: dict[str, str],
    rules: dict[str, dict[str, Any]],
    interval: str = "2s",
    binary: str | None = None,
) -> Prometheus:
    """Start Prometheus scraping `targets` (job -> host:port) with `rules` (file name -> document)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, document in rules.items():
        (root / name).write_text(yaml.safe_dump(document, sort_keys=False))
    (root / "prometheus.yml").write_text(
        yaml.safe_dump(config(targets, sorted(rules), interval), sort_keys=False)
    )
    server = Prometheus(root, free_port())
    program = binary or str(paths.BIN_DIR / "prometheus")
    with server.log_file.open("ab") as log:
        server.process = subprocess.Popen(
            [
                program,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{server.port}",
                "--log.level=warn",
            ],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        if server.process and server.process.poll() is not None:
            tail = server.log_file.read_text(errors="replace")[-2000:]
            raise PrometheusError(f"prometheus exited during start-up ({server.log_file}):\n{tail}")
        return requests.get(f"{server.url}/-/ready", timeout=2).status_code == 200

    try:
        wait_for(ready, 60, f"Prometheus on {server.url} (log {server.log_file})")
    except BaseException:
        server.stop()
        raise
    return server
