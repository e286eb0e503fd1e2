"""A runc wrapper for hosts whose capability bounding set lacks some capabilities.

Docker grants a privileged container every capability it knows; on hosts (such as
some microVMs) whose bounding set lacks CAP_SYS_RESOURCE, runc then fails with
"unable to apply caps: operation not permitted". This wrapper removes the missing
capabilities from the OCI bundle's config.json (create/run) or from the process
JSON (exec) and then runs the real runc with the same arguments.

Stdlib only: the engine copies this file next to its data root and registers it as
a Docker runtime, so it must run with a bare `python3` and outlive the clone.
Configuration comes from two environment-independent lines that the engine writes
at the top of the copy (REAL_RUNC and DROP).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REAL_RUNC = "/usr/sbin/runc"
DROP: tuple[str, ...] = ("CAP_SYS_RESOURCE",)
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def drop_capabilities(process: dict, drop: Iterable[str]) -> bool:
    """Remove `drop` from every capability set of an OCI process object, in place.

    Returns True when anything changed.
    """
    unwanted = set(drop)
    changed = False
    capabilities = process.get("capabilities") or {}
    for name in CAPABILITY_SETS:
        current = capabilities.get(name)
        if not current:
            continue
        kept = [c for c in current if c not in unwanted]
        if len(kept) != len(current):
            capabilities[name] = kept
            changed = True
    return changed


def option_value(argv: Sequence[str], names: Iterable[str]) -> str | None:
    """The value of the first of `names` in argv (`--opt value` or `--opt=value`)."""
    wanted = tuple(names)
    for index, arg in enumerate(argv):
        for name in wanted:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def files_to_patch(argv: Sequence[str]) -> list[tuple[Path, bool]]:
    """The JSON files to rewrite for this runc call: (path, is_bundle_config)."""
    command = next((a for a in argv if not a.startswith("-") and a in COMMANDS), None)
    if command in {"create", "run"}:
        bundle = option_value(argv, ("--bundle", "-b")) or "."
        return [(Path(bundle) / "config.json", True)]
    if command == "exec":
        process = option_value(argv, ("--process", "-p"))
        return [(Path(process), False)] if process else []
    return []


COMMANDS = {"create", "run", "exec", "start", "kill", "delete", "state", "update", "pause"}


def patch(path: Path, is_bundle_config: bool, drop: Iterable[str]) -> None:
    """Rewrite one JSON file without the dropped capabilities."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # runc reports the real problem itself
    process = document.get("process", {}) if is_bundle_config else document
    if drop_capabilities(process, drop):
        path.write_text(json.dumps(document))


def main(argv: list[str]) -> None:
    for path, is_bundle_config in files_to_patch(argv):
        patch(path, is_bundle_config, DROP)
    os.execv(REAL_RUNC, [REAL_RUNC, *argv])  # noqa: S606 - become runc, same arguments


if __name__ == "__main__":
    main(sys.argv[1:])
