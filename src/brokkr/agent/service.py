"""The agent process: start-up against the broker, then the reconcile loop."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from types import FrameType
from typing import Any

from brokkr.agent import manifests
from brokkr.agent.broker_client import BrokerClient, BrokerError, BrokerTlsError
from brokkr.agent.health import Readiness, serve
from brokkr.agent.kube import KubeClient, KubeConfigError, KubeError, resolve
from brokkr.agent.reconcile import SUCCESS, Abandoned, Reconciler
from brokkr.agent.settings import Settings
from brokkr.agent.state import AgentState
from brokkr.common import telemetry

log = logging.getLogger("brokkr.agent")

EXIT_OK, EXIT_STARTUP = 0, 1


class KubeDown(KubeError):
    """The reachability probe failed: skip this cycle's Kubernetes work."""


class StartupError(RuntimeError):
    """The agent cannot start; the message says why and what to change."""


def backoff(failures: int, base: float, cap: float) -> float:
    """Delay before the next try after `failures` consecutive failures: exponential, full jitter.

    Never below half the exponential value, so a storm of agents spreads out without
    any of them retrying immediately.
    """
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311  # jitter, not crypto


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings.agent
        self.state = AgentState()
        self.stop = threading.Event()
        self.broker = BrokerClient(
            self.settings.broker_url,
            self.settings.pak.get_secret_value(),
            self.settings.ca_file,
            self.settings.request_timeout,
        )
        self.agent_id = ""
        self._last_prune_key: tuple[tuple[str, str], ...] | None = None
        self._last_prune_at = 0.0

    # --- process -------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the agent within `shutdown_timeout`.

        The handler runs on the main thread between two bytecodes, possibly in the
        middle of a write to stderr, which is not reentrant: a log call there raised
        and lost the stop. So the handler only flips the stop flag; a guard thread,
        started now, does the logging and bounds the exit.
        """
        self._signal_name = ""
        threading.Thread(target=self._shutdown_guard, name="shutdown-guard", daemon=True).start()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            return
        self._signal_name = signal.Signals(signum).name
        self.state.phase = "stopping"
        self.stop.set()

    def _shutdown_guard(self) -> None:
        """Once stopping: say so, and exit after the grace period even if an API call
        is stuck past its own timeouts."""
        self.stop.wait()
        timeout = self.settings.shutdown_timeout
        log.info("received %s: stopping (at most %.0f s)", self._signal_name, timeout)
        time.sleep(timeout)
        log.warning("shutdown took longer than %.0f s; abandoning the current work", timeout)
        logging.shutdown()
        os._exit(EXIT_OK)

    def run(self) -> int:
        try:
            access = resolve(self.settings.kubeconfig)
            kube = KubeClient(access, timeout=self.settings.request_timeout)
        except KubeConfigError as exc:
            log.error("%s", exc)
            return EXIT_STARTUP
        log.info("Kubernetes API %s via %s", access.server, access.source)
        readiness = Readiness(kube, self.state)
        try:
            server = serve(
                self.state, readiness, self.settings.health_bind, self.settings.health_port
            )
        except OSError as exc:
            log.error(
                "cannot serve health on port %d: %s; set BROKKR__AGENT__HEALTH_PORT to a free port",
                self.settings.health_port,
                exc,
            )
            return EXIT_STARTUP
        log.info(
            "health server on :%d (/healthz /readyz /health /metrics)", server.server_address[1]
        )
        try:
            try:
                self.start()
            except StartupError as exc:
                log.error("start-up failed: %s", exc)
                return EXIT_STARTUP
            if self.stop.is_set():
                return EXIT_OK
            self.loop(kube)
            return EXIT_OK
        finally:
            server.shutdown()
            log.info("stopped")

    # --- start-up ------------------------------------------------------------------

    def start(self) -> None:
        """Wait for the broker, verify the PAK, find this agent, register generators."""
        deadline = time.monotonic() + self.settings.startup_timeout
        failures = 0
        while not self.stop.is_set():
            try:
                self._identify()
                break
            except BrokerTlsError as exc:
                raise StartupError(str(exc)) from None
            except BrokerError as exc:
                if not exc.transient:
                    raise StartupError(self._explain(exc)) from None
                failures += 1
                self.state.update(broker_connected=False, broker_error=str(exc))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StartupError(
                        f"broker at {self.settings.broker_url} not available after "
                        f"{self.settings.startup_timeout:.0f} s ({failures} tries); last error: {exc}. "
                        "Check BROKKR__AGENT__BROKER_URL and that the broker is running"
                    ) from None
                delay = min(remaining, backoff(failures, 1.0, 15.0))
                log.warning(
                    "waiting for the broker (try %d): %s; next try in %.1f s", failures, exc, delay
                )
                self.stop.wait(delay)
        if self.stop.is_set():
            return
        for generator_id in self.settings.generator_ids:
            try:
                added = self.broker.register_generator(generator_id)
            except BrokerError as exc:
                raise StartupError(
                    f"registering with generator {generator_id} failed: {exc}"
                ) from None
            log.info(
                "generator %s: %s", generator_id, "registered" if added else "already registered"
            )
        self.state.update(phase="running")

    def _identify(self) -> None:
        auth = self.broker.verify_pak()
        self.state.update(broker_connected=True, broker_error=None)
        if not auth.get("agent"):
            raise StartupError(
                "BROKKR__AGENT__PAK is not an agent PAK (the broker says admin="
                f"{auth.get('admin')}, generator={auth.get('generator')}); use the PAK "
                "returned when this agent was created"
            )
        name, cluster = self.settings.agent_name, self.settings.cluster_name
        try:
            agent = self.broker.find_agent(name, cluster)
        except BrokerError as exc:
            if exc.status == 404:
                raise StartupError(
                    f"the broker has no agent named {name!r} in cluster {cluster!r}; check "
                    "BROKKR__AGENT__AGENT_NAME and BROKKR__AGENT__CLUSTER_NAME"
                ) from None
            raise
        if agent.get("id") != auth["agent"]:
            raise StartupError(
                f"the PAK belongs to agent {auth['agent']}, not to {name!r}/{cluster!r} ({agent.get('id')}); "
                "use this agent's own PAK"
            )
        self.agent_id = agent["id"]
        self.state.update(agent=agent)
        log.info("agent %s (%s/%s), status %s", self.agent_id, cluster, name, agent.get("status"))

    @staticmethod
    def _explain(exc: BrokerError) -> str:
        if exc.status == 401:
            return f"the broker rejected the PAK ({exc}); check BROKKR__AGENT__PAK / BROKKR__AGENT__PAK_FILE"
        if exc.status == 403:
            return f"the PAK may not do this ({exc}); use the agent's own PAK"
        return str(exc)

    # --- loop --------------------------------------------------------------------------

    def loop(self, kube: KubeClient) -> None:
        reconciler = Reconciler(
            kube,
            self.agent_id,
            self.settings.watch_namespace,
            self.stop,
            self.settings.resync_interval,
        )
        metrics = self.state.metrics
        failures = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with telemetry.span("reconcile", attributes={"brokkr.agent.id": self.agent_id}):
                    self.cycle(reconciler)
                failures = 0
                result = "success"
            except Abandoned:
                break
            except BrokerError as exc:
                failures += 1
                result = "error"
                metrics.error("broker")
                self.state.update(broker_connected=False, broker_error=str(exc))
                log.warning("broker: %s", exc)
            except KubeError as exc:
                failures += 1
                result = "error"
                metrics.error("kubernetes")
                if not isinstance(exc, KubeDown):  # the probe already recorded its error
                    self.state.update(kube_error=str(exc))
                log.warning("%s", exc)
            except Exception:
                failures += 1
                result = "error"
                metrics.error("internal")
                log.exception("unexpected error in the reconcile cycle; retrying")
            elapsed = time.monotonic() - started
            metrics.poll(result, elapsed)
            interval = self.settings.polling_interval
            if failures:
                delay = backoff(failures, interval, max(interval, self.settings.max_backoff))
                log.info("next try in %.1f s (%d consecutive failures)", delay, failures)
            else:
                delay = max(0.0, interval - elapsed)
            self.stop.wait(delay)

    def cycle(self, reconciler: Reconciler) -> None:
        """Heartbeat, refresh own record, apply what is new, prune what left."""
        reachable, latency = self._probe_kube(reconciler.kube)
        self.broker.heartbeat(self.agent_id, reachable, latency)
        self.state.update(broker_connected=True, broker_error=None, last_heartbeat=time.time())
        agent = self.broker.get_agent(self.agent_id)
        changed = agent.get("status") != self.state.agent.get("status")
        self.state.update(agent=agent)
        if agent.get("status") != "ACTIVE":
            log.log(
                logging.INFO if changed else logging.DEBUG,
                "agent status is %s, not ACTIVE: not reconciling",
                agent.get("status"),
            )
            self.state.update(last_successful_poll=time.time())
            return
        if not reachable:
            raise KubeDown(f"Kubernetes API unreachable ({self.state.kube_error}); not reconciling")
        full = self.broker.target_state(self.agent_id, full=True)
        pending = self.broker.target_state(self.agent_id, full=False)
        desired = manifests.newest_per_stack(full)
        for item in sorted(pending, key=lambda d: d["sequence_id"]):
            newest = desired.get(item["stack_id"])
            if newest is None or newest["id"] != item["id"]:
                continue  # superseded by a newer version of its stack
            self._apply(reconciler, item)
        prune_key = tuple(sorted((stack, do["id"]) for stack, do in desired.items()))
        resync_due = time.monotonic() - self._last_prune_at > self.settings.resync_interval
        if prune_key != self._last_prune_key or resync_due:
            deleted = reconciler.prune(desired)
            if deleted:
                self.state.metrics.pruned(deleted)
                log.info("pruned %d object(s) that left the desired state", deleted)
            self._last_prune_key, self._last_prune_at = prune_key, time.monotonic()
        self.state.update(last_successful_poll=time.time())

    def _apply(self, reconciler: Reconciler, item: dict[str, Any]) -> None:
        started = time.monotonic()
        with telemetry.span(
            "apply deployment object",
            attributes={
                "brokkr.deployment_object.id": item["id"],
                "brokkr.stack.id": item["stack_id"],
            },
        ):
            outcome = reconciler.apply(item)
        elapsed = time.monotonic() - started
        self.state.metrics.applied(outcome.status, elapsed, outcome.applied, outcome.deleted)
        level = logging.INFO if outcome.status == SUCCESS else logging.WARNING
        log.log(
            level,
            "deployment object %s (stack %s): %s: %s",
            item["id"],
            item["stack_id"],
            outcome.status,
            outcome.message,
        )
        self.state.update(
            last_reconcile={
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "deployment_object_id": item["id"],
                "stack_id": item["stack_id"],
                "result": outcome.status,
                "message": outcome.message,
                "duration_seconds": round(elapsed, 3),
            }
        )
        self.broker.report_event(self.agent_id, item["id"], outcome.status, outcome.message)

    def _probe_kube(self, kube: KubeClient) -> tuple[bool, int | None]:
        started = time.monotonic()
        try:
            kube.version(timeout=min(5.0, self.settings.request_timeout))
        except KubeError as exc:
            self.state.update(kube_connected=False, kube_error=str(exc))
            return False, None
        latency = int((time.monotonic() - started) * 1000)
        self.state.update(kube_connected=True, kube_latency_ms=latency, kube_error=None)
        return True, latency
