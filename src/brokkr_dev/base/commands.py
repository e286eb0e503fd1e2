"""One way to run an external command.

`run()` is the automation's only door to `subprocess.run`: it always captures text
(or streams, when asked), applies a timeout, and turns every failure (not found,
timed out, non-zero exit) into one `CommandError` that carries the command, the exit
status and the tail of what the command printed.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from brokkr_dev.base.errors import AutomationError

TAIL_LINES = 15


class CommandError(AutomationError):
    """An external command could not run, timed out, or exited non-zero."""

    def __init__(
        self, command: Sequence[str], returncode: int | None, tail: str, hint: str = ""
    ) -> None:
        self.command = list(command)
        self.returncode = returncode
        self.tail = tail
        self.hint = hint
        status = "timed out" if returncode is None else f"failed with exit status {returncode}"
        message = f"`{shlex.join(self.command)}` {status}"
        if tail:
            message += f":\n{tail}"
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


def tail_of(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` non-empty-trimmed lines of a command's output."""
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    command: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    stream: bool = False,
    hint: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run `command` and return the finished process.

    check=False returns a non-zero exit instead of raising (the caller judges it);
    a missing program or a timeout raise `CommandError` either way. stream=True lets
    the command print to our terminal (long builds) instead of capturing. `hint` is
    appended to the error: say there how to fix the usual cause.
    """
    args = [str(part) for part in command]
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            env=None if env is None else dict(env),
            input=input,
            timeout=timeout,
            text=True,
            capture_output=not stream,
            check=False,
        )
    except FileNotFoundError:
        raise CommandError(args, 127, f"{args[0]}: not found", hint) from None
    except subprocess.TimeoutExpired:
        raise CommandError(args, None, f"no result after {timeout:g} s", hint) from None
    if check and done.returncode != 0:
        raise CommandError(args, done.returncode, tail_of(done.stderr or done.stdout or ""), hint)
    return done
