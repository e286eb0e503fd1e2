"""The Docker engine of a stock CI runner, set up here so CI can play the workflow.

GitHub's runners come with dockerd on /var/run/docker.sock, usable by the `docker`
group, and an empty image store. `.ci/run` starts the same as root before it plays
the workflow as the `runner` user, and stops it at the end:

    python3 -m brokkr_dev.containers.engine.runner_engine start [--mirror URL]
    python3 -m brokkr_dev.containers.engine.runner_engine stop

It is our dockerd (host.EngineLayout, with this host's runc wrapper) with its own data
root, which `start` empties first: each run begins with no images, like a new runner.
The sessions that run on it find it at the default socket and leave it alone.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from brokkr_dev.base.errors import AutomationError
from brokkr_dev.containers.engine import daemon, host

DATA_ROOT = Path("/var/lib/brokkr-runner-engine")
RUN_DIR = Path("/run/brokkr-runner-engine")
GROUP = "docker"


def layout(mirrors: tuple[str, ...] = ()) -> host.EngineLayout:
    return host.EngineLayout(
        data_root=DATA_ROOT,
        run_dir=RUN_DIR,
        socket_path=host.DEFAULT_DOCKER_SOCKET,
        group=GROUP,
        mirrors=mirrors,
    )


def start(mirrors: tuple[str, ...]) -> daemon.Engine:
    """An empty engine on the default socket for the docker group."""
    daemon.stop_engine(print, layout())  # ours, left by an interrupted run
    if daemon.answers(f"unix://{host.DEFAULT_DOCKER_SOCKET}", timeout=5):
        raise daemon.EngineError(
            f"an engine already answers at {host.DEFAULT_DOCKER_SOCKET}: stop it first "
            "(`python3 -m brokkr_dev.containers.engine.runner_engine stop`, or the "
            "system's `systemctl stop docker`)"
        )
    shutil.rmtree(DATA_ROOT / "docker", ignore_errors=True)
    return daemon.start_engine(print, layout(mirrors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m brokkr_dev.containers.engine.runner_engine",
        description="Start or stop a stock runner's Docker engine (root only).",
    )
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="a registry mirror for Docker Hub pulls (repeatable)",
    )
    options = parser.parse_args(argv)
    try:
        if options.action == "start":
            engine = start(tuple(options.mirror))
            print(f"runner engine: Docker {engine.server_version} at {engine.host}")
        elif not daemon.stop_engine(print, layout()):
            print("runner engine: not running")
    except AutomationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
