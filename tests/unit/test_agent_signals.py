"""SIGTERM stops the agent even when it lands in the middle of a write to stderr."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a child: the agent's handlers and its shutdown guard (os._exit) belong to a
# process of their own. The child's stderr is a buffered writer whose raw write
# raises SIGTERM once, so the handler runs while the writer's lock is held, as it
# did when a real SIGTERM arrived while the agent was logging.
CHILD = textwrap.dedent(
    """
    import io, logging, os, signal, sys

    from brokkr.agent.service import Agent
    from brokkr.agent.settings import load_settings

    class Trap(io.RawIOBase):
        armed = True

        def writable(self):
            return True

        def write(self, data):
            if Trap.armed:
                Trap.armed = False
                signal.raise_signal(signal.SIGTERM)
            return len(data)

    agent = Agent(load_settings({
        "BROKKR__AGENT__BROKER_URL": "http://127.0.0.1:9",
        "BROKKR__AGENT__PAK": "brokkr_abc_def",
        "BROKKR__AGENT__AGENT_NAME": "edge",
        "BROKKR__AGENT__CLUSTER_NAME": "prod",
    }))
    agent.install_signal_handlers()
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(Trap(), buffer_size=1), write_through=True)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True)
    try:
        logging.getLogger("test").info("a line being written when SIGTERM arrives")
    except RuntimeError:
        pass
    print("stopping" if agent.stop.is_set() else "still running", file=sys.__stdout__, flush=True)
    os._exit(0)
    """
)


def test_a_sigterm_during_a_log_write_still_stops_the_agent() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "stopping", result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
