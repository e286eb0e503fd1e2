"""Docker Buildx as an image builder, and the hand-over of what it built.

- The plugin is the pinned `buildx` of tools.toml, linked into a Docker config
  directory of our own (`DOCKER_CONFIG=~/.cache/brokkr/docker-config`), so no
  machine-wide plugin directory is touched and the version is the pinned one.
- The builder is Buildx's `docker` driver: the engine's built-in BuildKit. It needs
  no BuildKit image (none can be pulled here), builds one platform per invocation
  (qemu emulates the foreign one) and loads the result into the engine.
- The Dockerfile's `# syntax=` line would make BuildKit pull a frontend image; the
  build uses the engine's built-in Dockerfile frontend instead (the file needs
  nothing newer than `RUN --mount`), from a copy without that line.
- What Buildx built is handed over to podman storage (`docker save | podman load`),
  where the manifest lists are assembled and pushed exactly as for podman builds:
  one publishing path whichever builder made the images.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from brokkr_dev.base import paths, toolchain
from brokkr_dev.base.log import Log
from brokkr_dev.containers.engine import EngineError, ensure_engine
from brokkr_dev.containers.podman import ContainerError, podman

BUILDER = "default"  # the docker driver's builder, one per Docker context
_SYNTAX = re.compile(r"^#\s*syntax\s*=", re.IGNORECASE)


def docker_config_dir() -> Path:
    """Our DOCKER_CONFIG: holds cli-plugins/docker-buildx, the pinned plugin."""
    return paths.cache_dir() / "docker-config"


def install_plugin(log: Log = print) -> Path:
    """Build (once) the pinned Buildx and link it as a CLI plugin; returns the config dir."""
    binary = toolchain.ensure(toolchain.load_manifest()["buildx"], log=log)
    plugins = docker_config_dir() / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-buildx"
    if not (link.is_symlink() and link.resolve() == Path(binary).resolve()):
        link.unlink(missing_ok=True)
        link.symlink_to(Path(binary).resolve())
    return docker_config_dir()


def engine_env(log: Log = print) -> dict[str, str]:
    """DOCKER_HOST of a Docker engine that answers, started when none does."""
    try:
        return ensure_engine(log=log).env
    except EngineError as exc:
        raise ContainerError(f"Buildx needs a Docker engine: {exc}") from exc


def docker_env(
    engine_env: Mapping[str, str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for docker commands: the engine's DOCKER_HOST and our plugin dir."""
    return {
        **(os.environ if base is None else base),
        **engine_env,
        "DOCKER_CONFIG": str(docker_config_dir()),
    }


def without_syntax_directive(dockerfile: str) -> str:
    """The Dockerfile text with its leading `# syntax=` directive commented out.

    Line numbers stay the same, so BuildKit's error messages point at the real file.
    """
    lines = dockerfile.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if not line.startswith("#"):
            break  # directives come before any instruction or blank line
        if _SYNTAX.match(line):
            lines[index] = "# (syntax directive removed: built-in frontend)\n"
    return "".join(lines)


def builtin_frontend_dockerfile(dockerfile: Path, out_dir: Path) -> Path:
    """Write the Dockerfile for the engine's built-in frontend under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{dockerfile.name}.builtin-frontend"
    target.write_text(without_syntax_directive(dockerfile.read_text()))
    return target


def build_command(
    common_args: Sequence[str], dockerfile: Path, context: Path, builder: str = BUILDER
) -> list[str]:
    """`docker buildx build` of one platform, loaded into the engine.

    `--provenance=false`: the docker driver cannot keep attestations (the engine's
    image store drops them), so none are requested rather than silently lost.
    """
    args = list(common_args)
    # the caller's --file points at the original Dockerfile: use the stripped copy
    index = args.index("--file")
    args[index + 1] = str(dockerfile)
    return [
        "docker", "buildx", "build", "--builder", builder, "--load", "--provenance=false",
        *args, str(context),
    ]  # fmt: skip


def _pipe(producer: list[str], consumer: list[str], env: Mapping[str, str], what: str) -> None:
    """Run `producer | consumer` without a shell; fail with both commands' errors."""
    with subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as src:
        sink = subprocess.run(
            consumer, stdin=src.stdout, capture_output=True, text=True, env=env, check=False
        )
        if src.stdout:
            src.stdout.close()
        src_err = src.stderr.read().decode(errors="replace") if src.stderr else ""
        src.wait()
    if src.returncode != 0 or sink.returncode != 0:
        raise ContainerError(
            f"{what} failed: `{' '.join(producer[:3])}` exit {src.returncode}: "
            f"{src_err.strip()[-500:]}; `{' '.join(consumer[:3])}` exit {sink.returncode}: "
            f"{sink.stderr.strip()[-500:]}"
        )


def image_exists(reference: str, env: Mapping[str, str]) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return result.returncode == 0


def load_base_image(reference: str, env: Mapping[str, str], log: Log = print) -> None:
    """Copy a base image from podman storage into the engine (when it is not there)."""
    if image_exists(reference, env):
        return
    log(f"loading base image {reference} from podman storage into the Docker engine")
    _pipe(
        podman("save", "--format", "docker-archive", reference),
        ["docker", "load"],
        env,
        f"copying {reference} to the Docker engine",
    )


def hand_over(
    references: Sequence[str],
    env: Mapping[str, str],
    log: Log = print,
    podman_command: Sequence[str] | None = None,
) -> None:
    """Copy images the engine built into podman storage (podman_command: another
    storage), keeping their names."""
    log(f"handing {', '.join(references)} over to podman storage")
    loader = [*podman_command, "load"] if podman_command else podman("load")
    _pipe(
        ["docker", "save", *references],
        loader,
        env,
        "copying the Buildx images to podman storage",
    )
