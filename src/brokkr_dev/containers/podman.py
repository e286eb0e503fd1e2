"""The image builders on this kind of machine: choose one, set the host up for Podman.

Docker Buildx (the pinned plugin, see buildx.py) builds when a Docker engine answers
(`brokkr_dev.containers.engine.find_engine`: DOCKER_HOST, the default socket or our
own dockerd; a `docker` CLI alone is not enough); otherwise Podman. Podman on these
hosts (no systemd cgroup delegation, hybrid cgroups, a restrictive RLIMIT_NOFILE)
needs runc, cgroupfs and no default ulimits; `ensure_podman_host()` puts that in
place, and `podman()` adds the global flags to every call, with the storage
podman_storage chose (overlay in our own store where the kernel allows it, else the
machine-wide vfs store).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import tomlkit
import tomlkit.exceptions

from brokkr_dev.base.commands import run
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.log import Log
from brokkr_dev.containers import podman_storage
from brokkr_dev.containers.engine import find_engine

# Flags that make podman work without systemd or crun on these hosts.
PODMAN_RUNTIME_FLAGS = (
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
)
CONTAINERS_CONF = Path("/etc/containers/containers.conf")


def containers_conf() -> Path:
    """The containers.conf podman reads for this user: the machine's for root, the
    user's own (rootless podman merges it over the machine's) for everyone else."""
    if os.geteuid() == 0:
        return CONTAINERS_CONF
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "containers" / "containers.conf"


BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Go architecture name -> binfmt handler that runs its binaries on a foreign host.
QEMU_HANDLERS = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}
BUILDERS = ("auto", "buildx", "podman")


class ContainerError(AutomationError):
    """An image builder is missing or a command failed; the message says what to do."""


def podman(*args: str) -> list[str]:
    """The podman command line with this project's storage and runtime flags."""
    return ["podman", *podman_global_flags(), *args]


def podman_global_flags() -> list[str]:
    """Storage (chosen once per process) and runtime flags for every podman call."""
    try:
        storage = podman_storage.current()
    except podman_storage.StorageError as exc:
        raise ContainerError(str(exc)) from None
    return [*storage.flags, *PODMAN_RUNTIME_FLAGS]


def choose_builder(requested: str = "auto") -> str:
    """'buildx' or 'podman': the requested one, or buildx when a Docker engine answers.

    'buildx' itself starts an engine when none answers (brokkr_dev.containers.engine).
    """
    if requested not in BUILDERS:
        raise ContainerError(f"unknown builder {requested!r}; use auto, buildx or podman")
    if requested != "auto":
        return requested
    if find_engine() is not None:
        return "buildx"
    if shutil.which("podman"):
        return "podman"
    raise ContainerError(
        "no image builder: no Docker engine answers and podman is not installed; "
        "run `invoke system.install --features containers`"
    )


def with_default_ulimits_disabled(text: str) -> str:
    """containers.conf text with `default_ulimits = []` in its [containers] table.

    Edited with tomlkit, so every other setting, comment and layout stays as it was
    (a multi-line array included). Without it runc/crun fail with `setrlimit
    RLIMIT_NOFILE: Operation not permitted` on these hosts.
    """
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ContainerError(
            f"containers.conf is not valid TOML ({exc}); fix it, or add `[containers]` / "
            "`default_ulimits = []` to it by hand"
        ) from None
    table = document.get("containers")
    if table is None:
        table = tomlkit.table()
        document["containers"] = table
    if table.get("default_ulimits") != []:
        table["default_ulimits"] = tomlkit.array()
    return tomlkit.dumps(document)


def ensure_containers_conf(path: Path | None = None) -> bool:
    """Make podman's containers.conf disable default ulimits; True when it changed."""
    path = path or containers_conf()
    current = path.read_text() if path.exists() else ""
    wanted = with_default_ulimits_disabled(current)
    if wanted == current:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted)
    except PermissionError as exc:
        raise ContainerError(
            f"cannot write {path} ({exc.strerror}); run as root or add "
            "`[containers]` / `default_ulimits = []` to it by hand"
        ) from None
    return True


def ensure_emulation(arch: str, binfmt_dir: Path = BINFMT_DIR) -> bool:
    """Make the kernel run `arch` binaries through qemu-user-static; True when it changed."""
    handler = QEMU_HANDLERS.get(arch)
    if handler is None:
        raise ContainerError(f"no emulation known for {arch!r}; known: {', '.join(QEMU_HANDLERS)}")
    entry = binfmt_dir / handler
    if entry.exists() and entry.read_text().startswith("enabled"):
        return False
    if os.geteuid() != 0:
        raise ContainerError(
            f"{arch} emulation is not enabled and this user is not root; run: "
            f"sudo mount -t binfmt_misc binfmt_misc {binfmt_dir}; "
            f"sudo update-binfmts --enable {handler}"
        )
    if not (binfmt_dir / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)])
    run(["update-binfmts", "--enable", handler])
    if not entry.exists():
        raise ContainerError(
            f"{handler} is still not registered in {binfmt_dir}; install qemu-user-static "
            "and binfmt-support (`invoke system.install --features containers`)"
        )
    return True


def ensure_podman_host(foreign_arches: Sequence[str] = ()) -> list[str]:
    """Idempotent machine set-up for podman builds and runs; returns what changed."""
    if not shutil.which("podman"):
        raise ContainerError(
            "podman is not installed; run `invoke system.install --features containers`"
        )
    changed = []
    if ensure_containers_conf():
        changed.append(f"{containers_conf()}: default_ulimits = []")
    for arch in foreign_arches:
        if ensure_emulation(arch):
            changed.append(f"binfmt: {QEMU_HANDLERS[arch]} enabled")
    return changed


def pause_pid_file(uid: int | None = None, env: dict[str, str] | None = None) -> Path:
    """Where rootless podman records its pause process (it holds the user namespace)."""
    env = dict(os.environ) if env is None else env
    uid = os.getuid() if uid is None else uid
    # podman's own default without XDG_RUNTIME_DIR; we only read it
    runtime = env.get("XDG_RUNTIME_DIR") or f"/tmp/podman-run-{uid}"  # noqa: S108
    return Path(runtime) / "libpod" / "tmp" / "pause.pid"


def pause_process(env: dict[str, str] | None = None) -> int | None:
    """The PID of this user's rootless podman pause process, if one runs."""
    try:
        pid = int(pause_pid_file(env=env).read_text().strip())
        owner = Path(f"/proc/{pid}").stat().st_uid
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
    except (OSError, ValueError):
        return None
    return pid if owner == os.getuid() and exe == "podman" else None


@contextlib.contextmanager
def session_pause_process(log: Log = print) -> Iterator[None]:
    """Around a session run by a normal user: stop podman's pause process at the end
    if the session started it. Rootless podman leaves it running after any command, so
    without this a test run would leave a process behind."""
    before = pause_process() if os.geteuid() != 0 else None
    try:
        yield
    finally:
        after = pause_process() if os.geteuid() != 0 else None
        if after is not None and before is None:
            os.kill(after, signal.SIGTERM)
            log(f"podman: stopped the rootless pause process (pid {after}) this session started")
