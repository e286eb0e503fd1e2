"""`brokkr-broker` commands answer --help and fail clearly without a database."""

import json
import os
import subprocess
import sys

import pytest

from brokkr.broker import pak

COMMANDS = ["serve", "migrate", "generate-pak", "create-agent", "create-generator", "rotate-admin"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BROKKR")}
    return subprocess.run(
        [sys.executable, "-m", "brokkr.broker.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str):
    result = run(command, "--help")
    assert result.returncode == 0 and "usage: brokkr-broker" in result.stdout


def test_generate_pak_prints_a_matching_pair():
    result = run("generate-pak", "--json")
    pair = json.loads(result.stdout)
    assert pak.matches(pair["pak"], pair["hash"])


def test_missing_configuration_exits_2_with_the_fix():
    result = run("migrate")
    assert result.returncode == 2
    assert "BROKKR__DATABASE__URL" in result.stderr


def test_unreachable_database_exits_1_without_echoing_the_password():
    result = run("migrate", env={"BROKKR__DATABASE__URL": "postgresql://u:topsecret@127.0.0.1:1/x"})
    assert result.returncode == 1
    assert "cannot reach PostgreSQL" in result.stderr and "topsecret" not in result.stderr


def test_unknown_command_is_a_usage_error():
    assert run("frobnicate").returncode == 2


def test_serve_retries_an_unreachable_database_for_the_startup_wait():
    env = {
        "BROKKR__DATABASE__URL": "postgresql://u:topsecret@127.0.0.1:1/x",
        "BROKKR__DATABASE__STARTUP_WAIT": "1.5",
    }
    result = run("serve", env=env)
    assert result.returncode == 1
    assert "database not reachable yet" in result.stderr
    assert "cannot reach PostgreSQL" in result.stderr and "topsecret" not in result.stderr
