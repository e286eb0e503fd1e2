"""Command line entry point of `brokkr-agent`: configuration comes from the environment."""

from __future__ import annotations

import sys

from brokkr.agent.service import Agent
from brokkr.agent.settings import load_settings
from brokkr.common import telemetry
from brokkr.common.config import ConfigError
from brokkr.common.logging import configure

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    """Run the agent until SIGTERM; 0 on a clean stop, 1 start-up failure, 2 bad configuration."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(
            "usage: brokkr-agent\n\nConfigured by BROKKR__AGENT__* environment variables; see docs/agent.md."
        )
        return 0
    if args:
        print(
            f"brokkr-agent: takes no arguments, got {args!r}; configure it with BROKKR__AGENT__* variables",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"brokkr-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure(settings.log)
    agent = Agent(settings)
    agent.install_signal_handlers()
    with telemetry.traced(settings.telemetry, "brokkr-agent"):
        return agent.run()


if __name__ == "__main__":
    raise SystemExit(main())
