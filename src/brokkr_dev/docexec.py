"""Executed documentation: pull the marked shell blocks out of a guide and run them.

A guide marks a fenced `sh` (or `bash`) block as one to run with an HTML comment on
the line before the fence; GitHub shows neither the comment nor anything odd:

    <!-- brokkr:exec -->              run in every environment the tests know
    <!-- brokkr:exec on=kind -->      run only where a kind cluster is available
    <!-- brokkr:exec timeout=300 -->  allow more than the default 120 s
    <!-- brokkr:env -->               the placeholders the reader sets (see below)

Placeholders are environment variables. A `brokkr:env` block holds only
`export NAME=default` lines (and comments): the reader runs it as shown, or with
their own values; the test replaces each default with the value its fixtures give
for NAME, and refuses a NAME it has no value for. Executed blocks then use `$NAME`.

All blocks of one guide run in order in one `bash -Eeuo pipefail` process, so a
variable set in one block is seen by the next; a failing command stops the run and
the error names the guide and the line of the block it came from.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENVIRONMENTS = ("local", "kind")
DEFAULT_TIMEOUT = 120
SHELLS = ("sh", "bash")
_MARKER = re.compile(r"^\s*<!--\s*brokkr:(?P<kind>[a-z-]+)(?P<options>[^>]*?)\s*-->\s*$")
_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
_EXPORT = re.compile(r"^export\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


class DocError(ValueError):
    """A guide's markers or placeholders are wrong; the message names file, line and fix."""


@dataclass(frozen=True)
class Block:
    """One marked block: where it is, what kind, its options and its code."""

    source: str
    line: int  # line number of the opening fence (1-based)
    kind: str  # "exec" or "env"
    code: str
    on: tuple[str, ...] = ENVIRONMENTS
    timeout: int = DEFAULT_TIMEOUT

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def exports(self) -> dict[str, str]:
        """NAME -> default of an env block's `export NAME=default` lines."""
        found: dict[str, str] = {}
        for offset, raw in enumerate(self.code.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _EXPORT.match(line)
            if not match:
                raise DocError(
                    f"{self.source}:{self.line + offset}: a brokkr:env block may hold only "
                    f"`export NAME=default` lines and comments, found {line!r}; move the "
                    "command into a brokkr:exec block"
                )
            found[match["name"]] = match["value"]
        return found


def _options(text: str, where: str) -> dict[str, object]:
    options: dict[str, object] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if key == "on" and sep:
            names = tuple(v for v in value.split(",") if v)
            unknown = [n for n in names if n not in ENVIRONMENTS]
            if unknown or not names:
                raise DocError(
                    f"{where}: on={value!r} names no known environment; use "
                    f"a comma-separated subset of {', '.join(ENVIRONMENTS)}"
                )
            options["on"] = names
        elif key == "timeout" and sep and value.isdigit() and int(value) > 0:
            options["timeout"] = int(value)
        else:
            raise DocError(
                f"{where}: unknown marker option {item!r}; the options are "
                "on=<environments> and timeout=<seconds>"
            )
    return options


def extract(text: str, source: str) -> list[Block]:
    """The marked blocks of a Markdown text, in order (`source` names it in errors)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        marker = _MARKER.match(lines[index])
        index += 1
        if not marker:
            continue
        where = f"{source}:{index}"
        kind = marker["kind"]
        if kind not in ("exec", "env"):
            raise DocError(f"{where}: unknown marker brokkr:{kind}; use brokkr:exec or brokkr:env")
        options = _options(marker["options"], where)
        if kind == "env" and options:
            raise DocError(f"{where}: brokkr:env takes no options")
        opening = _FENCE.match(lines[index]) if index < len(lines) else None
        language = opening["info"].split()[0] if opening and opening["info"].split() else ""
        if not opening or language not in SHELLS:
            raise DocError(
                f"{where}: brokkr:{kind} must be followed on the next line by a fenced "
                f"block opened with ```sh or ```bash"
            )
        fence, start = opening["fence"], index + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise DocError(f"{source}:{start}: the block opened here is never closed")
        code = "\n".join(lines[start:end])
        blocks.append(Block(source, start, kind, code, **options))  # type: ignore[arg-type]
        index = end + 1
    return blocks


@dataclass
class Script:
    """The runnable form of a guide for one environment."""

    text: str
    timeout: int
    blocks: list[Block] = field(default_factory=list)


def script(blocks: list[Block], environment: str, values: Mapping[str, str]) -> Script:
    """One bash script: env blocks with the fixture values, then the exec blocks for
    `environment`, each announcing where it comes from so that a failure names it."""
    if environment not in ENVIRONMENTS:
        raise DocError(f"unknown environment {environment!r}; known: {', '.join(ENVIRONMENTS)}")
    parts = ["set -Eeuo pipefail", "trap 'echo \"docexec: failed in $DOC_BLOCK\" >&2' ERR"]
    chosen: list[Block] = []
    for block in blocks:
        if block.kind == "env":
            for name in block.exports():
                if name not in values:
                    raise DocError(
                        f"{block.where}: placeholder {name} has no value in the test "
                        f"environment (it provides {', '.join(sorted(values)) or 'none'}); "
                        "add it to the fixture or drop it from the brokkr:env block"
                    )
                parts.append(f"export {name}={shlex.quote(values[name])}")
        elif environment in block.on:
            chosen.append(block)
            parts += [f"DOC_BLOCK={shlex.quote(block.where)}", block.code]
    if not chosen:
        raise DocError(f"no brokkr:exec block of this guide runs in environment {environment!r}")
    return Script("\n".join(parts) + "\n", sum(b.timeout for b in chosen), chosen)


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str
    seconds: float


def run(plan: Script, cwd: Path, env: Mapping[str, str]) -> Result:
    """Run the script with bash in its own process group; the group is stopped when
    bash ends, so a `kubectl port-forward &` left by a guide does not outlive the run.

    The output goes to a file, not a pipe: a background job that kept the pipe open
    would otherwise hold the run until its timeout after bash had already failed.
    """
    started = time.monotonic()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        child = subprocess.Popen(
            ["bash", "-c", plan.text],
            cwd=cwd,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        timed_out = False
        try:
            child.wait(timeout=plan.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        log.seek(0)
        output = log.read()
    if timed_out:
        output += f"\ndocexec: timed out after {plan.timeout} s"
    return Result(child.returncode, output, time.monotonic() - started)


def guide_blocks(path: Path, root: Path) -> list[Block]:
    """The marked blocks of a guide file, named relative to `root` in errors."""
    return extract(path.read_text(encoding="utf-8"), str(path.relative_to(root)))


def yaml_objects(path: Path, *kinds: str) -> list[dict[str, Any]]:
    """The objects of the given kinds in a guide's ```yaml blocks, in order (the
    examples a test applies or validates as the guide shows them)."""
    blocks = _YAML_BLOCK.findall(path.read_text(encoding="utf-8"))
    documents = [d for block in blocks for d in yaml.safe_load_all(block) if d]
    return [d for d in documents if d.get("kind") in kinds]
