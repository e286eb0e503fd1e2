"""`python3 -m brokkr_dev.base.workflow play|list --event E --workflow FILE ...`.

Needs only Python 3.11 and PyYAML, so a bare runner account can play CI.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

from brokkr_dev.base import git
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.workflow import plan
from brokkr_dev.base.workflow.expressions import Context
from brokkr_dev.base.workflow.play import Outcome, Player, StepFailed, describe

ARCHES = {"x86_64": "X64", "amd64": "X64", "aarch64": "ARM64", "arm64": "ARM64"}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m brokkr_dev.base.workflow",
        description="Play a GitHub Actions workflow here, as a stock runner would run it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("play", "run the jobs"), ("list", "show the jobs and steps only")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--workflow", type=Path, required=True, help="the workflow file")
        command.add_argument("--event", required=True, help="push, pull_request, ...")
        command.add_argument("--ref", help="default: the current branch (push), a PR ref")
        command.add_argument(
            "--repository", default="colliery-io/brokkr", help="owner/name, as github.repository"
        )
        command.add_argument("--workspace", type=Path, default=Path.cwd(), help="the clone")
        command.add_argument(
            "--job", action="append", default=[], help="only this job (key or name); repeatable"
        )
        command.add_argument(
            "--var", action="append", default=[], metavar="NAME=VALUE", help="a `vars.` value"
        )
        command.add_argument(
            "--cache-dir", type=Path, help="where actions/cache keeps its entries (play)"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        return _main(options)
    except StepFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        return failure.status
    except AutomationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _main(options: argparse.Namespace) -> int:
    workspace = options.workspace.resolve()
    workflow = options.workflow if options.workflow.is_absolute() else workspace / options.workflow
    ref = options.ref or default_ref(options.event, workspace)
    plan.check_trigger(workflow, plan.load_yaml(workflow), options.event, ref)
    jobs = select(plan.load(workflow, workspace), options.job)
    if options.command == "play" and options.cache_dir is None:
        raise plan.WorkflowError("play needs --cache-dir DIR: where the cache entries persist")
    player = Player(
        context=github_context(workspace, options.event, ref, options.var, options.repository),
        cache_dir=(options.cache_dir or Path()).resolve(),
    )
    if options.command == "list":
        print("\n".join(describe(jobs, player)))
        return 0
    print("\n".join(["workflow plan:", *describe(jobs, player)]))
    try:
        player.play(jobs)
    finally:
        print(summary(player.outcomes))
    return 0


def default_ref(event: str, workspace: Path) -> str:
    if event == "pull_request":
        return "refs/pull/1/merge"
    return f"refs/heads/{git.branch(workspace) or 'main'}"


def github_context(
    workspace: Path, event: str, ref: str, variables: list[str], repository: str = ""
) -> Context:
    kind, _, name = ref.removeprefix("refs/").partition("/")
    pairs = [variable.partition("=") for variable in variables]
    bad = [variable for variable, (_, sign, _) in zip(variables, pairs, strict=True) if not sign]
    if bad:
        raise plan.WorkflowError(f"--var takes NAME=VALUE, got {', '.join(bad)}")
    return Context(
        workspace=workspace,
        github={
            "event_name": event,
            "ref": ref,
            "ref_name": name,
            "ref_type": {"heads": "branch", "tags": "tag"}.get(kind, ""),
            "sha": git.head(workspace),
            "repository": repository,
            "workspace": str(workspace),
        },
        runner={
            "os": "Linux",
            "arch": ARCHES.get(platform.machine().lower(), platform.machine()),
            "temp": tempfile.gettempdir(),
        },
        vars={name: value for name, _, value in pairs},
    )


def select(jobs: list[plan.Job], wanted: list[str]) -> list[plan.Job]:
    if not wanted:
        return jobs
    names = {
        alias: job.key for job in jobs for alias in (job.key, job.name, job.key.split("/")[-1])
    }
    unknown = [name for name in wanted if name not in names]
    if unknown:
        known = ", ".join(job.key for job in jobs)
        raise plan.WorkflowError(f"no job {', '.join(unknown)} in the workflow; jobs: {known}")
    keys = {names[name] for name in wanted}
    return [job for job in jobs if job.key in keys]


def summary(outcomes: list[Outcome]) -> str:
    lines = ["workflow summary:"]
    for outcome in outcomes:
        detail = {
            "success": f"{outcome.seconds:.0f} s",
            "failure": f"after {outcome.seconds:.0f} s: {outcome.reason}",
        }.get(outcome.result, outcome.reason)
        lines.append(f"  {outcome.job.name}: {outcome.result} ({detail})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
