"""The test gate: a release publishes only a commit whose lint and unit tests pass.

The checks run as the release's first real step, on the very commit it publishes
(preflight has already refused a dirty tree). They are run, not looked up: a
recorded "green" result would have to be trusted to come from this exact tree with
the same tools, and CI jobs run on separate machines that share no such record.
Re-running lint and unit costs a few minutes per release; a resumed release pays it
again, which is cheap next to building and signing the images.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import git
from brokkr_dev.base.log import Log
from brokkr_dev.release import ReleaseError

TIMEOUT = 3600
# The repository's own sessions, through its pinned nox (scripts/nox).
DEFAULT_CHECKS: tuple[tuple[str, ...], ...] = (
    ("scripts/nox", "-s", "lint"),
    ("scripts/nox", "-s", "unit"),
)
# Never handed to the project's test code: publishing credentials and the webhook.
SECRET_PREFIXES = ("GITHUB_TOKEN", "REGISTRY_", "COSIGN_", "ACTIONS_ID_TOKEN_", "BROKKR_RELEASE_")


@dataclass(frozen=True)
class GateResult:
    """What ran and how long it took (for the log and the measured docs)."""

    commit: str
    seconds: dict[str, float]


def check_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for the checks: everything but credentials and the webhook URL."""
    return {k: v for k, v in env.items() if not k.startswith(SECRET_PREFIXES)}


def run_checks(
    root: Path,
    checks: Sequence[Sequence[str]],
    env: Mapping[str, str] | None = None,
    log: Log = print,
) -> GateResult:
    """Run every check in `root` at HEAD; raise ReleaseError naming the first that fails."""
    commit = git.head(root)
    environment = check_environment(os.environ if env is None else env)
    seconds: dict[str, float] = {}
    for check in checks:
        shown = " ".join(check)
        log(f"gate: running `{shown}` on {commit[:12]}")
        started = time.monotonic()
        try:
            result = subprocess.run(
                list(check),
                cwd=root,
                env=environment,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ReleaseError(f"gate: `{shown}` cannot run: {exc.strerror}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ReleaseError(f"gate: `{shown}` did not finish within {TIMEOUT}s") from exc
        seconds[shown] = round(time.monotonic() - started, 1)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise ReleaseError(
                f"refusing to release commit {commit[:12]}: `{shown}` failed "
                f"(exit status {result.returncode}); a release publishes only a commit "
                f"whose lint and unit tests pass. Fix the failure, commit, and release "
                f"again. Last lines:\n{tail}"
            )
        log(f"gate: `{shown}` passed in {seconds[shown]}s")
    if git.head(root) != commit or git.dirty_paths(root):
        raise ReleaseError(
            f"gate: the checks changed the checkout (HEAD or files), so {commit[:12]} is not "
            "what was tested; make them leave the work tree clean, then re-run"
        )
    return GateResult(commit, seconds)
