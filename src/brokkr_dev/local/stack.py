"""A complete local Brokkr in one command: PostgreSQL, broker, cluster, ACTIVE agent, sample.

`up()` starts each piece as a background process tracked by a PID file under
`.local/stack/`, creates a generator, an agent and a sample stack through the
broker's API, waits until the sample's objects are in the cluster and prints where
everything is. `down()` stops exactly what `up()` started (by PID) and removes the
stack's state, so the next `up()` starts clean.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brokkr_dev.base import paths
from brokkr_dev.base import process as proc
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.localnet import port_or_free, wait_for
from brokkr_dev.base.log import Log
from brokkr_dev.clusters import DEFAULT_NAME, get_provider
from brokkr_dev.clusters.api import ClusterClient
from brokkr_dev.local.broker_admin import BrokerAdmin
from brokkr_dev.local.postgres import PostgresServer, temporary_server
from brokkr_dev.local.services import LocalAgent, LocalBroker, Service

AGENT_NAME, CLUSTER_NAME = "local-agent", "local"
SAMPLE_NAMESPACE = "brokkr-sample"
SAMPLE_STACK = f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {SAMPLE_NAMESPACE}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
  namespace: {SAMPLE_NAMESPACE}
data:
  message: hello from brokkr
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: {SAMPLE_NAMESPACE}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: hello}}
  template:
    metadata:
      labels: {{app: hello}}
    spec:
      containers:
        - name: hello
          image: registry.invalid/hello:1.0
          ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: {SAMPLE_NAMESPACE}
spec:
  selector: {{app: hello}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
SAMPLE_OBJECTS = (
    f"/api/v1/namespaces/{SAMPLE_NAMESPACE}/configmaps/greeting",
    f"/apis/apps/v1/namespaces/{SAMPLE_NAMESPACE}/deployments/hello",
    f"/api/v1/namespaces/{SAMPLE_NAMESPACE}/services/hello",
)


class StackError(AutomationError):
    """A piece of the local stack did not come up; the message says which and where its log is."""


@dataclass(frozen=True)
class StackDir:
    """Where the local stack keeps its state: `.local/stack/`."""

    root: Path

    @classmethod
    def default(cls) -> StackDir:
        return cls(paths.state_dir() / "stack")

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def admin_pak(self) -> Path:
        return self.root / "admin.pak"

    @property
    def agent_pak(self) -> Path:
        return self.root / "agent.pak"

    @property
    def info(self) -> Path:
        return self.root / "stack.json"


def _track(service: Service, where: StackDir) -> None:
    """A PID file for a started service, so `down` (another process) can stop it."""
    pid = service.pid
    proc.ProcessRecord(service.name, pid, sys.executable, proc.start_ticks(pid) or 0).save(
        where.pids
    )


def _start(service: Service, where: StackDir) -> None:
    """Start a service detached (it outlives `up`), wait until ready, track its PID."""
    service.start()
    _track(service, where)


def _start_postgres(where: StackDir, log: Log) -> PostgresServer:
    log("starting PostgreSQL ...")
    # Under /tmp, not .local/: the server runs as the `postgres` user, which cannot
    # enter a clone that lives in a private home directory.
    database = temporary_server()
    _remember(where, postgres_root=str(database.root.parent))
    database.start()
    if database.process is None:
        raise StackError(f"PostgreSQL did not start; see {database.log_file}")
    proc.ProcessRecord(
        "postgres",
        database.process.pid,
        str(database.bindir / "postgres"),
        proc.start_ticks(database.process.pid) or 0,
    ).save(where.pids)
    database.psql("CREATE DATABASE brokkr")
    return database


@dataclass(frozen=True)
class Options:
    """What `up` may vary: tests use their own cluster and free ports."""

    interval: float = 2.0
    cluster_name: str = DEFAULT_NAME
    cluster_base: str | None = None  # default: .local/clusters/
    broker_port: int = 3000  # taken only when free; 0 = any free port
    health_port: int = 8080


def _provider(name: str, base: str | None, log: Log) -> Any:
    options: dict[str, Any] = {"log": log}
    if base:
        options["base"] = Path(base)
    return get_provider("local", name, **options)


def up(
    log: Log = print, where: StackDir | None = None, options: Options | None = None
) -> dict[str, Any]:
    """Start everything and apply the sample stack; returns what `summary()` prints."""
    where = where or StackDir.default()
    try:
        return _up(log, where, options or Options())
    except BaseException:
        log(f"local Brokkr did not come up; logs are in {where.logs}; `nox -s down` cleans up")
        raise


def _up(log: Log, where: StackDir, options: Options) -> dict[str, Any]:
    if where.info.exists():
        info: dict[str, Any] = json.loads(where.info.read_text())
        if all(proc.alive(r) for r in proc.records(where.pids)) and info.get("ready"):
            log("local Brokkr is already running; `nox -s down` stops it")
            return info
        log("a previous local stack is partly running: stopping it first")
        down(log, where)
    started = time.monotonic()
    for directory in (where.pids, where.logs):
        directory.mkdir(parents=True, exist_ok=True)
    database = _start_postgres(where, log)

    log("starting the local Kubernetes cluster (first run builds it; cached later) ...")
    provider = _provider(options.cluster_name, options.cluster_base, log)
    # A cluster that was already running is left running by `down`.
    _remember(
        where,
        cluster_started=not provider.status().running,
        cluster_name=options.cluster_name,
        cluster_base=options.cluster_base,
    )
    provider.up()
    kubeconfig = provider.kubeconfig

    broker_port = port_or_free(options.broker_port)
    log(f"starting the broker on http://127.0.0.1:{broker_port} ...")
    broker = LocalBroker(
        {
            "database": {"url": database.dsn("brokkr")},
            "broker": {"admin_pak_file": where.admin_pak},
            "log": {"format": "text"},
        },
        port=broker_port,
        log_file=where.logs / "broker.log",
        detach=True,
    )
    _start(broker, where)
    broker_url = broker.url
    admin = BrokerAdmin(broker_url, broker.admin_pak())

    generator_id = admin.generator("local")
    agent_id, agent_pak = admin.agent(AGENT_NAME, CLUSTER_NAME)
    where.agent_pak.touch(mode=0o600)
    where.agent_pak.write_text(agent_pak + "\n")

    health_port = port_or_free(options.health_port)
    log(f"starting the agent (health on :{health_port}) ...")
    agent = LocalAgent(
        {
            "agent": {
                "broker_url": broker_url,
                "pak_file": where.agent_pak,
                "agent_name": AGENT_NAME,
                "cluster_name": CLUSTER_NAME,
                "kubeconfig": kubeconfig,
                "generator_ids": [generator_id],
                "polling_interval": options.interval,
            },
            "log": {"format": "text"},
        },
        health_port=health_port,
        log_file=where.logs / "agent.log",
        detach=True,
    )
    _start(agent, where)
    health_url = agent.health_url

    log("applying the sample stack ...")
    stack_id = admin.stack("sample", generator_id)
    deployment = admin.deploy(stack_id, SAMPLE_STACK)
    admin.target(agent_id, stack_id)
    kube = ClusterClient.from_kubeconfig(kubeconfig)
    wait_for(
        lambda: all(kube.exists(path) for path in SAMPLE_OBJECTS),
        60,
        f"the sample stack in namespace {SAMPLE_NAMESPACE} (agent log {where.logs}/agent.log)",
    )
    event = wait_for(
        lambda: admin.event_for(agent_id, deployment["id"]),
        30,
        "the agent's DEPLOY event",
    )
    kube.close()
    info = {
        "ready": True,
        "seconds": round(time.monotonic() - started, 1),
        "broker_url": broker_url,
        "database_url": database.dsn("brokkr"),
        "admin_pak_file": str(where.admin_pak),
        "agent_id": agent_id,
        "agent_health": health_url,
        "kubeconfig": str(kubeconfig),
        "stack_id": stack_id,
        "event": f"{event['event_type']} {event['status']}: {event.get('message')}",
        "logs": str(where.logs),
    }
    _remember(where, **info)
    return info


def _remember(where: StackDir, **fields: Any) -> None:
    known = json.loads(where.info.read_text()) if where.info.exists() else {}
    where.info.write_text(json.dumps(known | fields, indent=2) + "\n")


def summary(info: dict[str, Any]) -> str:
    """What to tell the user after `up`: where things are and what to try next."""
    kubectl = paths.BIN_DIR / "kubectl"
    kube_hint = (
        f"KUBECONFIG={info['kubeconfig']} {kubectl} get all -n {SAMPLE_NAMESPACE}"
        if kubectl.exists()
        else f"KUBECONFIG={info['kubeconfig']} kubectl get all -n {SAMPLE_NAMESPACE}"
    )
    return f"""
Local Brokkr is up ({info["seconds"]} s to the sample stack applied).

  broker API     {info["broker_url"]}/api/v1
  admin PAK      {info["admin_pak_file"]}   (keep it private; it is the admin credential)
  agent          {AGENT_NAME} in cluster {CLUSTER_NAME}, ACTIVE; health {info["agent_health"]}
  cluster        KUBECONFIG={info["kubeconfig"]}
  sample stack   namespace {SAMPLE_NAMESPACE}: {info["event"]}
  logs           {info["logs"]}

Next:
  export BROKKR_PAK=$(cat {info["admin_pak_file"]})
  curl -s -H "Authorization: Bearer $BROKKR_PAK" {info["broker_url"]}/api/v1/agents
  curl -s -H "Authorization: Bearer $BROKKR_PAK" {info["broker_url"]}/api/v1/agents/{info["agent_id"]}/events
  curl -s {info["agent_health"]}
  {kube_hint}
  nox -s down      # stop everything `up` started
"""


def down(log: Log = print, where: StackDir | None = None) -> None:
    """Stop the agent, the broker, the cluster and PostgreSQL (by PID), then remove the state."""
    where = where or StackDir.default()
    records = {r.name: r for r in proc.records(where.pids)} if where.pids.exists() else {}
    for name in ("agent", "broker"):
        record = records.pop(name, None)
        if record and proc.stop(record, where.pids):
            log(f"stopped the {name}")
    known = json.loads(where.info.read_text()) if where.info.exists() else {}
    if known.get("cluster_started", True):
        name = known.get("cluster_name", DEFAULT_NAME)
        _provider(name, known.get("cluster_base"), log).down()
    else:
        log(f"leaving cluster {known.get('cluster_name')} running: it was running before `up`")
    for record in records.values():
        if proc.stop(record, where.pids):
            log(f"stopped {record.name}")
    if known.get("postgres_root"):
        shutil.rmtree(known["postgres_root"], ignore_errors=True)
    if where.root.exists():
        shutil.rmtree(where.root)
    log("local Brokkr is down")
