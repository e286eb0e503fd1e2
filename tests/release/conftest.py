"""Helpers shared by the release tests: a cosign key pair and a one-call release."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from brokkr_dev import paths, toolchain
from brokkr_dev.release.pipeline import Outcome
from brokkr_dev.release.run import options_from, release
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.release import TinyImages, make_repo

TOOLS_NEEDED = ("helm", "cosign")


@pytest.fixture(scope="session")
def release_tools() -> dict[str, Path]:
    """The pinned helm and cosign (and syft when it can be built) in bin/."""
    manifest = toolchain.load_manifest()
    found = {name: toolchain.ensure(manifest[name], log=lambda _m: None) for name in TOOLS_NEEDED}
    try:
        found["syft"] = toolchain.ensure(manifest["syft"], log=lambda _m: None)
    except toolchain.ToolError as exc:
        pytest.fail(f"syft could not be installed: {exc}")
    return found


@pytest.fixture(scope="session")
def cosign_keys(tmp_path_factory: pytest.TempPathFactory, release_tools) -> Path:
    """A throw-away cosign key pair (empty password); returns the private key path."""
    directory = tmp_path_factory.mktemp("cosign")
    subprocess.run(
        [str(release_tools["cosign"]), "generate-key-pair"],
        cwd=directory,
        env={**os.environ, "COSIGN_PASSWORD": ""},
        capture_output=True,
        check=True,
        timeout=60,
    )
    return directory / "cosign.key"


@pytest.fixture
def test_env() -> dict[str, str]:
    """The environment a local release sees: no GitHub credentials leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "REGISTRY_"))}
    env["COSIGN_PASSWORD"] = ""
    return env


ReleaseFn = Callable[..., Outcome | None]


@pytest.fixture
def brokkr_repo(tmp_path: Path, oci_registry: LocalRegistry) -> Path:
    return make_repo(tmp_path / "brokkr", f"{oci_registry.host}/brokkr")


@pytest.fixture
def do_release(
    brokkr_repo: Path,
    oci_registry: LocalRegistry,
    tiny_images: TinyImages,
    cosign_keys: Path,
    test_env: dict[str, str],
) -> ReleaseFn:
    """Release a version of the test repository to the local registry.

    cosign_keys depends on release_tools, so helm, cosign and syft are in bin/.
    """

    def run(version: str, log: list[str] | None = None, **overrides: object) -> Outcome | None:
        settings: dict[str, object] = {
            "registry": f"{oci_registry.host}/brokkr",
            "root": brokkr_repo,
            "cosign_key": str(cosign_keys),
            "github_release": False,
        }
        settings.update(overrides)
        after_step = settings.pop("after_step", None)
        lines = log if log is not None else []
        return release(
            options_from(version, **settings),
            env=test_env,
            log=lines.append,
            builder=tiny_images,
            podman=tiny_images.podman,
            bin_dir=paths.BIN_DIR,
            after_step=after_step,  # type: ignore[arg-type]
        )

    return run
