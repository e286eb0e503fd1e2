"""Container health probe: `python -m brokkr.common.healthcheck URL [TIMEOUT]`.

The images' HEALTHCHECK runs this instead of curl, so the runtime image carries no
extra tools. Exit status 0 when URL answers 2xx within TIMEOUT seconds (default 3),
1 otherwise, with the reason on stderr. `{NAME:default}` in URL is replaced by the
environment variable NAME (or the default), so the probe follows a configured
port: `http://127.0.0.1:{BROKKR__BROKER__PORT:3000}/healthz`.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.error
import urllib.request

DEFAULT_TIMEOUT = 3.0
USAGE = "usage: python -m brokkr.common.healthcheck URL [TIMEOUT_SECONDS]"
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
    """Parse URL and optional timeout, probe once, report on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2 or args[0] in {"-h", "--help"}:
        print(USAGE, file=sys.stderr)
        return 0 if args and args[0] in {"-h", "--help"} else 2
    timeout = DEFAULT_TIMEOUT
    if len(args) == 2:
        try:
            timeout = float(args[1])
        except ValueError:
            print(f"TIMEOUT must be a number of seconds, got {args[1]!r}\n{USAGE}", file=sys.stderr)
            return 2
    healthy, reason = probe(expand(args[0]), timeout)
    print(reason, file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
