"""Command line entry point of `brokkr-broker`."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; replaced by the real broker when its issue lands."""
    print("brokkr-broker: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
