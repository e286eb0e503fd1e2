"""Build the broker and agent images for linux/amd64 and linux/arm64.

One Dockerfile (docker/Dockerfile), two targets. With a Docker engine the build uses
Buildx (brokkr_dev.containers.buildx); without one, Podman. Both build one architecture at a
time (qemu emulates the foreign one) from the same local base images, and either
way the images end up in podman storage with the same names, tags and OCI labels,
and the manifest lists are assembled there (one publishing path):

  <registry>/brokkr-<target>:sha-<7 hex>-<arch>   one image per architecture
  <registry>/brokkr-<target>:<branch>-<arch>
  <registry>/brokkr-<target>:sha-<7 hex>          manifest list of both architectures
  <registry>/brokkr-<target>:<branch>

Dependencies are installed from docker/requirements.txt (exported from uv.lock with
hashes) and, by default, from a wheelhouse of both architectures downloaded on the
host first, so the build itself needs no network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base import git, paths
from brokkr_dev.base.commands import run
from brokkr_dev.base.log import Log
from brokkr_dev.containers import baseimages, buildx, podman_storage, reproducible
from brokkr_dev.containers.podman import (
    ContainerError,
    choose_builder,
    ensure_podman_host,
    podman,
)
from brokkr_dev.containers.tagnames import sanitise_branch

TARGETS = ("broker", "agent")
ARCHES = ("amd64", "arm64")
DOCKERFILE = paths.REPO_ROOT / "docker" / "Dockerfile"
REQUIREMENTS = paths.REPO_ROOT / "docker" / "requirements.txt"
BUILD_REQUIREMENTS_IN = paths.REPO_ROOT / "docker" / "build-requirements.in"
BUILD_REQUIREMENTS = paths.REPO_ROOT / "docker" / "build-requirements.txt"
WHEELHOUSE = paths.REPO_ROOT / "docker" / "wheelhouse"
DEFAULT_REGISTRY = "localhost"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PYTHON_VERSION = "3.11"
# Go/OCI architecture -> what `uname -m` prints inside the container.
UNAME_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}
# Go/OCI architecture -> manylinux platform suffix of its wheels.
WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
DESCRIPTIONS = {
    "broker": "Brokkr broker: HTTP API that stores and distributes Kubernetes objects",
    "agent": "Brokkr agent: applies the broker's Kubernetes objects in its cluster",
}


# --- pure naming logic -------------------------------------------------------------


def sha_tag(revision: str) -> str:
    """`sha-<7 hex>` for a commit id, with a clear error for anything else."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", revision or ""):
        raise ContainerError(f"not a git commit id: {revision!r}")
    return f"sha-{revision[:7]}"


def platform_of(arch: str) -> str:
    """`linux/<arch>` for a supported architecture."""
    if arch not in ARCHES:
        raise ContainerError(f"unsupported architecture {arch!r}; choose from {', '.join(ARCHES)}")
    return f"linux/{arch}"


def arch_of(value: str) -> str:
    """The Go architecture name for `linux/arm64`, `arm64`, `aarch64`, `x86_64` ..."""
    name = value.removeprefix("linux/").lower()
    aliases = {"x86_64": "amd64", "aarch64": "arm64", "arm64/v8": "arm64"}
    name = aliases.get(name, name)
    if name not in ARCHES:
        raise ContainerError(
            f"unsupported platform {value!r}; choose from {', '.join(map(platform_of, ARCHES))}"
        )
    return name


def native_arch() -> str:
    """This host's architecture as a Go name."""
    return arch_of(platform.machine())


def image_name(target: str, registry: str = DEFAULT_REGISTRY) -> str:
    """`<registry>/brokkr-<target>`, e.g. localhost/brokkr-broker."""
    if target not in TARGETS:
        raise ContainerError(f"unknown image target {target!r}; choose from {', '.join(TARGETS)}")
    return f"{registry.rstrip('/')}/brokkr-{target}"


@dataclass(frozen=True)
class BuildInfo:
    """What identifies a build: from git and pyproject.toml, stamped into tags and labels."""

    version: str
    revision: str
    created: str
    branch: str | None
    source: str
    licenses: str

    @property
    def tags(self) -> list[str]:
        """Multi-arch tags: `sha-<7 hex>` and the sanitised branch (when on a branch)."""
        found = [sha_tag(self.revision)]
        if self.branch and self.branch != "HEAD":  # a detached HEAD has no branch to name
            found.append(sanitise_branch(self.branch))  # never a reserved (release) shape
        return found

    def arch_tags(self, arch: str) -> list[str]:
        """Per-architecture tags, e.g. `sha-abc1234-arm64`."""
        return [f"{tag}-{arch}" for tag in self.tags]

    def build_args(self) -> dict[str, str]:
        """The Dockerfile ARGs that fill the OCI labels."""
        args = {
            "VERSION": self.version,
            "REVISION": self.revision,
            "CREATED": self.created,
            "SOURCE": self.source,
            "LICENSES": self.licenses,
        }
        return args

    def labels(self, target: str) -> dict[str, str]:
        """The OCI labels the built image must carry."""
        prefix = "org.opencontainers.image."
        return {
            prefix + "title": f"brokkr-{target}",
            prefix + "description": DESCRIPTIONS[target],
            prefix + "version": self.version,
            prefix + "revision": self.revision,
            prefix + "created": self.created,
            prefix + "source": self.source,
            prefix + "licenses": self.licenses,
        }


def read_build_info(root: Path = paths.REPO_ROOT) -> BuildInfo:
    """Version, licence and source URL from pyproject.toml; revision, date, branch from git.

    `created` is the commit date, so rebuilding a commit gives the same labels.
    """
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    revision = _git(root, "rev-parse", "HEAD")
    created = _git(root, "show", "-s", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ")
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    license_field = project.get("license", "")
    licenses = license_field if isinstance(license_field, str) else license_field.get("text", "")
    return BuildInfo(
        version=project["version"],
        revision=revision,
        created=created,
        branch=branch,
        source=project.get("urls", {}).get("Source", ""),
        licenses=licenses,
    )


def _git(root: Path, *args: str) -> str:
    # Dates in UTC, so the labels of two builds of one commit agree everywhere.
    return git.git(root, *args, env=_utc_env())


def _utc_env() -> dict[str, str]:
    return {**os.environ, "TZ": "UTC"}


# --- build plans (pure: command lines) ---------------------------------------------


@dataclass(frozen=True)
class BuildRequest:
    """One image to build: a target for one architecture."""

    target: str
    arch: str
    base_image: str
    info: BuildInfo
    registry: str = DEFAULT_REGISTRY
    ca_bundle: Path | None = None
    context: Path = paths.REPO_ROOT
    dockerfile: Path = DOCKERFILE
    reproducible: bool = False  # podman only: brokkr_dev.containers.reproducible

    @property
    def references(self) -> list[str]:
        """The per-architecture references this build is tagged with."""
        name = image_name(self.target, self.registry)
        return [f"{name}:{tag}" for tag in self.info.arch_tags(self.arch)]

    def common_args(self) -> list[str]:
        """Arguments shared by `podman build` and `docker buildx build`."""
        args = ["--file", str(self.dockerfile), "--target", self.target]
        args += ["--platform", platform_of(self.arch)]
        build_args = {"BASE_IMAGE": self.base_image, **self.info.build_args()}
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        if self.ca_bundle is not None:
            args += ["--secret", f"id=cacert,src={self.ca_bundle}"]
        for reference in self.references:
            args += ["--tag", reference]
        return args


def podman_build_command(request: BuildRequest) -> list[str]:
    """`podman build` for one target and architecture (docker format keeps HEALTHCHECK);
    a reproducible one builds without intermediate images, every time at the epoch."""
    return podman(
        "build",
        "--format",
        "docker",
        "--isolation",
        "chroot",
        "--network",
        "host",
        *(reproducible.BUILD_FLAGS if request.reproducible else ("--layers=true",)),
        "--pull=missing",
        *request.common_args(),
        str(request.context),
    )


def base_image_for(arch: str, requested: str = "") -> str:
    """The BASE_IMAGE for a build: requested (`{arch}` expands), else the local
    debootstrap image, which needs no registry; the same for both builders, so both
    produce the same image."""
    if requested:
        return requested.format(arch=arch)
    return baseimages.for_arch(arch).tag


# --- requirements and wheelhouse ---------------------------------------------------


def export_requirements(root: Path = paths.REPO_ROOT) -> str:
    """The runtime dependencies of uv.lock as a hash-pinned requirements file."""
    return _uv_requirements(
        [
            "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header",
            "--format", "requirements-txt",
        ],
        root,
        "# Runtime dependencies of the images, exported from uv.lock with hashes.\n"
        "# Do not edit: regenerate with `invoke images.requirements`.\n",
    )  # fmt: skip


def compile_build_requirements(root: Path = paths.REPO_ROOT) -> str:
    """The project's build backend (docker/build-requirements.in) pinned with hashes."""
    return _uv_requirements(
        [
            "pip", "compile", "--quiet", "--generate-hashes", "--universal",
            "--python-version", PYTHON_VERSION, "--no-header",
            str(BUILD_REQUIREMENTS_IN.relative_to(root)),
        ],
        root,
        "# Build backend for the image's builder stage, compiled from build-requirements.in.\n"
        "# Do not edit: regenerate with `invoke images.requirements --build-backend`.\n",
    )  # fmt: skip


def _uv_requirements(args: list[str], root: Path, header: str) -> str:
    """Run `uv ARGS` in the repository and return its requirements output under a header."""
    result = subprocess.run(["uv", *args], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ContainerError(f"`uv {' '.join(args[:2])}` failed: {result.stderr.strip()}")
    return header + result.stdout


def stale_requirements(root: Path = paths.REPO_ROOT) -> bool:
    """True when docker/requirements.txt no longer matches uv.lock."""
    path = root / "docker" / "requirements.txt"
    return not path.exists() or path.read_text() != export_requirements(root)


def write_requirements(root: Path = paths.REPO_ROOT, build_backend: bool = False) -> list[Path]:
    """Regenerate docker/requirements.txt (and build-requirements.txt); return changed files."""
    outputs = {root / "docker" / "requirements.txt": export_requirements(root)}
    if build_backend:
        outputs[root / "docker" / "build-requirements.txt"] = compile_build_requirements(root)
    changed = []
    for path, text in outputs.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def wheel_platforms(arch: str) -> list[str]:
    """pip --platform values for manylinux wheels that run on Debian 12 (glibc 2.36)."""
    machine = WHEEL_ARCH[arch_of(arch)]
    return [f"manylinux2014_{machine}"] + [f"manylinux_2_{n}_{machine}" for n in range(17, 37)]


def pip_download_command(pip_python: str, requirements: Path, arch: str, dest: Path) -> list[str]:
    """`pip download` of binary wheels for one architecture, checked against the hashes."""
    command = [pip_python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--no-deps", "--require-hashes"]
    command += ["--python-version", PYTHON_VERSION, "--implementation", "cp"]
    command += ["--abi", "cp" + PYTHON_VERSION.replace(".", ""), "--abi", "abi3", "--abi", "none"]
    for name in wheel_platforms(arch):
        command += ["--platform", name]
    command += ["--dest", str(dest), "--requirement", str(requirements)]
    return command


def ensure_wheelhouse(
    arches: Iterable[str] = ARCHES, root: Path = paths.REPO_ROOT, log: Log = print
) -> Path:
    """Fill docker/wheelhouse with every locked wheel for the architectures.

    Downloads go to ~/.cache/brokkr/wheelhouse/<digest of the requirements>, so a
    second run (or a fresh clone on this machine) copies instead of downloading.
    """
    requirement_files = [
        root / "docker" / "requirements.txt",
        root / "docker" / "build-requirements.txt",
    ]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in requirement_files)).hexdigest()[:12]
    arches = sorted(set(arches))
    cache = paths.cache_dir() / "wheelhouse" / f"{digest}-{'-'.join(arches)}"
    if not (cache / ".complete").exists():
        log(f"downloading wheels for {', '.join(arches)} into {cache}")
        cache.mkdir(parents=True, exist_ok=True)
        pip_python = _pip_python()
        for arch in arches:
            for requirements in requirement_files:
                run(pip_download_command(pip_python, requirements, arch, cache))
        (cache / ".complete").touch()
    target = root / "docker" / "wheelhouse"
    target.mkdir(exist_ok=True)
    wanted = {p.name for p in cache.glob("*.whl")}
    for stale in target.glob("*.whl"):
        if stale.name not in wanted:
            stale.unlink()
    for wheel in cache.glob("*.whl"):
        if not (target / wheel.name).exists():
            shutil.copy2(wheel, target / wheel.name)
    return target


def clear_wheelhouse(root: Path = paths.REPO_ROOT) -> None:
    """Remove the wheels from docker/wheelhouse, so builds download from PyPI."""
    for wheel in (root / "docker" / "wheelhouse").glob("*.whl"):
        wheel.unlink()


def _pip_python() -> str:
    """A Python with pip: nox's uv environments have none, so keep a small venv in the cache."""
    venv = paths.cache_dir() / "images" / "pip-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        run([base, "-m", "venv", str(venv)])
    return str(python)


# --- building ----------------------------------------------------------------------


@dataclass
class BuildResult:
    """What a build produced: per-arch references, manifest lists and timings."""

    builder: str
    images: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    manifests: dict[str, list[str]] = field(default_factory=dict)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)


def build(
    *,
    targets: Sequence[str] = TARGETS,
    arches: Sequence[str] = ARCHES,
    builder: str = "auto",
    base_image: str = "",
    registry: str = DEFAULT_REGISTRY,
    offline: bool = True,
    ca_bundle: Path | None = None,
    push: bool = False,
    log: Log = print,
    root: Path = paths.REPO_ROOT,
    reproducible: bool = False,
) -> BuildResult:
    """Build every target for every architecture, then one manifest list per target and tag.

    Whichever builder runs, the per-architecture images and the manifest lists end up
    in podman storage, where the release pipeline pushes them from. `root` is the
    checkout to build (a release of another commit builds from its own checkout).
    `reproducible`: with podman, two builds of one commit give the same digests
    (brokkr_dev.containers.reproducible; slower, no layer cache); Buildx ignores it.
    """
    for target in targets:
        image_name(target)  # validates
    arches = [arch_of(a) for a in arches]
    setup = prepare(
        builder=builder, arches=arches, base_image=base_image, offline=offline,
        ca_bundle=ca_bundle, log=log, root=root,
    )  # fmt: skip
    info = read_build_info(root)
    result = BuildResult(builder=setup.builder)
    if reproducible and setup.builder != "podman":
        log(f"note: {setup.builder} builds are not reproducible here (docs/images.md)")
    for target in targets:
        requests = [
            dataclasses.replace(
                setup.request(target, arch, info, registry, root), reproducible=reproducible
            )
            for arch in arches
        ]
        for request in requests:
            log(
                f"building {request.references[0]} with {setup.builder} (base {request.base_image})"
            )
            started = time.monotonic()
            setup.build_one(request)
            result.seconds[(target, request.arch)] = round(time.monotonic() - started, 1)
            result.images[(target, request.arch)] = request.references
        result.manifests[target] = podman_manifests(requests, push=push, log=log)
    return result


@dataclass(frozen=True)
class Prepared:
    """A host ready to build: the builder, its build function and the base images."""

    builder: str
    build_one: Callable[[BuildRequest], None]
    base_images: dict[str, str]  # arch -> BASE_IMAGE
    ca_bundle: Path | None

    def request(
        self, target: str, arch: str, info: BuildInfo, registry: str = DEFAULT_REGISTRY,
        context: Path = paths.REPO_ROOT,
    ) -> BuildRequest:  # fmt: skip
        """One target and architecture, built from `context` (its docker/Dockerfile)."""
        return BuildRequest(
            target=target,
            arch=arch,
            base_image=self.base_images[arch],
            info=info,
            registry=registry,
            ca_bundle=self.ca_bundle,
            context=context,
            dockerfile=context / "docker" / "Dockerfile",
        )


def prepare(
    *,
    builder: str,
    arches: Sequence[str],
    base_image: str = "",
    offline: bool = True,
    ca_bundle: Path | None = None,
    log: Log = print,
    root: Path = paths.REPO_ROOT,
) -> Prepared:
    """Everything before the builds: requirements, wheelhouse or CA, host, base images."""
    builder = choose_builder(builder)
    changed = write_requirements(root)
    for path in changed:
        log(f"updated {path.relative_to(root)} from uv.lock (commit it)")
    if offline:
        ensure_wheelhouse(arches, root=root, log=log)
    else:
        clear_wheelhouse(root)
        if ca_bundle is None and HOST_CA_BUNDLE.exists():
            ca_bundle = HOST_CA_BUNDLE
    ensure_podman_host([a for a in arches if a != native_arch()])
    log(f"podman storage: {podman_storage.current().reason}")
    bases = {arch: base_image_for(arch, base_image) for arch in arches}
    if not base_image:
        for arch in arches:
            pinned = baseimages.ensure(baseimages.for_arch(arch), log=log)
            if builder == "podman":
                bases[arch] = pinned  # local base by digest (podman storage)
    build_one = (
        _podman_builder() if builder == "podman" else _buildx_builder(base_image, arches, log)
    )
    return Prepared(builder, build_one, bases, ca_bundle)


def copy_build_context(destination: Path, root: Path = paths.REPO_ROOT) -> Path:
    """Copy the files docker/Dockerfile reads (what .dockerignore lets through) and the
    wheelhouse into `destination`, to build from an edited copy; returns it."""
    for name in ("pyproject.toml", "README.md", "LICENSE", ".dockerignore"):
        shutil.copy2(root / name, destination / name)
    shutil.copytree(root / "docker", destination / "docker")
    shutil.copytree(
        root / "src" / "brokkr",
        destination / "src" / "brokkr",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return destination


def _podman_builder() -> Callable[[BuildRequest], None]:
    def build(request: BuildRequest) -> None:
        run(podman_build_command(request), stream=True)
        if request.reproducible:
            reproducible.normalise(request.references)

    return build


def _buildx_builder(
    base_image: str, arches: Sequence[str], log: Log
) -> Callable[[BuildRequest], None]:
    """Build with Buildx's docker driver, then hand each image to podman storage."""
    env = buildx.docker_env(buildx.engine_env(log))
    buildx.install_plugin(log)
    if not base_image:
        for arch in arches:
            buildx.load_base_image(baseimages.for_arch(arch).tag, env, log)
    dockerfile = buildx.builtin_frontend_dockerfile(
        DOCKERFILE, paths.REPO_ROOT / "build" / "images"
    )

    def build_one(request: BuildRequest) -> None:
        command = buildx.build_command(request.common_args(), dockerfile, request.context)
        code = subprocess.run(command, env=env, check=False).returncode
        if code != 0:
            raise ContainerError(f"`{' '.join(command)}` failed with exit status {code}")
        buildx.hand_over(request.references, env, log)

    return build_one


def podman_manifests(
    requests: Sequence[BuildRequest], push: bool = False, log: Log = print
) -> list[str]:
    """Create (replace) a manifest list per multi-arch tag from the per-arch images."""
    first = requests[0]
    name = image_name(first.target, first.registry)
    created = []
    for tag in first.info.tags:
        reference = f"{name}:{tag}"
        _remove_reference(reference)
        run(podman("manifest", "create", reference))
        for request in requests:
            run(
                podman(
                    "manifest", "add", reference, f"containers-storage:{name}:{tag}-{request.arch}"
                )
            )
        if push:
            run(podman("manifest", "push", "--all", reference, f"docker://{reference}"))
        log(f"manifest list {reference}: {', '.join(r.arch for r in requests)}")
        created.append(reference)
    return created


def _remove_reference(reference: str) -> None:
    """Drop an old manifest list or image of that name (re-runs replace it)."""
    if subprocess.run(podman("manifest", "exists", reference), check=False).returncode == 0:
        run(podman("manifest", "rm", reference))
    elif subprocess.run(podman("image", "exists", reference), check=False).returncode == 0:
        run(podman("untag", reference, reference))


# --- measuring ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSize:
    """Sizes in bytes of an image and of the layers it adds on top of its base."""

    reference: str
    uncompressed: int
    compressed: int
    added_uncompressed: int
    added_compressed: int


def measure(reference: str, base_reference: str) -> ImageSize:
    """Uncompressed and gzip-compressed sizes, total and added over the base image.

    Compressed sizes are what a registry stores: the layers gzip-compressed by
    `podman save --format docker-dir --compress`.
    """
    base_layers = len(_inspect(base_reference)["RootFS"]["Layers"])
    plain = _layer_sizes(reference, compress=False)
    packed = _layer_sizes(reference, compress=True)
    return ImageSize(
        reference=reference,
        uncompressed=sum(plain),
        compressed=sum(packed),
        added_uncompressed=sum(plain[base_layers:]),
        added_compressed=sum(packed[base_layers:]),
    )


def _layer_sizes(reference: str, compress: bool) -> list[int]:
    with tempfile.TemporaryDirectory(prefix="brokkr-measure-") as tmp:
        out = Path(tmp) / "image"
        command = podman("save", "--quiet", "--format", "docker-dir", "--output", str(out))
        if compress:
            command.append("--compress")
        run([*command, reference])
        manifest = json.loads((out / "manifest.json").read_text())
        return [int(layer["size"]) for layer in manifest["layers"]]


def _inspect(reference: str) -> dict:
    result = subprocess.run(
        podman("image", "inspect", reference), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ContainerError(f"no image {reference}: {result.stderr.strip()}")
    return json.loads(result.stdout)[0]


def measure_all(info: BuildInfo, arches: Sequence[str] = ARCHES, tag: str = "") -> list[ImageSize]:
    """Sizes of every target's per-arch image (of `tag`, default this revision) over its base."""
    sizes = []
    for target in TARGETS:
        for arch in arches:
            reference = f"{image_name(target)}:{tag or info.tags[0]}-{arch}"
            sizes.append(measure(reference, baseimages.for_arch(arch).tag))
    return sizes


def format_sizes(sizes: Sequence[ImageSize]) -> str:
    """A Markdown table of image sizes in MB (10^6 bytes)."""
    rows = [
        "| image | uncompressed | compressed | added uncompressed | added compressed |",
        "|---|---:|---:|---:|---:|",
    ]
    for size in sizes:
        values = (
            size.uncompressed,
            size.compressed,
            size.added_uncompressed,
            size.added_compressed,
        )
        rows.append(
            f"| {size.reference} | " + " | ".join(f"{v / 1e6:.1f} MB" for v in values) + " |"
        )
    return "\n".join(rows)
