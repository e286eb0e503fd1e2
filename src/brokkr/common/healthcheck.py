"""Container health probe: `python -m brokkr.common.healthcheck URL [TIMEOUT [RETRY_FOR]]`.

The images' HEALTHCHECK runs this instead of curl, so the runtime image carries no
extra tools. Exit status 0 when URL answers 2xx within TIMEOUT seconds (default 3),
1 otherwise, with the reason on stderr. With RETRY_FOR, a failed probe is tried
again every second for up to that many seconds: the charts' `helm test` pods use it,
since a NetworkPolicy that admits them by their labels may learn a new pod's
address only a moment after it starts. `{NAME:default}` in URL is replaced by the
environment variable NAME (or the default), so the probe follows a configured
port: `http://127.0.0.1:{BROKKR__BROKER__PORT:3000}/healthz`.
"""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.error
import urllib.request

DEFAULT_TIMEOUT = 3.0
USAGE = "usage: python -m brokkr.common.healthcheck URL [TIMEOUT_SECONDS [RETRY_FOR_SECONDS]]"
RETRY_INTERVAL = 1.0
_PLACEHOLDER = re.compile(r"\{([A-Z_][A-Z0-9_]*):([^{}]*)\}")


def expand(url: str, environ: dict[str, str] | None = None) -> str:
    """Replace each `{NAME:default}` with the environment variable NAME, else default."""
    env = os.environ if environ is None else environ
    return _PLACEHOLDER.sub(lambda m: env.get(m.group(1)) or m.group(2), url)


def probe(url: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """(healthy, reason) for one GET of url."""
    if not url.startswith(("http://", "https://")):
        return False, f"{url!r} is not an http(s) URL"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked
            status = response.status
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url} unreachable: {reason}"
    if 200 <= status < 300:
        return True, f"{url} answered {status}"
    return False, f"{url} answered {status}"


def main(argv: list[str] | None = None) -> int:
    """Parse URL, optional timeout and retry window; probe; report on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 3 or args[0] in {"-h", "--help"}:
        print(USAGE, file=sys.stderr)
        return 0 if args and args[0] in {"-h", "--help"} else 2
    numbers = []
    for name, text in zip(("TIMEOUT", "RETRY_FOR"), args[1:], strict=False):
        try:
            numbers.append(float(text))
        except ValueError:
            print(f"{name} must be a number of seconds, got {text!r}\n{USAGE}", file=sys.stderr)
            return 2
    timeout = numbers[0] if numbers else DEFAULT_TIMEOUT
    deadline = time.monotonic() + (numbers[1] if len(numbers) > 1 else 0)
    url = expand(args[0])
    healthy, reason = probe(url, timeout)
    while not healthy and time.monotonic() + RETRY_INTERVAL < deadline:
        print(f"{reason}; trying again", file=sys.stderr)
        time.sleep(RETRY_INTERVAL)
        healthy, reason = probe(url, timeout)
    print(reason, file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
