"""Find a Docker engine that answers, or start our own machine-wide dockerd.

kind needs a Docker engine (Podman stays the image builder: see docs/kubernetes.md).
`ensure_engine` uses one that already answers (DOCKER_HOST, the default socket on a
laptop or GitHub Actions, or ours from an earlier run); otherwise it installs
Debian's docker.io and starts dockerd with its own data root, exec root, pidfile and
socket (host.EngineLayout). `stop_engine` stops only that dockerd, found by the PID
in its pidfile, and removes its bridges and iptables rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import system
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.localnet import wait_for
from brokkr_dev.base.log import Log
from brokkr_dev.containers.engine import cleanup, host, leases, runc_wrapper

START_TIMEOUT = 90.0
STOP_TIMEOUT = 120.0  # dockerd stops every container first (kind nodes take seconds)
REAL_RUNC = "/usr/sbin/runc"


class EngineError(AutomationError):
    """No container engine could be found or started; the message says what to do."""


@dataclass(frozen=True)
class Engine:
    """A Docker engine that answers: its DOCKER_HOST, and whether we started it."""

    host: str
    ours: bool
    server_version: str
    pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for the docker CLI and kind to reach this engine."""
        return {"DOCKER_HOST": self.host}

    def docker(
        self, *args: str, timeout: float = 600, check: bool = True, input_text: str | None = None
    ) -> str:
        """Run the docker CLI against this engine and return its stdout."""
        return docker(self.host, *args, timeout=timeout, check=check, input_text=input_text)

    def registry_mirrors(self) -> list[str]:
        """The engine's `registry-mirrors`, which it asks before Docker Hub ([] when none,
        or when `docker info` fails)."""
        text = self.docker(
            "info", "--format", "{{json .RegistryConfig.Mirrors}}", check=False
        ).strip()
        try:
            return [str(url) for url in json.loads(text or "null") or []]
        except ValueError:
            return []


def docker(
    docker_host: str,
    *args: str,
    timeout: float = 600,
    check: bool = True,
    input_text: str | None = None,
) -> str:
    """`docker ARGS` against `docker_host` (`input_text` on its stdin); EngineError with
    stderr on failure."""
    binary = shutil.which("docker")
    if binary is None:
        raise EngineError(
            "the docker CLI is not installed: `invoke system.install --features engine`"
        )
    env = {**os.environ, "DOCKER_HOST": docker_host}
    try:
        result = subprocess.run(
            [binary, *args],
            input=input_text,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"`docker {' '.join(args)}` took more than {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        raise EngineError(
            f"`docker {' '.join(args)}` failed (DOCKER_HOST={docker_host}):\n"
            f"{result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def answers(docker_host: str, timeout: float = 10) -> str | None:
    """The server version of the engine at docker_host, or None when none answers."""
    if docker_host.startswith("unix://") and not Path(docker_host[7:]).exists():
        return None
    try:
        version = docker(
            docker_host, "version", "--format", "{{.Server.Version}}", timeout=timeout, check=False
        ).strip()
    except EngineError:
        return None
    return version or None


def context_host(env: Mapping[str, str]) -> str | None:
    """The endpoint of the current Docker context when it is not the default one
    (DOCKER_HOST, when set, wins over any context, as for the docker CLI)."""
    binary = shutil.which("docker")
    if binary is None or env.get("DOCKER_HOST"):
        return None
    try:
        done = subprocess.run(
            [binary, "context", "inspect", "--format", "{{.Name}} {{.Endpoints.docker.Host}}"],
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    name, _, endpoint = done.stdout.strip().partition(" ")
    if done.returncode != 0 or name in {"", "default"} or not endpoint:
        return None
    return endpoint


def find_engine(
    layout: host.EngineLayout | None = None, env: Mapping[str, str] | None = None
) -> Engine | None:
    """The first engine that answers, or None; starts nothing. The one "does Docker
    answer" probe: DOCKER_HOST or the current Docker context, the default socket,
    then our own dockerd's socket."""
    environment = dict(os.environ if env is None else env)
    layout = layout or host.EngineLayout.from_env(environment)
    candidates = host.candidate_hosts(environment, layout, context_host(environment))
    for docker_host, ours in candidates:
        version = answers(docker_host)
        if version:
            return Engine(docker_host, ours, version, running_pid(layout) if ours else None)
    return None


def ensure_engine(log: Log = print, layout: host.EngineLayout | None = None) -> Engine:
    """An engine that answers: one already running, else our own dockerd (idempotent)."""
    layout = layout or host.EngineLayout.from_env()
    found = find_engine(layout)
    if found is None:
        return start_engine(log, layout)
    log(
        f"container engine: Docker {found.server_version} at {found.host}"
        + (" (ours)" if found.ours else "")
    )
    return found


def start_engine(log: Log, layout: host.EngineLayout) -> Engine:
    """Install docker.io when needed and start our dockerd; wait until it answers."""
    if os.geteuid() != 0:
        raise EngineError(
            "no Docker engine answers (tried DOCKER_HOST, the current Docker context and "
            f"unix://{host.DEFAULT_DOCKER_SOCKET}), and only root may start one. Start "
            "Docker (`sudo systemctl start docker`; add yourself to the docker group), or "
            "point DOCKER_HOST at a rootless engine (`dockerd-rootless.sh`)."
        )
    if not system.sbin_program("dockerd"):
        log("installing Debian's docker.io (the engine kind needs)")
        system.ensure(["engine"])
    if running_pid(layout):
        raise EngineError(
            f"our dockerd (pid {running_pid(layout)}) is running but does not answer at "
            f"{layout.host}; see {layout.log_file}, then `invoke engine.down` and retry"
        )
    missing = host.host_missing_capabilities()
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.docker_root.mkdir(parents=True, exist_ok=True)
    if missing:
        install_runtime_wrapper(layout, missing)
        log(f"this host withholds {', '.join(missing)}: runc wrapper {layout.runtime_wrapper}")
    record_forward_policy(layout)
    # A mark left by a session whose engine has gone since is not about this engine.
    leases.handover_mark(layout.run_dir).unlink(missing_ok=True)
    arguments = host.dockerd_arguments(layout, wrap_runtime=bool(missing))
    log(
        f"starting dockerd at {layout.host} (data root {layout.docker_root}, log {layout.log_file})"
    )
    with layout.log_file.open("ab") as output:
        subprocess.Popen(
            arguments,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,  # outlives this process: the engine is machine-wide
            close_fds=True,
        )
    try:
        version = wait_for(lambda: answers(layout.host), START_TIMEOUT, "dockerd to answer")
    except TimeoutError as exc:
        tail = "\n".join(_tail(layout.log_file, 15))
        raise EngineError(f"{exc}; the end of {layout.log_file}:\n{tail}") from exc
    return Engine(layout.host, True, version, running_pid(layout))


def install_runtime_wrapper(layout: host.EngineLayout, missing: tuple[str, ...]) -> None:
    """Write the runc wrapper (a copy, so it outlives this clone) next to the data root."""
    real = shutil.which("runc") or REAL_RUNC
    source = host.wrapper_source(Path(runc_wrapper.__file__).read_text(), real, missing)
    partial = layout.runtime_wrapper.with_suffix(".tmp")
    partial.write_text(source)
    partial.chmod(0o755)
    partial.replace(layout.runtime_wrapper)


def running_pid(layout: host.EngineLayout) -> int | None:
    """The PID of OUR dockerd: from its pidfile, and only if that process is a dockerd
    serving our socket (a stale pidfile or a reused PID is not ours)."""
    try:
        pid = int(layout.pidfile.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    words = [w.decode(errors="replace") for w in command]
    is_dockerd = bool(words) and Path(words[0]).name == "dockerd"
    return pid if is_dockerd and layout.host in words else None


def engine_bridges(docker_host: str) -> set[str]:
    """The Linux bridges of the engine's bridge networks (docker0, kind's br-...)."""
    ids = docker(docker_host, "network", "ls", "--quiet", "--filter", "driver=bridge").split()
    if not ids:
        return set()
    details = json.loads(docker(docker_host, "network", "inspect", *ids))
    return {cleanup.bridge_name(n["Id"], n.get("Options") or {}) for n in details}


def stop_engine(log: Log = print, layout: host.EngineLayout | None = None) -> bool:
    """Stop OUR dockerd (never another engine) and remove its bridges and iptables
    rules. Returns False when it was not running."""
    layout = layout or host.EngineLayout.from_env()
    pid = running_pid(layout)
    bridges: set[str] = set()
    if pid is not None:
        try:
            bridges = engine_bridges(layout.host)
        except EngineError as exc:
            log(f"could not list the engine's networks ({exc}); removing Docker-named bridges")
        log(f"stopping our dockerd (pid {pid}); it stops its containers first")
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT):
            log(f"dockerd {pid} did not stop within {STOP_TIMEOUT:.0f} s: killing it")
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
    if not bridges and not _another_dockerd_runs():
        bridges = set(cleanup.leftover_bridges(_link_names()))
    remove_host_networking(layout, bridges, log)
    layout.pidfile.unlink(missing_ok=True)
    leases.handover_mark(layout.run_dir).unlink(missing_ok=True)
    return pid is not None


def remove_host_networking(layout: host.EngineLayout, bridges: set[str], log: Log) -> None:
    """Delete the bridges and Docker's iptables rules; restore FORWARD's policy."""
    for bridge in sorted(bridges):
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)
    if _another_dockerd_runs() or not shutil.which("iptables-save"):
        return  # its rules share the DOCKER chains; leave them
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    if not saved.strip():
        return
    cleaned = cleanup.strip_docker_rules(saved, bridges)
    policy_file = layout.run_dir / "forward-policy"
    if policy_file.exists():
        cleaned = cleanup.set_forward_policy(cleaned, policy_file.read_text().strip())
        policy_file.unlink()
    if cleaned != saved:
        result = subprocess.run(
            ["iptables-restore"], input=cleaned, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            log(f"iptables-restore failed, Docker's rules stay: {result.stderr.strip()}")
            return
    if bridges:
        log(f"removed bridges {', '.join(sorted(bridges))} and Docker's iptables rules")


def record_forward_policy(layout: host.EngineLayout) -> None:
    """Remember FORWARD's policy before dockerd sets it to DROP, to restore it later."""
    policy_file = layout.run_dir / "forward-policy"
    if policy_file.exists() or not shutil.which("iptables-save"):
        return
    saved = subprocess.run(
        ["iptables-save", "-t", "filter"], capture_output=True, text=True, check=False
    ).stdout
    policy = cleanup.forward_policy(saved)
    if policy:
        policy_file.write_text(policy + "\n")


KEEP_ENV = "BROKKR_KEEP_ENGINE"  # 1: a session leaves the dockerd it started running


@contextlib.contextmanager
def session_engine(log: Log = print, keep: bool | None = None) -> Iterator[None]:
    """Around a session: at its end, stop OUR dockerd if this session started it (unless
    asked to keep it), and say which engine was used and whether it still runs.

    An engine that ran before the session (the user's Docker, or ours from an earlier
    `invoke engine.up`) is left exactly as it was. While other sessions still use the
    engine this one started, the last of them stops it (leases.py).
    """
    layout = host.EngineLayout.from_env()
    lease = leases.take(layout.run_dir)
    before = running_pid(layout)
    keep = os.environ.get(KEEP_ENV, "") == "1" if keep is None else keep
    try:
        yield
    finally:
        leases.release(lease)
        log(_session_end(layout, before, keep, log))


def _session_end(layout: host.EngineLayout, before: int | None, keep: bool, log: Log) -> str:
    pid = running_pid(layout)
    handover = leases.handover_mark(layout.run_dir)
    # Started by this session, or by one that handed it over to the last user.
    if pid and (not before or handover.exists()):
        users = leases.others(layout.run_dir)
        if users and not keep:
            with contextlib.suppress(OSError):
                handover.touch()
            return (
                f"engine: our dockerd (pid {pid}, {layout.host}) is still used by the "
                f"session(s) with pid {', '.join(map(str, users))}; the last of them stops it"
            )
        handover.unlink(missing_ok=True)
        if keep:
            return (
                f"engine: our dockerd (pid {pid}, {layout.host}) was started by this session "
                f"and keeps running as asked; stop it with `invoke engine.down`"
            )
        stop_engine(log, layout)
        return (
            f"engine: our dockerd ({layout.host}) was started by this session and is "
            f"stopped now (set {KEEP_ENV}=1 to keep it)"
        )
    if pid:
        return (
            f"engine: our dockerd (pid {pid}, {layout.host}) ran before this session and still runs"
        )
    found = find_engine(layout)
    if found:
        return f"engine: Docker {found.server_version} at {found.host} (not ours), left as it was"
    return "engine: none was used or left running"


def engine_status(layout: host.EngineLayout | None = None) -> str:
    """Which engine answers, whether it is ours, and our dockerd's state."""
    layout = layout or host.EngineLayout.from_env()
    lines = []
    for docker_host, ours in host.candidate_hosts(dict(os.environ), layout):
        version = answers(docker_host)
        state = f"Docker {version}" if version else "no answer"
        lines.append(f"{docker_host}: {state}" + (" (ours)" if ours else ""))
    pid = running_pid(layout)
    lines.append(f"our dockerd: {'pid ' + str(pid) if pid else 'not running'}")
    lines.append(f"data root: {layout.docker_root}")
    missing = host.host_missing_capabilities()
    lines.append(
        "privileged containers: "
        + (f"runc wrapper drops {', '.join(missing)}" if missing else "plain runc")
    )
    return "\n".join(lines)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    return not Path(f"/proc/{pid}").exists()


def _another_dockerd_runs() -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if words and Path(words[0].decode(errors="replace")).name == "dockerd":
            return True
    return False


def _link_names() -> list[str]:
    result = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
    )
    return [
        line.split(":")[1].strip().split("@")[0]
        for line in result.stdout.splitlines()
        if ":" in line
    ]


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []
