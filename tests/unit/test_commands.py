"""One way to run a command: `brokkr_dev.base.commands.run` and its one error."""

from __future__ import annotations

import sys

import pytest

from brokkr_dev.base.commands import CommandError, run
from brokkr_dev.base.errors import AutomationError


def test_run_returns_the_captured_output_of_a_command_that_succeeds():
    done = run([sys.executable, "-c", "print('out'); import sys; print('err', file=sys.stderr)"])
    assert done.returncode == 0
    assert done.stdout == "out\n"
    assert done.stderr == "err\n"


def test_a_failed_command_raises_one_error_with_its_command_status_and_stderr_tail():
    script = "import sys\nfor i in range(40): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    with pytest.raises(CommandError) as caught:
        run([sys.executable, "-c", script], hint="fix: do the other thing")
    error = caught.value
    assert isinstance(error, AutomationError)
    assert error.returncode == 3
    assert error.command[0] == sys.executable
    assert "failed with exit status 3" in str(error)
    # only the tail: the last lines, not the first
    assert "line 39" in error.tail and "line 0\n" not in error.tail
    assert len(error.tail.splitlines()) == 15
    assert str(error).endswith("fix: do the other thing")


def test_stdout_is_the_tail_when_a_failing_command_wrote_nothing_to_stderr():
    with pytest.raises(CommandError, match="only on stdout"):
        run([sys.executable, "-c", "print('only on stdout'); raise SystemExit(1)"])


def test_check_false_returns_a_non_zero_exit_instead_of_raising():
    done = run([sys.executable, "-c", "raise SystemExit(4)"], check=False)
    assert done.returncode == 4


def test_a_missing_program_is_a_command_error_even_with_check_false():
    with pytest.raises(CommandError, match="not found") as caught:
        run(["brokkr-no-such-program-here"], check=False)
    assert caught.value.returncode == 127


def test_a_command_that_runs_too_long_is_stopped_and_reported():
    with pytest.raises(CommandError, match="timed out") as caught:
        run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert caught.value.returncode is None


def test_cwd_env_and_input_reach_the_command(tmp_path):
    script = "import os, sys; print(os.getcwd(), os.environ['BROKKR_T'], sys.stdin.read())"
    done = run([sys.executable, "-c", script], cwd=tmp_path, env={"BROKKR_T": "x"}, input="in")
    assert done.stdout.split() == [str(tmp_path), "x", "in"]
