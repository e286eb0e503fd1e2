"""Run a planned workflow: each job's steps in order, stopping at the first failure.

A `run:` step is bash in the workspace with the workflow's, the job's and the step's
env (expressions substituted; secrets are empty), plus the variables a runner sets
(CI, GITHUB_*, RUNNER_*). $GITHUB_OUTPUT, $GITHUB_ENV and $GITHUB_PATH work as on
GitHub, and so does $RUNNER_TEMP: a folder of the job's own, emptied when it ends.
Artifacts live in a folder of the run. The log marks each step with
`::group::<job> / <step>` like a runner's.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base.commands import run
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.log import Log
from brokkr_dev.base.workflow import actions
from brokkr_dev.base.workflow.expressions import Context, condition, substitute
from brokkr_dev.base.workflow.plan import Job, Step, WorkflowError

SHELLS = {
    # GitHub's default, and what `shell: bash` means there.
    None: ["bash", "-e"],
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"],
}
HEREDOC = re.compile(r"^([^=<\s]+)<<(\S+)$")


class StepFailed(AutomationError):
    """A step failed; `status` is its exit status (1 for a failed `uses:`)."""

    def __init__(self, job: Job, step: Step, status: int, reason: str = "") -> None:
        self.status = status
        detail = f": {reason}" if reason else ""
        super().__init__(f"{job.name} / {step.name} failed with exit status {status}{detail}")


@dataclass
class Outcome:
    job: Job
    result: str  # success, failure, skipped
    seconds: float = 0.0
    reason: str = ""


@dataclass
class Player:
    """Plays jobs in the given order. `context` carries github/runner/vars; each job
    gets a fresh copy with its own env and steps."""

    context: Context
    cache_dir: Path
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    log: Log = print
    outcomes: list[Outcome] = field(default_factory=list)
    restored_caches: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    # Where this run's artifacts live; None: a folder made for the run, removed after it.
    artifacts_dir: Path | None = None

    def play(self, jobs: list[Job]) -> list[Outcome]:
        """Like GitHub: a failed job skips the jobs that need it, the others still run;
        the first failure is raised at the end."""
        if self.artifacts_dir is not None:
            return self._play(jobs)
        with tempfile.TemporaryDirectory(prefix="workflow-artifacts-") as run_artifacts:
            self.artifacts_dir = Path(run_artifacts)
            try:
                return self._play(jobs)
            finally:
                self.artifacts_dir = None

    def _play(self, jobs: list[Job]) -> list[Outcome]:
        not_run: dict[str, str] = {}  # job key -> "skipped" or "failed"
        failures: list[StepFailed] = []
        for job in jobs:
            reason = self.skip_reason(job, not_run)
            if reason:
                not_run[job.key] = "skipped"
                self.log(f"job {job.name}: skipped ({reason})")
                self.outcomes.append(Outcome(job, "skipped", reason=reason))
                continue
            started = time.monotonic()
            try:
                self.play_job(job)
            except StepFailed as failure:
                not_run[job.key] = "failed"
                failures.append(failure)
                self.log(f"::error::{failure}")
                self.outcomes.append(
                    Outcome(job, "failure", time.monotonic() - started, str(failure))
                )
                continue
            seconds = time.monotonic() - started
            self.outcomes.append(Outcome(job, "success", seconds))
            if seconds > job.timeout_minutes * 60:
                self.log(
                    f"::warning::{job.name} took {seconds / 60:.1f} min, over its "
                    f"timeout-minutes {job.timeout_minutes:g}: GitHub would cancel it"
                )
        if failures:
            raise failures[0]
        return self.outcomes

    def skip_reason(self, job: Job, not_run: dict[str, str]) -> str:
        waited = [need for need in job.needs if need in not_run]
        calls_always = any("always()" in str(text) for text in job.conditions)
        if waited and not calls_always:
            return ", ".join(f"needs {need}, which {not_run[need]}" for need in waited)
        context = self.job_context(job)
        for text in job.conditions:
            if not condition(text, context):
                return f"if: {text}"
        return ""

    def job_context(self, job: Job) -> Context:
        return Context(
            workspace=self.context.workspace,
            # github.job: the job's key (in a called workflow, its own key there)
            github={**self.context.github, "job": job.key.split("/")[-1]},
            runner=self.context.runner,
            env=dict(job.env),
            vars=self.context.vars,
        )

    def play_job(self, job: Job) -> None:
        context = self.job_context(job)
        posts: list[tuple[Step, Callable[[], None]]] = []
        with tempfile.TemporaryDirectory(prefix="workflow-job-") as scratch:
            files = JobFiles(Path(scratch))
            # runner.temp: the job's own, as on GitHub, where it is emptied per job.
            (Path(scratch) / "temp").mkdir()
            context.runner = {**context.runner, "temp": str(Path(scratch) / "temp")}
            context.env = {name: substitute(value, context) for name, value in job.env.items()}
            for step in job.steps:
                post = self.play_step(job, step, context, files)
                if post is not None:
                    posts.append((step, post))
            for step, post in reversed(posts):
                self.log(f"::group::{job.name} / Post {step.name}")
                try:
                    post()
                except AutomationError as exc:
                    raise StepFailed(job, step, 1, str(exc)) from None
                finally:
                    self.log("::endgroup::")

    def play_step(
        self, job: Job, step: Step, context: Context, files: JobFiles
    ) -> Callable[[], None] | None:
        if not condition(step.condition, context):
            self.log(f"{job.name} / {step.name}: skipped (if: {step.condition})")
            return None
        env = {**context.env, **{k: substitute(v, context) for k, v in step.env.items()}}
        step_context = Context(**{**vars(context), "env": env})
        name = substitute(step.name, step_context)
        self.log(f"::group::{job.name} / {name}")
        started = time.monotonic()
        try:
            outputs, post = self.execute(job, step, step_context, files)
        except StepFailed as failure:
            if not step.continue_on_error:
                raise
            self.log(f"::warning::{failure} (continue-on-error)")
            outputs, post = {}, None
        finally:
            self.log("::endgroup::")
        self.log(f"{job.name} / {name}: done in {time.monotonic() - started:.0f} s")
        if step.id:
            context.steps[step.id] = {"outputs": outputs, "outcome": "success"}
        context.env.update(files.take_env())
        return post

    def execute(
        self, job: Job, step: Step, context: Context, files: JobFiles
    ) -> tuple[dict[str, str], Callable[[], None] | None]:
        process_env = {
            **self.base_env,
            **runner_variables(context),
            **context.env,
            **files.variables(),
        }
        process_env["PATH"] = os.pathsep.join([*files.paths(), process_env.get("PATH", "")])
        if step.uses is not None:
            inputs = {key: substitute(value, context) for key, value in step.inputs.items()}
            runner = actions.Runner(
                context.workspace,
                self.cache_dir,
                process_env,
                self.log,
                self.restored_caches,
                self.artifacts_dir,
            )
            try:
                played = actions.play(step.uses, inputs, runner)
            except WorkflowError:
                raise
            except AutomationError as exc:
                raise StepFailed(job, step, 1, str(exc)) from None
            return played.outputs, played.post
        if step.shell not in SHELLS:
            raise WorkflowError(f"{job.name} / {step.name}: the player runs bash, not {step.shell}")
        script = substitute(step.run or "", context)
        workdir = context.workspace / substitute(step.working_directory or ".", context)
        script_file = files.scratch / "step.sh"
        script_file.write_text(script, encoding="utf-8")
        done = run([*SHELLS[step.shell], script_file], cwd=workdir, env=process_env, stream=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise StepFailed(job, step, done.returncode)
        return files.take_outputs(), None


def runner_variables(context: Context) -> dict[str, str]:
    github, runner = context.github, context.runner
    names = {
        "GITHUB_EVENT_NAME": "event_name",
        "GITHUB_REF": "ref",
        "GITHUB_REF_NAME": "ref_name",
        "GITHUB_REF_TYPE": "ref_type",
        "GITHUB_SHA": "sha",
        "GITHUB_REPOSITORY": "repository",
        "GITHUB_WORKSPACE": "workspace",
    }
    variables = {"CI": "true", "GITHUB_ACTIONS": "true"}
    variables |= {name: github[key] for name, key in names.items() if github.get(key)}
    variables |= {f"RUNNER_{key.upper()}": value for key, value in runner.items()}
    return variables


class JobFiles:
    """$GITHUB_OUTPUT (per step), $GITHUB_ENV and $GITHUB_PATH (per job) of one job."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.output = scratch / "output"
        self.env = scratch / "env"
        self.path = scratch / "path"
        self.added_paths: list[str] = []
        for file in (self.output, self.env, self.path):
            file.touch()

    def variables(self) -> dict[str, str]:
        return {
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_ENV": str(self.env),
            "GITHUB_PATH": str(self.path),
        }

    def take_outputs(self) -> dict[str, str]:
        return self._take(self.output)

    def take_env(self) -> dict[str, str]:
        return self._take(self.env)

    def paths(self) -> list[str]:
        added = [line.strip() for line in self.path.read_text().splitlines() if line.strip()]
        self.path.write_text("")
        # Later additions come first, as on GitHub.
        self.added_paths = [*reversed(added), *self.added_paths]
        return self.added_paths

    def _take(self, file: Path) -> dict[str, str]:
        values = parse_commands_file(file.read_text(encoding="utf-8"))
        file.write_text("")
        return values


def parse_commands_file(text: str) -> dict[str, str]:
    """`name=value` lines and `name<<DELIMITER` blocks, as GitHub reads them."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        heredoc = HEREDOC.match(line)
        if heredoc:
            name, delimiter = heredoc.groups()
            block = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            else:
                raise WorkflowError(f"{name}<<{delimiter}: no closing {delimiter} line")
            values[name] = "\n".join(block)
        elif "=" in line:
            name, _, value = line.partition("=")
            values[name] = value
    return values


def describe(jobs: list[Job], player: Player) -> list[str]:
    """What `play` would do, without running anything: one line per job and step."""
    lines = []
    skipped: dict[str, str] = {}
    for job in jobs:
        reason = player.skip_reason(job, skipped)
        if reason:
            skipped[job.key] = "skipped"
            lines.append(f"{job.name}: skipped ({reason})")
            continue
        lines.append(f"{job.name} ({job.runs_on}, {job.timeout_minutes:g} min)")
        for step in job.steps:
            what = f"Run {step.uses}" if step.uses else f"$ {(step.run or '').strip()}"
            default = f"Run {step.uses}" if step.uses else f"Run {(step.run or '').strip()}"
            named = "" if default.startswith(step.name) else f"{step.name}: "
            guard = f" [if: {step.condition}]" if step.condition is not None else ""
            lines.append(f"  {named}{what}{guard}")
    return lines
