"""One launcher per service: `LocalBroker` and `LocalAgent`, on one `Service` base.

A launcher owns its process from start to stop:

- the environment: `BROKKR__SECTION__KEY` variables rendered from a settings mapping
  (`{"broker": {"workers": 2}}`) whose names are checked against the service's own
  settings model, so a typo fails here instead of in the child's log; the caller's
  own `BROKKR__` variables and config file never leak into the child;
- the start: `python -m <service>` with output appended to a log file;
- the wait until ready: a probe polled with a deadline (the broker's /healthz, the
  agent's /health); a child that exits or never gets ready is stopped, and the error
  carries the end of its log;
- the stop: SIGTERM, then SIGKILL after a bound, and the exit code.

The local stack, the benchmarks and the tests start service processes only through
here, so this is the one place that writes a launched service's environment.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import requests
from pydantic import BaseModel, SecretStr

from brokkr.agent.settings import Settings as AgentModel
from brokkr.broker.settings import Settings as BrokerModel
from brokkr.common.config import ENV_PREFIX, FILE_SUFFIX, FILE_VARIABLE, env_name
from brokkr_dev.base import process as proc
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.localnet import HOST, free_port, wait_for

T = TypeVar("T")
# section -> key -> value; a nested mapping is a nested section (broker.tls).
Settings = Mapping[str, Mapping[str, Any]]

START_TIMEOUT = 60.0
LOG_TAIL_LINES = 20


class ServiceError(AutomationError):
    """A service did not start, or was asked for with settings it does not have."""


def settings_env(model: type[BaseModel], settings: Settings) -> dict[str, str]:
    """The `BROKKR__SECTION__KEY` variables for `settings`, each name checked against
    `model`. Values are passed as given (a test may want a bad one); None means unset."""
    env: dict[str, str] = {}
    for section, values in settings.items():
        _render(model, (section,), values, env)
    return env


def _render(model: type[BaseModel], path: tuple[str, ...], value: Any, env: dict[str, str]) -> None:
    key = path[-1]
    fields = model.model_fields
    # `x_file` names a file holding `x` (brokkr.common.config).
    known = key if key in fields else key.removesuffix(FILE_SUFFIX)
    if known not in fields:
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f"; did you mean {env_name((*path[:-1], close[0]))}?" if close else ""
        raise ServiceError(
            f"{env_name(path)}: {model.__name__} has no setting {key!r}{hint} "
            f"(known: {', '.join(sorted(fields))})"
        )
    annotation = fields[known].annotation
    section = (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )
    if isinstance(value, Mapping):
        if section is None or known != key:
            raise ServiceError(f"{env_name(path)} is a single value, not a section")
        for child, child_value in value.items():
            _render(section, (*path, child), child_value, env)
    elif value is not None:
        env[env_name(path)] = _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def merged(base: Settings, overlay: Settings) -> dict[str, dict[str, Any]]:
    """`base` with `overlay` on top, nested sections merged key by key."""
    result: dict[str, dict[str, Any]] = {k: dict(v) for k, v in base.items()}
    for section, values in overlay.items():
        target = result.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, Mapping) and isinstance(target.get(key), Mapping):
                target[key] = merged({key: target[key]}, {key: value})[key]
            else:
                target[key] = value
    return result


class Service:
    """A Brokkr service as a child process; subclasses say which one and how to probe it.

    `env` adds or overrides raw variables after the settings (for a test that needs a
    value the settings cannot express, or PYTHONPATH); `detach` starts the child in
    its own session, so it outlives the caller and its Ctrl-C (the local stack).
    """

    name: ClassVar[str]
    module: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    serve_args: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        settings: Settings,
        *,
        log_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> None:
        self.settings = merged(settings, {})
        self.log_file = log_file
        self.overrides = dict(env or {})
        self.detach = detach
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # --- what runs ---------------------------------------------------------------------

    def argv(self, *args: str, module: str | None = None) -> list[str]:
        return [sys.executable, "-m", module or self.module, *args]

    @classmethod
    def settings_environment(cls, settings: Settings) -> dict[str, str]:
        """Only the `BROKKR__` variables for `settings` (a container's environment)."""
        return settings_env(cls.model, settings)

    def environment(self) -> dict[str, str]:
        """The child's environment: ours without Brokkr configuration, then the settings."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(ENV_PREFIX) and k != FILE_VARIABLE
        }
        return inherited | settings_env(self.model, self.settings) | self.overrides

    # --- start and readiness -------------------------------------------------------------

    def start(self, wait: bool = True, timeout: float = START_TIMEOUT) -> Self:
        """Start the service; with `wait`, return once it is ready (ServiceError if not)."""
        if self.running:
            raise ServiceError(f"the {self.name} already runs (PID {self.pid})")
        if self.log_file is None:
            raise ServiceError(f"the {self.name} needs a log_file to start in the background")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                self.argv(*self.serve_args),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.detach,
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def ready(self) -> bool:
        """One probe: True once the service answers as ready."""
        raise NotImplementedError

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll `ready()` until it holds; on exit or timeout stop the child and raise
        ServiceError with the end of its log."""
        try:
            self.wait_until(
                lambda: self._alive() and self.ready(), timeout, f"the {self.name} to be ready"
            )
        except BaseException:
            self.stop()  # never leave a half-started service behind
            raise

    def wait_until(self, condition: Callable[[], T | None], timeout: float, what: str) -> T:
        """Poll `condition` with a deadline; on timeout the error has the log's tail."""
        try:
            return wait_for(condition, timeout, f"{what} ({self.name} at {self.where})")
        except TimeoutError as exc:
            raise ServiceError(f"{exc}\n{self._tail_note()}") from None

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServiceError(
                f"the {self.name} exited with code {self.process.returncode} during "
                f"start-up\n{self._tail_note()}"
            )
        return True

    @property
    def where(self) -> str:
        """Where it answers, for messages."""
        raise NotImplementedError

    # --- state and logs ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServiceError(f"the {self.name} was not started")
        return self.process.pid

    def log(self) -> str:
        """What the service wrote since its last start."""
        if self.log_file is None or not self.log_file.exists():
            return ""
        with self.log_file.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def _tail_note(self) -> str:
        return f"last lines of {self.log_file}:\n{self.log_tail()}"

    # --- stop ----------------------------------------------------------------------------

    def stop(self, timeout: float = proc.STOP_TIMEOUT) -> int | None:
        """SIGTERM, SIGKILL after `timeout`; the exit code (None if never started)."""
        if self.process is None:
            return None
        proc.stop_child(self.process, timeout)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL at once (a test's clean-up after the behaviour under test)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def wait_exit(self, timeout: float) -> int:
        """Wait for a child that is expected to exit by itself; its exit code."""
        if self.process is None:
            raise ServiceError(f"the {self.name} was not started")
        return self.process.wait(timeout)

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one-off commands ----------------------------------------------------------------

    def run_to_exit(
        self, *args: str, module: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the service (default: serve) to its end, output captured:
        for start-up failures and one-shot subcommands. `module` runs another entry
        point of the service with the same settings (the agent's registration check)."""
        return subprocess.run(
            self.argv(*(args if args or module else self.serve_args), module=module),
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        """Start a command of the service with this environment; the caller waits for it."""
        return subprocess.Popen(self.argv(*args), env=self.environment(), text=True, **popen)


@dataclass(frozen=True)
class Tls:
    """HTTPS for the broker: its certificate and key, and the CA that signed them."""

    cert_file: Path
    key_file: Path
    ca_file: Path


class LocalBroker(Service):
    """`brokkr-broker serve` on 127.0.0.1 and a port picked at run time (or `port`)."""

    name = "broker"
    module = "brokkr.broker.cli"
    model = BrokerModel
    serve_args = ("serve",)

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        tls: Tls | None = None,
        log_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        listen: dict[str, Any] = {"host": HOST, "port": self.port}
        if tls:
            listen["tls"] = {"enabled": True, "cert_file": tls.cert_file, "key_file": tls.key_file}
        super().__init__(
            merged(settings, {"broker": listen}), log_file=log_file, env=env, detach=detach
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    @property
    def where(self) -> str:
        return self.url

    @property
    def verify(self) -> str | bool:
        """What a client passes as `verify=` to trust this broker."""
        return str(self.tls.ca_file) if self.tls else True

    @property
    def admin_pak_file(self) -> Path | None:
        """Where the broker writes the admin PAK it mints (when configured)."""
        configured = self.settings.get("broker", {}).get("admin_pak_file")
        return Path(configured) if configured else None

    def admin_pak(self) -> str:
        """The admin PAK the broker minted on its first start."""
        if self.admin_pak_file is None:
            raise ServiceError("the broker was started without broker.admin_pak_file")
        return self.admin_pak_file.read_text().strip()

    def ready(self) -> bool:
        # The admin PAK is minted before the server listens, so ready means it exists.
        reply = requests.get(f"{self.url}/healthz", timeout=2, verify=self.verify)
        return reply.status_code == 200


class LocalAgent(Service):
    """`brokkr-agent` with its health server on 127.0.0.1 and a port picked at run time.

    The caller's KUBECONFIG is not passed on: the settings say which cluster it manages.
    """

    name = "agent"
    module = "brokkr.agent.cli"
    model = AgentModel

    def __init__(
        self,
        settings: Settings,
        *,
        health_port: int | None = None,
        log_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        detach: bool = False,
    ) -> None:
        self.health_port = health_port or free_port()
        super().__init__(
            merged(settings, {"agent": {"health_port": self.health_port, "health_bind": HOST}}),
            log_file=log_file,
            env=env,
            detach=detach,
        )

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if "KUBECONFIG" not in self.overrides:
            env.pop("KUBECONFIG", None)
        return env

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.health_port}/health"

    @property
    def where(self) -> str:
        return self.health_url

    def get(self, path: str) -> requests.Response:
        """GET one of the agent's own endpoints (/healthz, /readyz, /health, /metrics)."""
        return requests.get(f"http://{HOST}:{self.health_port}{path}", timeout=5)

    def health(self) -> dict[str, Any]:
        details: dict[str, Any] = self.get("/health").json()
        return details

    def ready(self) -> bool:
        # Healthy: registered with the broker and the cluster reachable.
        return self.health()["status"] == "healthy"
