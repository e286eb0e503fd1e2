"""The test gate: a release publishes only a tree that passed every check CI runs.

First it reads the green records (base/green.py) of the tree at HEAD: lint, the
whole test suite, e2e-kind and the release-mode image scan must each have passed
on exactly this tree, run by their own sessions, and the work tree must be clean.
Those runs take an hour or more, so they are looked up, not repeated; a record is
written only by a session that passed in full on a clean tree, keyed by the tree's
hash, so a record of other content cannot count by accident. The gate refuses with
every check that has no record and the command that makes one.

Then it runs lint and unit tests once more on the very commit it publishes (with
the release machine's tools); a resumed release pays that again, which is cheap
next to building and signing the images.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base import git, green
from brokkr_dev.base.log import Log
from brokkr_dev.release import ReleaseError

TIMEOUT = 3600
# The repository's own sessions, through its pinned nox (scripts/nox).
DEFAULT_CHECKS: tuple[tuple[str, ...], ...] = (
    ("scripts/nox", "-s", "lint"),
    ("scripts/nox", "-s", "unit"),
)
# Never handed to the project's test code: publishing credentials and the webhook.
SECRET_PREFIXES = (
    "GITHUB_TOKEN", "REGISTRY_", "COSIGN_", "ACTIONS_ID_TOKEN_", "BROKKR_RELEASE_",
    "BROKKR_HELM_KEY_",
)  # fmt: skip


@dataclass(frozen=True)
class GateResult:
    """What ran and how long it took (for the log and the measured docs)."""

    commit: str
    seconds: dict[str, float]


def require_records(root: Path, checks: Sequence[str] = green.REQUIRED) -> None:
    """Refuse unless every check has a green record for the clean tree at HEAD."""
    problems = green.missing(root, tuple(checks))
    if problems:
        raise ReleaseError(
            f"refusing to release commit {git.head(root)[:12]}: a release publishes only a "
            f"tree that passed {', '.join(checks)}; missing:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


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
