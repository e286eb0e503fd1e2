"""The one parser of a release's arguments (`nox -s release -- ...`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brokkr_dev.base import paths
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.release.cli import UsageError, parse
from brokkr_dev.release.version import parse as parse_version


def test_a_bare_version_is_a_full_signed_release_to_the_default_registry():
    request = parse(["v1.2.3"])
    assert request.options.version == parse_version("v1.2.3")
    assert request.options.registry == "ghcr.io/colliery-io"
    assert request.options.sign and request.options.sbom and request.options.github_release
    assert request.publishes
    assert request.tools == ["helm", "cosign", "syft"]
    assert request.system_features == ["base", "containers"]


def test_a_dry_run_needs_only_helm_and_no_debian_packages():
    request = parse(["v1.2.3", "--dry-run"])
    assert request.options.dry_run and not request.publishes
    assert request.tools == ["helm"]
    assert request.system_features == []


def test_options_may_come_before_the_version_and_take_their_values():
    request = parse(
        ["--registry", "127.0.0.1:5000/b", "--builder", "podman", "v2.0.0-rc.1", "--no-sign"]
    )
    assert request.options.registry == "127.0.0.1:5000/b"
    assert request.options.builder == "podman"
    assert not request.options.sign and not request.options.sbom
    assert request.tools == ["helm", "cosign"]  # the air-gap bundles use `cosign save`


def test_helm_signing_takes_the_key_name_and_the_secret_keyring():
    request = parse(["v1.0.0", "--helm-key", "Brokkr Release", "--helm-keyring", "secring.gpg"])
    assert (request.options.helm_key, request.options.helm_keyring) == (
        "Brokkr Release",
        "secring.gpg",
    )
    assert parse(["v1.0.0"]).options.helm_key is None


def test_prepare_only_stamps_and_tags():
    request = parse(["v1.0.0", "--prepare"])
    assert request.prepare and not request.publishes


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([], "version"),
        (["v1.0.0", "--registy", "x"], "--registy"),
        (["v1.0.0", "--builder", "kaniko"], "kaniko"),
        (["v1.0.0", "v1.0.1"], "v1.0.1"),
    ],
)
def test_bad_arguments_are_one_error_that_names_them_and_shows_usage(argv, named):
    with pytest.raises(UsageError) as caught:
        parse(argv)
    assert named in str(caught.value)
    assert "usage: nox -s release -- vX.Y.Z" in str(caught.value)
    assert isinstance(caught.value, AutomationError)


def test_a_version_that_is_not_semver_is_refused_by_the_version_rules():
    with pytest.raises(AutomationError, match="1.2"):
        parse(["1.2"])


def test_invoke_release_turns_a_bad_argument_into_one_line_and_exit_1():
    """nox hands the arguments to `invoke release -- ...` unchanged; the task's error
    is the parser's, as one line without a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "release", "--", "v1.0.0", "--registy", "x"],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: unrecognized arguments: --registy x; usage:")
    assert "Traceback" not in done.stderr


def test_an_argument_with_spaces_reaches_the_parser_as_one_argument():
    """Invoke joins its remainder with spaces; the task reads the words after `--`
    itself, so `-k "a or b"` (e2e-kind) or a quoted value stays one argument."""
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "release", "--", "v1.0.0", "--builder", "podman x"],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "invalid choice: 'podman x'" in done.stderr
