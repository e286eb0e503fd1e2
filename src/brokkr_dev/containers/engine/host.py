"""What this host allows and where our engine lives: pure decisions, unit-tested."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Linux capability numbers (include/uapi/linux/capability.h) of the capabilities
# that Docker grants privileged containers and that some hosts withhold.
CAPABILITY_NUMBERS = {"CAP_SYS_RESOURCE": 24, "CAP_SYS_ADMIN": 21, "CAP_NET_ADMIN": 12}
WRAPPED_CAPABILITIES = ("CAP_SYS_RESOURCE",)

# The engine is machine-wide: every clone, CI run and helper on the machine shares
# one, so its node images survive a fresh clone. Data on disk, runtime state in /run.
DATA_ROOT = Path("/var/lib/brokkr-engine")
RUN_DIR = Path("/run/brokkr-engine")
DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")


def bounding_set(status_text: str) -> int:
    """The CapBnd mask from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise ValueError("no CapBnd line in the process status")


def missing_capabilities(
    mask: int, wanted: tuple[str, ...] = WRAPPED_CAPABILITIES
) -> tuple[str, ...]:
    """Which of `wanted` the bounding-set mask lacks."""
    return tuple(name for name in wanted if not mask & (1 << CAPABILITY_NUMBERS[name]))


def host_missing_capabilities(status_file: Path = Path("/proc/self/status")) -> tuple[str, ...]:
    """Capabilities that privileged containers would be refused on this host."""
    return missing_capabilities(bounding_set(status_file.read_text()))


@dataclass(frozen=True)
class EngineLayout:
    """Where our own dockerd keeps its data, runtime state, socket and pidfile."""

    data_root: Path = DATA_ROOT
    run_dir: Path = RUN_DIR
    # False: no docker0 (a second, throw-away engine beside the machine's one).
    default_bridge: bool = True
    # A stock runner's engine (runner_engine.py): the default socket, owned by this
    # group, and registry mirrors; ours otherwise keeps its socket in run_dir.
    socket_path: Path | None = None
    group: str | None = None
    mirrors: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> EngineLayout:
        """The fixed machine-wide layout, or BROKKR_ENGINE_DATA_ROOT/_RUN_DIR overrides
        (used by the engine's own integration test, never needed otherwise)."""
        env = dict(os.environ) if env is None else env
        return cls(
            data_root=Path(env.get("BROKKR_ENGINE_DATA_ROOT", DATA_ROOT)),
            run_dir=Path(env.get("BROKKR_ENGINE_RUN_DIR", RUN_DIR)),
        )

    @property
    def socket(self) -> Path:
        return self.socket_path or self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        """The DOCKER_HOST value for this engine."""
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "dockerd.pid"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def docker_root(self) -> Path:
        """dockerd's --data-root: images, containers, volumes (kept across runs)."""
        return self.data_root / "docker"

    @property
    def runtime_wrapper(self) -> Path:
        return self.data_root / "brokkr-runc"

    @property
    def log_file(self) -> Path:
        return self.data_root / "dockerd.log"

    @property
    def networks_file(self) -> Path:
        """Bridges our engine created, recorded so teardown can remove them."""
        return self.run_dir / "bridges"


def candidate_hosts(
    env: dict[str, str], layout: EngineLayout, context_host: str | None = None
) -> list[tuple[str, bool]]:
    """Engines to try, in order, as (DOCKER_HOST, ours): an explicit DOCKER_HOST, else
    the endpoint of the current Docker context (`docker context use`, e.g. a rootless
    engine), then the default socket (a laptop, GitHub Actions), then our own engine."""
    candidates: list[tuple[str, bool]] = []
    explicit = env.get("DOCKER_HOST") or context_host
    if explicit:
        candidates.append((explicit, explicit == layout.host))
    default = f"unix://{DEFAULT_DOCKER_SOCKET}"
    if default not in {c for c, _ in candidates}:
        candidates.append((default, False))
    if layout.host not in {c for c, _ in candidates}:
        candidates.append((layout.host, True))
    return candidates


def dockerd_arguments(layout: EngineLayout, wrap_runtime: bool) -> list[str]:
    """The dockerd command line for our engine."""
    arguments = [
        "dockerd",
        "--data-root",
        str(layout.docker_root),
        "--exec-root",
        str(layout.exec_root),
        "--pidfile",
        str(layout.pidfile),
        "--host",
        layout.host,
        "--storage-driver",
        "overlay2",
        # No systemd manages cgroups on these hosts.
        "--exec-opt",
        "native.cgroupdriver=cgroupfs",
    ]
    if not layout.default_bridge:
        arguments += ["--bridge", "none"]
    if layout.group:
        arguments += ["--group", layout.group]
    for mirror in layout.mirrors:
        arguments += ["--registry-mirror", mirror]
    if wrap_runtime:
        arguments += [
            "--add-runtime",
            f"brokkr-runc={layout.runtime_wrapper}",
            "--default-runtime",
            "brokkr-runc",
        ]
    return arguments


def wrapper_source(template: str, real_runc: str, drop: tuple[str, ...]) -> str:
    """The runtime wrapper script: runc_wrapper.py with this host's settings."""
    settings = {
        "REAL_RUNC = ": f"REAL_RUNC = {real_runc!r}",
        "DROP: tuple[str, ...] = ": f"DROP: tuple[str, ...] = {drop!r}",
    }
    rendered = [
        next((value for prefix, value in settings.items() if line.startswith(prefix)), line)
        for line in template.splitlines()
    ]
    return "#!/usr/bin/python3 -S\n" + "\n".join(rendered) + "\n"
