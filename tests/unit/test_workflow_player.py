"""The workflow player (brokkr_dev.base.workflow): small workflows written here, played
with real bash and tar, and the repository's own ci.yml planned without running it."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from brokkr_dev.base import green, paths
from brokkr_dev.base.workflow import __main__ as workflow_cli
from brokkr_dev.base.workflow import actions, artifacts, plan
from brokkr_dev.base.workflow.expressions import (
    Context,
    ExpressionError,
    condition,
    hash_files,
    substitute,
)
from brokkr_dev.base.workflow.play import Player, StepFailed, describe, parse_commands_file
from brokkr_dev.release import plan as release_plan
from brokkr_dev.release.version import parse as parse_version


def write(workspace: Path, name: str, text: str) -> Path:
    path = workspace / ".github" / "workflows" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def player(workspace: Path, event: str = "pull_request", **github: str) -> Player:
    context = Context(
        workspace=workspace,
        github={"event_name": event, "ref": "refs/heads/topic", "ref_name": "topic", **github},
        runner={"os": "Linux", "arch": "X64", "temp": str(workspace)},
    )
    home = workspace / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)}
    return Player(context=context, cache_dir=workspace / "cache", base_env=env, log=lambda _: None)


def play(workspace: Path, name: str, event: str = "pull_request") -> Player:
    played = player(workspace, event)
    played.play(plan.load(workspace / ".github" / "workflows" / name, workspace))
    return played


def test_jobs_run_in_needs_order_whatever_the_file_order(tmp_path: Path) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: pull_request
        jobs:
          last:
            needs: [first, middle]
            steps: [{run: echo last >> order}]
          middle:
            needs: first
            steps: [{run: echo middle >> order}]
          first:
            steps: [{run: echo first >> order}]
        """,
    )
    play(tmp_path, "w.yml")
    assert (tmp_path / "order").read_text().split() == ["first", "middle", "last"]


def test_a_reusable_workflow_expands_into_its_jobs_and_needs_on_it_wait_for_all(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "inner.yml",
        """
        on: workflow_call
        jobs:
          two: {needs: one, steps: [{run: echo two >> order}]}
          one: {steps: [{run: echo one >> order}]}
        """,
    )
    outer = write(
        tmp_path,
        "outer.yml",
        """
        on: [push, pull_request]
        jobs:
          after: {needs: checks, steps: [{run: echo after >> order}]}
          checks: {uses: ./.github/workflows/inner.yml}
        """,
    )
    jobs = plan.load(outer, tmp_path)
    assert [job.name for job in jobs] == ["checks / one", "checks / two", "after"]
    assert jobs[2].needs == ("checks/two", "checks/one")
    play(tmp_path, "outer.yml")
    assert (tmp_path / "order").read_text().split() == ["one", "two", "after"]


def test_if_skips_jobs_and_steps_and_a_job_that_needs_a_skipped_one(tmp_path: Path) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: [push, pull_request]
        jobs:
          publish:
            if: github.event_name == 'push'
            steps: [{run: touch published}]
          after-publish:
            needs: publish
            steps: [{run: touch after-publish}]
          checks:
            steps:
              - {if: "${{ github.event_name != 'pull_request' }}", run: touch push-only}
              - {if: "startsWith(github.ref, 'refs/heads/') && !false", run: touch branch}
        """,
    )
    played = play(tmp_path, "w.yml")
    assert [(o.job.name, o.result) for o in played.outcomes] == [
        ("publish", "skipped"),
        ("after-publish", "skipped"),
        ("checks", "success"),
    ]
    assert "needs publish, which skipped" in played.outcomes[1].reason
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == ["branch"]
    play(tmp_path, "w.yml", event="push")
    assert (tmp_path / "published").exists()
    assert (tmp_path / "after-publish").exists()


def test_an_if_the_player_cannot_evaluate_is_refused_by_name(tmp_path: Path) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: pull_request
        jobs:
          draft:
            if: "!github.event.pull_request.draft"
            steps: [{run: touch ran}]
        """,
    )
    with pytest.raises(ExpressionError, match=r"github\.event is not known to the player"):
        play(tmp_path, "w.yml")
    assert not (tmp_path / "ran").exists()
    with pytest.raises(ExpressionError, match=r"unknown function fromJSON\(\)"):
        condition("fromJSON('true')", Context(workspace=tmp_path))


def test_env_merges_workflow_job_and_step_with_expressions_and_empty_secrets(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: pull_request
        env: {FROM: workflow, WORKFLOW: "yes"}
        jobs:
          job:
            env: {FROM: job, JOB: "${{ github.ref_name }}"}
            steps:
              - id: first
                env: {FROM: step, TOKEN: "${{ secrets.GITHUB_TOKEN }}"}
                run: |
                  echo "$FROM $WORKFLOW $JOB [$TOKEN] $CI $GITHUB_EVENT_NAME" > seen
                  echo "answer=42" >> "$GITHUB_OUTPUT"
                  echo "LATER=from-github-env" >> "$GITHUB_ENV"
              - run: echo "$FROM ${{ steps.first.outputs.answer }} $LATER" > seen-next
        """,
    )
    play(tmp_path, "w.yml")
    assert (tmp_path / "seen").read_text() == "step yes topic [] true pull_request\n"
    assert (tmp_path / "seen-next").read_text() == "job 42 from-github-env\n"


def test_a_failing_step_stops_the_run_with_its_exit_status(tmp_path: Path) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: pull_request
        jobs:
          first:
            steps:
              - {name: fails, run: "exit 3"}
              - {run: touch second-step}
          later:
            steps: [{run: touch later-job}]
          after-first:
            needs: first
            steps: [{run: touch after-first}]
        """,
    )
    with pytest.raises(StepFailed, match=r"first / fails failed with exit status 3") as failed:
        play(tmp_path, "w.yml")
    assert failed.value.status == 3
    assert not (tmp_path / "second-step").exists()
    # As on GitHub: an independent job still runs, one that needs the failed job does not.
    assert (tmp_path / "later-job").exists()
    assert not (tmp_path / "after-first").exists()


CACHED = """
on: pull_request
jobs:
  build:
    steps:
      - id: cache
        uses: actions/cache@0123456789abcdef0123456789abcdef01234567  # v4
        with:
          path: |
            built
            !built/scratch
          key: built-${{ hashFiles('inputs.txt') }}
          restore-keys: built-
      - run: |
          echo "${{ steps.cache.outputs.cache-hit }}" >> hits
          cat built/made 2>/dev/null >> restored || true
          mkdir -p built/scratch && cat inputs.txt > built/made && touch built/scratch/junk
"""


def test_the_cache_restores_saves_and_keeps_one_generation_per_restore_key(
    tmp_path: Path,
) -> None:
    write(tmp_path, "w.yml", CACHED)
    (tmp_path / "inputs.txt").write_text("v1\n")
    cache = tmp_path / "cache"
    play(tmp_path, "w.yml")  # miss: builds, then saves
    digest_v1 = hash_files(tmp_path, ["inputs.txt"])
    assert [entry.name for entry in cache.iterdir()] == [f"built-{digest_v1}"]

    clean = ["rm", "-rf", str(tmp_path / "built")]
    subprocess.run(clean, check=True)
    play(tmp_path, "w.yml")  # exact hit: restored, not saved again
    assert (tmp_path / "restored").read_text() == "v1\n"

    subprocess.run(clean, check=True)
    (tmp_path / "inputs.txt").write_text("v2\n")
    play(tmp_path, "w.yml")  # new key: the restore key finds v1's entry
    assert (tmp_path / "hits").read_text().split() == ["false", "true", "false"]
    assert (tmp_path / "restored").read_text() == "v1\nv1\n"
    digest_v2 = hash_files(tmp_path, ["inputs.txt"])
    assert [entry.name for entry in cache.iterdir()] == [f"built-{digest_v2}"]

    subprocess.run(clean, check=True)
    play(tmp_path, "w.yml")
    assert (tmp_path / "built" / "made").read_text() == "v2\n"
    # The excluded folder was never saved: what is there now the step made again.
    listing = subprocess.run(
        ["tar", "--list", f"--file={cache / f'built-{digest_v2}' / '0.tar'}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "built/made" in listing
    assert not [name for name in listing if "scratch" in name]


def test_a_broad_restore_key_never_drops_another_jobs_entry(tmp_path: Path) -> None:
    """Each job saves under its own key and falls back to any job's: saving one job's
    new generation drops that job's older one, never the other jobs' entries."""
    job = """
  {name}:{needs}
    steps:
      - uses: actions/cache@0123456789abcdef0123456789abcdef01234567  # v4
        with:
          path: built
          key: tools-${{{{ github.job }}}}-${{{{ hashFiles('inputs.txt') }}}}
          restore-keys: |
            tools-${{{{ github.job }}}}-
            tools-
      - run: mkdir -p built && cat inputs.txt > built/made
"""
    two_jobs = (
        "on: pull_request\njobs:"
        + job.format(name="one", needs="")
        + job.format(name="two", needs="\n    needs: one")
    )
    write(tmp_path, "w.yml", two_jobs)
    (tmp_path / "inputs.txt").write_text("v1\n")
    play(tmp_path, "w.yml")
    (tmp_path / "inputs.txt").write_text("v2\n")
    play(tmp_path, "w.yml")
    digest = hash_files(tmp_path, ["inputs.txt"])
    names = sorted(entry.name for entry in (tmp_path / "cache").iterdir())
    assert names == [f"tools-one-{digest}", f"tools-two-{digest}"]


def test_a_failed_job_saves_no_cache(tmp_path: Path) -> None:
    write(tmp_path, "w.yml", CACHED.replace("touch built/scratch/junk", "touch built/x; exit 1"))
    (tmp_path / "inputs.txt").write_text("v1\n")
    with pytest.raises(StepFailed):
        play(tmp_path, "w.yml")
    assert not (tmp_path / "cache").exists()


def test_an_action_without_a_local_equivalent_is_refused_by_name(tmp_path: Path) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: pull_request
        jobs:
          job:
            steps:
              - run: touch before
              - uses: docker/login-action@v3
        """,
    )
    with pytest.raises(
        plan.WorkflowError, match=r"docker/login-action@v3` has no local equivalent"
    ):
        play(tmp_path, "w.yml")


def test_setup_go_refuses_a_go_of_another_minor_version(tmp_path: Path) -> None:
    found = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout
    major, minor = re.search(r"go(\d+)\.(\d+)", found).groups()  # type: ignore[union-attr]
    runner = actions.Runner(tmp_path, tmp_path / "cache", {"PATH": os.environ["PATH"]})
    actions.play("actions/setup-go@sha", {"go-version": f"{major}.{minor}"}, runner)
    with pytest.raises(plan.WorkflowError, match=rf"asks for Go {major}\.{int(minor) + 1}"):
        actions.play("actions/setup-go@sha", {"go-version": f"{major}.{int(minor) + 1}"}, runner)


def test_hash_files_is_sha256_over_each_matched_files_sha256(tmp_path: Path) -> None:
    (tmp_path / "go" / "a").mkdir(parents=True)
    (tmp_path / "go" / "a" / "go.sum").write_text("a\n")
    (tmp_path / "tools.toml").write_text("t\n")
    expected = hashlib.sha256(
        hashlib.sha256(b"a\n").digest() + hashlib.sha256(b"t\n").digest()
    ).hexdigest()
    assert hash_files(tmp_path, ["tools.toml", "go/**/go.sum"]) == expected
    assert hash_files(tmp_path, ["nothing/**"]) == ""
    only_go_sum = hashlib.sha256(hashlib.sha256(b"a\n").digest()).hexdigest()
    assert hash_files(tmp_path, ["go/**"]) == only_go_sum
    assert hash_files(tmp_path, ["**", "!tools.toml"]) == only_go_sum
    context = Context(workspace=tmp_path, runner={"os": "Linux"})
    only_tools = hashlib.sha256(hashlib.sha256(b"t\n").digest()).hexdigest()
    key = substitute("k-${{ runner.os }}-${{ hashFiles('tools.toml') }}", context)
    assert key == f"k-Linux-{only_tools}"


def test_output_files_take_lines_and_heredocs() -> None:
    assert parse_commands_file("a=1\nb<<EOF\nx\ny\nEOF\nc=3=4\n") == {
        "a": "1",
        "b": "x\ny",
        "c": "3=4",
    }


def test_the_real_ci_workflow_on_a_pull_request(tmp_path: Path) -> None:
    """What `.ci/run` would play: the jobs of checks.yml, then the pull-request scan."""
    workflow = paths.REPO_ROOT / ".github" / "workflows" / "ci.yml"
    jobs = plan.load(workflow, paths.REPO_ROOT)
    planned = player(paths.REPO_ROOT)
    lines = describe(jobs, planned)
    headers = [line for line in lines if not line.startswith("  ")]
    assert headers == [
        "checks / lint (ubuntu-24.04, 45 min)",
        "checks / tests (ubuntu-24.04, 90 min)",
        "checks / e2e-kind (ubuntu-24.04, 90 min)",
        "dev-images: skipped (if: github.event_name == 'push')",
        "scan (ubuntu-24.04, 90 min)",
    ]
    assert "  nox -s tests: $ scripts/nox -s tests" in lines  # the README's test command
    for job in jobs:
        for step in job.steps:
            assert step.uses is None or step.uses.partition("@")[0] in actions.PLAYERS
    # Each cache key evaluates against the tree, and the three are distinct.
    e2e = next(job for job in jobs if job.key == "checks/e2e-kind")
    context = planned.job_context(e2e)
    context.steps["py"] = {"outputs": {"python-version": "3.11.2"}}
    context.steps["node-image"] = {"outputs": {"key": "v1-amd64-0123"}}
    keys = [substitute(s.inputs["key"], context) for s in e2e.steps if s.uses and "cache" in s.uses]
    assert [key.split("-")[0] for key in keys] == ["brokkr", "go", "kind"]
    # The job's name leads: a job saves only on a miss, so a shared key keeps one job's tools.
    assert re.fullmatch(r"brokkr-Linux-X64-py3\.11\.2-e2e-kind-[0-9a-f]{64}", keys[0])
    assert re.fullmatch(r"go-Linux-X64-[0-9a-f]{64}", keys[1])
    # The large Go caches come back only when a tool must be built.
    go_cache = next(s for s in e2e.steps if s.name == "cache Go builds and modules")
    for hit, restored in (("true", False), ("false", True)):
        context.steps["tools"] = {"outputs": {"cache-hit": hit}}
        assert condition(go_cache.condition, context) is restored
    assert keys[2] == "kind-node-v1-amd64-0123"
    names = [step.name for step in e2e.steps]
    assert names.index("node image key") < names.index("cache the kind node image")


def test_a_later_job_of_the_same_play_does_not_restore_a_cache_again(tmp_path: Path) -> None:
    """Jobs here share one home: what the first job saved is already in place."""
    job = CACHED.split("jobs:\n")[1]
    write(tmp_path, "w.yml", CACHED + job.replace("  build:", "  again:\n    needs: build", 1))
    (tmp_path / "inputs.txt").write_text("v1\n")
    played = player(tmp_path)
    lines: list[str] = []
    played.log = lines.append
    played.play(plan.load(tmp_path / ".github" / "workflows" / "w.yml", tmp_path))
    digest = hash_files(tmp_path, ["inputs.txt"])
    assert f"cache saved with key built-{digest}" in lines
    assert f"cache built-{digest} already restored here by an earlier job" in lines
    assert (tmp_path / "hits").read_text().split() == ["false", "true"]


def test_a_cache_that_cannot_be_restored_is_a_warning_and_is_saved_again(tmp_path: Path) -> None:
    write(tmp_path, "w.yml", CACHED)
    (tmp_path / "inputs.txt").write_text("v1\n")
    play(tmp_path, "w.yml")
    entry = tmp_path / "cache" / f"built-{hash_files(tmp_path, ['inputs.txt'])}"
    (entry / "0.tar").write_text("not a tar archive")
    subprocess.run(["rm", "-rf", str(tmp_path / "built")], check=True)
    played = player(tmp_path)
    lines: list[str] = []
    played.log = lines.append
    played.play(plan.load(tmp_path / ".github" / "workflows" / "w.yml", tmp_path))
    assert any(line.startswith("::warning::failed to restore cache built-") for line in lines)
    assert (tmp_path / "hits").read_text().split() == ["false", "false"]
    listing = subprocess.run(
        ["tar", "--list", f"--file={entry / '0.tar'}"], capture_output=True, text=True, check=True
    )
    assert "built/made" in listing.stdout.split()


def test_the_command_line_lists_a_workflow_and_refuses_what_would_not_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = ["--workspace", str(paths.REPO_ROOT)]
    release = ["--workflow", ".github/workflows/release.yml", *root]
    assert (
        workflow_cli.main(["list", "--event", "push", "--ref", "refs/tags/v1.2.0", *release]) == 0
    )
    listed = capsys.readouterr().out.splitlines()
    assert [line for line in listed if not line.startswith("  ")] == [
        "checks / lint (ubuntu-24.04, 45 min)",
        "checks / tests (ubuntu-24.04, 90 min)",
        "checks / e2e-kind (ubuntu-24.04, 90 min)",
        "release (ubuntu-24.04, 90 min)",
    ]
    assert workflow_cli.main(["list", "--event", "push", "--ref", "refs/heads/main", *release]) == 1
    assert "release.yml does not run on a push of refs/heads/main" in capsys.readouterr().err
    assert workflow_cli.main(["list", "--event", "pull_request", *release]) == 1
    assert "does not run on `pull_request` (its triggers: push)" in capsys.readouterr().err
    ci = ["--event", "pull_request", "--workflow", ".github/workflows/ci.yml", *root]
    assert workflow_cli.main(["play", *ci]) == 1
    assert "play needs --cache-dir DIR" in capsys.readouterr().err
    assert workflow_cli.main(["list", *ci, "--job", "lint", "--job", "nope"]) == 1
    assert "no job nope in the workflow; jobs: checks/lint" in capsys.readouterr().err
    assert workflow_cli.main(["list", *ci, "--job", "checks / tests"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "checks / tests (ubuntu-24.04, 90 min)"


def test_cache_entries_unused_for_a_month_are_dropped_on_the_next_save(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    runner = actions.Runner(tmp_path, tmp_path / "cache", {"HOME": str(tmp_path)})
    spec = actions.CacheSpec.parse("data", runner)
    store = actions.CacheStore(tmp_path / "cache")
    for key in ("old-unused", "old-but-restored", "new"):
        store.save(key, spec)
    month_ago = time.time() - (actions.UNUSED_DAYS + 1) * 86400
    for key in ("old-unused", "old-but-restored"):
        os.utime(tmp_path / "cache" / key / actions.MANIFEST, (month_ago, month_ago))
    store.restore(tmp_path / "cache" / "old-but-restored", spec)
    store.prune(keep="new", prefixes=[])
    assert sorted(store.key_of(entry) for entry in store.entries()) == ["new", "old-but-restored"]


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("defaults: {run: {shell: sh}}\njobs: {a: {steps: [{run: 'true'}]}}", "defaults"),
        ("jobs: {a: {strategy: {matrix: {x: [1, 2]}}, steps: [{run: 'true'}]}}", "strategy"),
        ("jobs: {a: {services: {db: {image: postgres}}, steps: [{run: 'true'}]}}", "services"),
        ("jobs: {a: {uses: octo/repo/.github/workflows/x.yml@v1}}", "octo/repo"),
        ("jobs: {a: {uses: ./.github/workflows/w.yml, with: {x: 1}}}", "with"),
        ("jobs: {a: {steps: [{run: 'true', timeout-minutes: 5}]}}", "timeout-minutes"),
    ],
)
def test_what_the_player_does_not_play_is_refused_by_name(
    tmp_path: Path, text: str, refused: str
) -> None:
    path = write(tmp_path, "w.yml", "on: push\n" + text + "\n")
    with pytest.raises(plan.WorkflowError, match=re.escape(refused)):
        plan.load(path, tmp_path)


def test_setup_python_gives_the_system_pythons_exact_version(tmp_path: Path) -> None:
    runner = actions.Runner(tmp_path, tmp_path / "cache", {"PATH": os.environ["PATH"]})
    played = actions.play("actions/setup-python@sha", {"python-version": "3.11"}, runner)
    printed = subprocess.run(["python3", "--version"], capture_output=True, text=True, check=True)
    assert played.outputs == {"python-version": printed.stdout.split()[1]}


ARTIFACTS = """
on: pull_request
jobs:
  build:
    steps:
      - run: |
          mkdir -p "$RUNNER_TEMP/out/sub" "$RUNNER_TEMP/out/.hidden"
          echo one > "$RUNNER_TEMP/out/one.json"
          echo two > "$RUNNER_TEMP/out/sub/two.json"
          echo secret > "$RUNNER_TEMP/out/.hidden/key"
          echo scratch > "$RUNNER_TEMP/out/scratch.log"
          echo "$RUNNER_TEMP" > build-temp
      - uses: actions/upload-artifact@0123456789abcdef0123456789abcdef01234567  # v4
        with:
          name: records
          path: |
            ${{ runner.temp }}/out/
            !${{ runner.temp }}/out/*.log
          if-no-files-found: error
      - uses: actions/upload-artifact@0123456789abcdef0123456789abcdef01234567  # v4
        with:
          name: single
          path: ${{ runner.temp }}/out/sub/two.json
  use:
    needs: build
    steps:
      - run: test ! -e "$(cat build-temp)" && test -z "$(ls -A "$RUNNER_TEMP")"
      - uses: actions/download-artifact@0123456789abcdef0123456789abcdef01234567  # v4
        with:
          name: records
          path: ${{ runner.temp }}/records
      - uses: actions/download-artifact@0123456789abcdef0123456789abcdef01234567  # v4
        with:
          path: every
      - uses: actions/download-artifact@0123456789abcdef0123456789abcdef01234567  # v4
        with:
          pattern: "*e*"
          merge-multiple: true
          path: merged
      - run: (cd "$RUNNER_TEMP/records" && find . -type f | sort) > got
"""


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_an_artifact_passes_from_a_job_to_a_job_that_needs_it_within_one_run(
    tmp_path: Path,
) -> None:
    """Each job gets its own empty $RUNNER_TEMP; artifacts carry files between them:
    a folder's files relative to it (hidden and excluded ones left out), a lone file
    by its name; by name straight into the path, else one folder per artifact."""
    write(tmp_path, "w.yml", ARTIFACTS)
    played = play(tmp_path, "w.yml")
    assert [outcome.result for outcome in played.outcomes] == ["success", "success"]
    assert (tmp_path / "got").read_text().split() == ["./one.json", "./sub/two.json"]
    assert files_under(tmp_path / "every") == [
        "records/one.json",
        "records/sub/two.json",
        "single/two.json",
    ]
    assert files_under(tmp_path / "merged") == ["one.json", "sub/two.json", "two.json"]
    assert (tmp_path / "merged" / "two.json").read_text() == "two\n"
    assert played.artifacts_dir is None  # the run's artifacts went with it

    # Artifacts live for one run: the next run's download finds nothing.
    again = player(tmp_path)
    jobs = plan.load(tmp_path / ".github" / "workflows" / "w.yml", tmp_path)
    use = [job for job in jobs if job.key == "use"]
    with pytest.raises(StepFailed, match="Artifact not found for name: records"):
        again.play(use)


def test_a_download_of_an_artifact_nobody_uploaded_fails_the_step_as_on_github(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: pull_request
        jobs:
          up:
            steps:
              - run: echo a > a.txt
              - uses: actions/upload-artifact@v4
                with: {name: green-lint, path: a.txt}
          down:
            needs: up
            steps:
              - uses: actions/download-artifact@v4
                with: {pattern: "nothing-*", path: none}
              - run: touch pattern-matching-nothing-is-fine
              - name: fetch a typo
                uses: actions/download-artifact@v4
                with: {name: green-lnit, path: got}
              - run: touch after-the-failed-download
        """,
    )
    with pytest.raises(StepFailed, match="down / fetch a typo failed") as failed:
        play(tmp_path, "w.yml")
    assert (
        "Unable to download artifact(s): Artifact not found for name: green-lnit "
        "(uploaded in this run so far: green-lint)" in str(failed.value)
    )
    assert (tmp_path / "pattern-matching-nothing-is-fine").exists()
    assert not (tmp_path / "after-the-failed-download").exists()
    assert not (tmp_path / "got").exists()


@pytest.mark.parametrize(
    ("step", "failure"),
    [
        ("{path: missing/, if-no-files-found: error}", "No files were found with the provided"),
        ("{name: 'a/b', path: a.txt}", "artifact name 'a/b' is not allowed ('/')"),
        ("{name: twice, path: a.txt}", "an artifact named 'twice' was already uploaded"),
        ("{path: a.txt, overwrite: sure}", "input overwrite: 'sure' is not a boolean"),
    ],
)
def test_an_upload_fails_where_github_fails_it(tmp_path: Path, step: str, failure: str) -> None:
    write(
        tmp_path,
        "w.yml",
        f"""
        on: pull_request
        jobs:
          job:
            steps:
              - run: echo a > a.txt
              - uses: actions/upload-artifact@v4
                with: {{name: twice, path: a.txt}}
              - uses: actions/upload-artifact@v4
                with: {step}
        """,
    )
    with pytest.raises(StepFailed, match=re.escape(failure)):
        play(tmp_path, "w.yml")


def test_an_upload_of_nothing_warns_by_default_and_a_replaced_artifact_wins(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "w.yml",
        """
        on: pull_request
        jobs:
          job:
            steps:
              - uses: actions/upload-artifact@v4
                with: {name: empty, path: missing/}
              - run: echo old > a.txt
              - uses: actions/upload-artifact@v4
                with: {name: a, path: a.txt}
              - run: echo new > a.txt
              - uses: actions/upload-artifact@v4
                with: {name: a, path: a.txt, overwrite: true}
              - uses: actions/download-artifact@v4
                with: {path: got}
        """,
    )
    played = player(tmp_path)
    lines: list[str] = []
    played.log = lines.append
    played.play(plan.load(tmp_path / ".github" / "workflows" / "w.yml", tmp_path))
    assert "::warning::No files were found with the provided path: missing/. " in " ".join(lines)
    assert files_under(tmp_path / "got") == ["a/a.txt"]
    assert (tmp_path / "got" / "a" / "a.txt").read_text() == "new\n"


def test_an_artifacts_root_is_the_searched_folder_a_lone_files_folder_or_their_common_one(
    tmp_path: Path,
) -> None:
    for name in ("a/x/one", "a/y/two", "a/y/.three", "b/four"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    home = tmp_path / "home"

    def selected(*lines: str) -> tuple[str, list[str]]:
        found = artifacts.select(list(lines), tmp_path, home)
        relative = sorted(str(file.relative_to(found.root)) for file in found.files)
        return str(found.root.relative_to(tmp_path)), relative

    assert selected("a/x/one") == ("a/x", ["one"])
    assert selected("a/") == ("a", ["x/one", "y/two"])
    assert selected("a/*/t*") == ("a", ["y/two"])
    assert selected("a/x", "a/y/two") == ("a", ["x/one", "y/two"])
    assert selected("a/**", "!a/x/**") == ("a", ["y/two"])
    assert selected("a/x/one", "b/four") == (".", ["a/x/one", "b/four"])
    assert artifacts.select(["a/y"], tmp_path, home, hidden=True).files[0].name == ".three"


def test_the_release_job_gets_a_green_record_of_every_check_the_release_gate_requires() -> None:
    """On GitHub each job is a fresh machine: every record the gate of `nox -s release`
    reads (release/testgate.py) must reach the release job's BROKKR_GREEN_DIR before
    that step, made there, or written by a job it needs, uploaded from the folder the
    record went to and downloaded into the gate's folder. Read from the real
    release.yml and checks.yml, so neither can drift from the gate's list."""
    required = release_plan.Options(version=parse_version("v1.2.0")).records
    assert set(required) == set(green.REQUIRED)  # the release asks for every check
    workflow = paths.REPO_ROOT / ".github" / "workflows" / "release.yml"
    jobs = {job.key: job for job in plan.load(workflow, paths.REPO_ROOT)}
    planned = player(paths.REPO_ROOT, "push", ref="refs/tags/v1.2.0", ref_name="v1.2.0")

    def job_context(job: plan.Job) -> Context:
        context = planned.job_context(job)
        context.env = {key: substitute(value, context) for key, value in job.env.items()}
        return context

    def records_dir(step: plan.Step, context: Context) -> str | None:
        env = {**context.env, **{k: substitute(v, context) for k, v in step.env.items()}}
        return folder(env[green.RECORDS_ENV], context) if green.RECORDS_ENV in env else None

    def folder(text: str, context: Context) -> str:
        return os.path.normpath(substitute(text, context))

    def check_run_by(step: plan.Step) -> str | None:
        command = (step.run or "").strip()
        return next((check for check, full in green.CHECKS.items() if command == full), None)

    def action(step: plan.Step, name: str) -> bool:
        # Unconditional steps only: one behind an `if:` may not run.
        return step.condition is None and (step.uses or "").startswith(f"actions/{name}@")

    release = jobs["release"]
    context = job_context(release)
    gate = next(i for i, s in enumerate(release.steps) if "nox -s release" in (s.run or ""))
    gate_dir = records_dir(release.steps[gate], context)
    assert gate_dir, "`nox -s release` must be given BROKKR_GREEN_DIR, where the records go"
    before_gate = release.steps[:gate]
    arrives: dict[str, str] = {}
    for step in before_gate:
        check = check_run_by(step)
        if check and step.condition is None and records_dir(step, context) == gate_dir:
            arrives[check] = "made in the release job"
    downloads = [
        step
        for step in before_gate
        if action(step, "download-artifact") and folder(step.inputs["path"], context) == gate_dir
    ]

    def downloaded(name: str) -> bool:
        for step in downloads:
            if step.inputs.get("name"):
                if step.inputs["name"] == name:
                    return True
            # Without merge-multiple, each artifact lands in a folder of its own.
            elif step.inputs.get("merge-multiple") == "true" and fnmatch.fnmatchcase(
                name, step.inputs.get("pattern") or "*"
            ):
                return True
        return False

    uploads: list[str] = []
    for key in release.needs:
        needed = jobs[key]
        needed_context = job_context(needed)
        written: dict[str, str | None] = {}  # check -> the folder its record went to
        for step in needed.steps:
            check = check_run_by(step)
            if check and step.condition is None:
                written[check] = records_dir(step, needed_context)
            if action(step, "upload-artifact"):
                name = substitute(step.inputs.get("name") or "artifact", needed_context)
                uploaded = folder(step.inputs["path"], needed_context)
                uploads.append(name)
                for check, records in written.items():
                    if records == uploaded and downloaded(name):
                        arrives[check] = f"artifact {name} of {needed.name}"
    # Unique: `overwrite: true` (for re-runs) would let one job's record replace another's.
    assert len(uploads) == len(set(uploads)), uploads
    missing = sorted(set(required) - set(arrives))
    assert not missing, f"no green record reaches the release job's gate for {missing}; {arrives}"
