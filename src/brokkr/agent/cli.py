"""Command line entry point of `brokkr-agent`."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; replaced by the real agent when its issue lands."""
    print("brokkr-agent: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
