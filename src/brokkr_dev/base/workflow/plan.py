"""Read a workflow file into the jobs a runner would run, in `needs:` order.

Jobs that call a reusable workflow of this repository (`uses: ./.github/workflows/X.yml`)
are replaced by that workflow's jobs, named `caller / job` as GitHub shows them; a
`needs:` on the caller means all of them. Keys the player does not play (a matrix,
service containers, another repository's workflow) are refused by name, never ignored.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from brokkr_dev.base.errors import AutomationError

# Played, or harmless to leave out here (permissions: the player holds no token;
# concurrency: jobs run one at a time; secrets: there are none). A reusable workflow's
# `with:` is not: its `inputs` would all read empty.
JOB_KEYS = frozenset(
    {"name", "needs", "if", "runs-on", "timeout-minutes", "permissions", "steps", "env"}
    | {"uses", "secrets", "concurrency"}
)
STEP_KEYS = frozenset(
    {"name", "id", "if", "run", "uses", "with", "env", "shell", "working-directory"}
    | {"continue-on-error"}
)
# True: YAML 1.1 reads a bare `on` key as a boolean.
WORKFLOW_KEYS = frozenset(
    {"name", "run-name", "on", True, "permissions", "concurrency", "env", "jobs"}
)
DEFAULT_TIMEOUT_MINUTES = 360.0


class WorkflowError(AutomationError):
    """The workflow cannot be played as written; the message names the place and why."""


@dataclass(frozen=True)
class Step:
    name: str
    id: str | None = None
    condition: str | bool | None = None
    run: str | None = None
    uses: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    shell: str | None = None
    working_directory: str | None = None
    continue_on_error: bool = False


@dataclass(frozen=True)
class Job:
    """One job, its reusable-workflow callers' conditions and env included."""

    key: str  # unique: "checks/lint"
    name: str  # as GitHub shows it: "checks / lint"
    needs: tuple[str, ...]
    conditions: tuple[str | bool, ...]
    env: dict[str, str]  # workflow env, then the job's
    steps: tuple[Step, ...]
    runs_on: str
    timeout_minutes: float


def load_yaml(path: Path) -> dict[Any, Any]:
    try:
        import yaml  # noqa: PLC0415 - only the player needs it; say how to get it
    except ImportError:
        raise WorkflowError(
            "the workflow player needs PyYAML: `sudo apt-get install python3-yaml`, "
            "or run it with the project's Python (`.nox/unit/bin/python`)"
        ) from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        raise WorkflowError(f"{path} has no `jobs:` mapping; is it a workflow?")
    unknown = sorted(str(key) for key in set(data) - WORKFLOW_KEYS)
    if unknown:
        raise WorkflowError(f"{path.name}: the player does not play {', '.join(unknown)}")
    return data


def triggers(data: dict[Any, Any]) -> dict[str, Any]:
    """The `on:` mapping; YAML 1.1 reads a bare `on` key as the boolean true."""
    on = data.get("on", data.get(True))
    if isinstance(on, str):
        return {on: {}}
    if isinstance(on, list):
        return {event: {} for event in on}
    return {event: spec or {} for event, spec in (on or {}).items()}


def check_trigger(path: Path, data: dict[Any, Any], event: str, ref: str) -> None:
    """Refuse an event (or a push ref) on which GitHub would not run the workflow."""
    on = triggers(data)
    if event not in on:
        raise WorkflowError(
            f"{path.name} does not run on `{event}` (its triggers: {', '.join(on) or 'none'})"
        )
    if event != "push":
        return
    spec = on[event]
    kind, _, name = ref.removeprefix("refs/").partition("/")
    filters = spec.get("branches" if kind == "heads" else "tags")
    other = spec.get("tags" if kind == "heads" else "branches")
    if filters is None and other is None:
        return
    if filters is None or not any(fnmatch.fnmatchcase(name, pattern) for pattern in filters):
        raise WorkflowError(f"{path.name} does not run on a push of {ref}; pass --ref")


def load(workflow: Path, workspace: Path) -> list[Job]:
    """The workflow's jobs, reusable workflows expanded, in an order `needs:` allows."""
    return order(_jobs(workflow, workspace, prefix=""))


def _jobs(workflow: Path, workspace: Path, prefix: str) -> list[Job]:
    data = load_yaml(workflow)
    workflow_env = _strings(data.get("env") or {}, f"{workflow.name}: env")
    declared: dict[str, list[Job]] = {}  # a job id -> the jobs it stands for
    needs: dict[str, list[str]] = {}
    for job_id, spec in data["jobs"].items():
        where = f"{workflow.name}: job {job_id}"
        if not isinstance(spec, dict):
            raise WorkflowError(f"{where} is not a mapping")
        unknown = sorted(set(spec) - JOB_KEYS)
        if unknown:
            raise WorkflowError(f"{where}: the player does not play {', '.join(unknown)}")
        key = f"{prefix}{job_id}"
        name = str(spec.get("name", job_id))
        needs[job_id] = _list(spec.get("needs"), f"{where}: needs")
        conditions = _present(spec.get("if"))
        if "uses" in spec:
            called = _reusable(spec["uses"], workspace, where)
            declared[job_id] = [
                replace(
                    job,
                    name=f"{name} / {job.name}",
                    conditions=(*conditions, *job.conditions),
                )
                for job in _jobs(called, workspace, f"{key}/")
            ]
            continue
        steps = spec.get("steps") or []
        declared[job_id] = [
            Job(
                key=key,
                name=name,
                needs=(),
                conditions=conditions,
                env={**workflow_env, **_strings(spec.get("env") or {}, f"{where}: env")},
                steps=tuple(_step(step, i, where) for i, step in enumerate(steps)),
                runs_on=str(spec.get("runs-on", "")),
                timeout_minutes=float(spec.get("timeout-minutes", DEFAULT_TIMEOUT_MINUTES)),
            )
        ]
    jobs: list[Job] = []
    for job_id, expanded in declared.items():
        unknown_needs = [need for need in needs[job_id] if need not in declared]
        if unknown_needs:
            raise WorkflowError(
                f"{workflow.name}: job {job_id} needs {', '.join(unknown_needs)}, "
                "which is no job of this workflow"
            )
        waits_for = tuple(job.key for need in needs[job_id] for job in declared[need])
        jobs.extend(replace(job, needs=(*waits_for, *job.needs)) for job in expanded)
    return jobs


def _reusable(uses: str, workspace: Path, where: str) -> Path:
    if not uses.startswith("./.github/workflows/"):
        raise WorkflowError(
            f"{where} calls {uses}; the player plays only this repository's reusable "
            "workflows (`uses: ./.github/workflows/X.yml`)"
        )
    path = workspace / uses
    if not path.is_file():
        raise WorkflowError(f"{where} calls {uses}, which does not exist in {workspace}")
    return path


def _step(spec: Any, index: int, where: str) -> Step:
    where = f"{where}, step {index + 1}"
    if not isinstance(spec, dict):
        raise WorkflowError(f"{where} is not a mapping")
    unknown = sorted(set(spec) - STEP_KEYS)
    if unknown:
        raise WorkflowError(f"{where}: the player does not play {', '.join(unknown)}")
    if ("run" in spec) == ("uses" in spec):
        raise WorkflowError(f"{where} needs exactly one of `run:` and `uses:`")
    run, uses = spec.get("run"), spec.get("uses")
    default_name = f"Run {uses}" if uses else f"Run {str(run).strip().splitlines()[0]}"
    return Step(
        name=str(spec.get("name", default_name)),
        id=spec.get("id"),
        condition=spec.get("if"),
        run=None if run is None else str(run),
        uses=uses,
        inputs=_strings(spec.get("with") or {}, f"{where}: with"),
        env=_strings(spec.get("env") or {}, f"{where}: env"),
        shell=spec.get("shell"),
        working_directory=spec.get("working-directory"),
        continue_on_error=bool(spec.get("continue-on-error", False)),
    )


def order(jobs: list[Job]) -> list[Job]:
    """Topological by `needs:`, keeping the file's order wherever `needs:` allows."""
    remaining = list(jobs)
    done: set[str] = set()
    ordered = []
    while remaining:
        ready = next((job for job in remaining if set(job.needs) <= done), None)
        if ready is None:
            cycle = ", ".join(job.key for job in remaining)
            raise WorkflowError(f"the `needs:` of these jobs form a cycle: {cycle}")
        remaining.remove(ready)
        done.add(ready.key)
        ordered.append(ready)
    return ordered


def _present(value: Any) -> tuple[str | bool, ...]:
    return () if value is None else (value,)


def _list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise WorkflowError(f"{where} must be a job id or a list of them")


def _strings(mapping: Any, where: str) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise WorkflowError(f"{where} must be a mapping")
    result = {}
    for key, value in mapping.items():
        if isinstance(value, (dict, list)):
            raise WorkflowError(f"{where}: {key} must be a single value")
        result[str(key)] = _scalar(value)
    return result


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
