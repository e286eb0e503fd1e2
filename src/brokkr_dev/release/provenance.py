"""SLSA v1 provenance of every release artifact, written from what the pipeline knows.

Each image (every platform image and the index joining them) and each chart gets an
SLSA provenance v1 predicate: the source commit, the build's parameters, the inputs
with their digests (`resolvedDependencies`: base image, requirements, wheels; the
platform images of an index; the images a chart deploys) and the pinned tools that
ran (`builder.builderDependencies`: tools.toml entries with role "publish", each
binary by SHA-256). cosign wraps it in an in-toto statement whose subject is the
artifact's digest, signs it and attaches it there. docs/releasing.md ("Provenance")
says why we write it ourselves instead of asking BuildKit.

The predicate builders are pure; the `*_materials` helpers read files and git.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from brokkr_dev.base import git, paths, toolchain

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# What a verifier needs to read each kind of provenance: the build types are
# described in docs/releasing.md ("Provenance"), versioned by their last element.
BUILD_TYPE = "https://github.com/{repo}/blob/main/docs/releasing.md#provenance-{kind}-v1"
KINDS = ("image", "index", "chart")
LOCAL_BUILDER = "urn:brokkr:release:local"
# Wheels that run on one architecture, by the machine name in their platform tag.
WHEEL_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.*\.whl$")


@dataclass(frozen=True)
class Material:
    """One input or tool, as an SLSA ResourceDescriptor (a URI and/or digests)."""

    name: str
    uri: str = ""
    digest: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def descriptor(self) -> dict[str, object]:
        found: dict[str, object] = {"name": self.name}
        if self.uri:
            found["uri"] = self.uri
        if self.digest:
            found["digest"] = dict(sorted(self.digest.items()))
        if self.annotations:
            found["annotations"] = dict(sorted(self.annotations.items()))
        return found


@runtime_checkable
class DescribesInputs(Protocol):
    """An image builder that can name what one platform image was built from."""

    def materials(self, name: str, platform: str) -> list[Material]: ...


@dataclass(frozen=True)
class Builder:
    """Who ran the release: the GitHub workflow (with its run), or a local machine."""

    id: str
    invocation: str | None = None
    version: Mapping[str, str] = field(default_factory=dict)
    tools: Sequence[Material] = ()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], tools: Sequence[Material] = (), **version: str
    ) -> Builder:
        """The release workflow's identity in GitHub Actions, else the local builder."""
        if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_REPOSITORY"):
            server = env.get("GITHUB_SERVER_URL", "https://github.com")
            repo = env["GITHUB_REPOSITORY"]
            workflow = env.get("GITHUB_WORKFLOW_REF") or (
                f"{repo}/.github/workflows/release.yml@{env.get('GITHUB_REF', '')}"
            )
            run_id = env.get("GITHUB_RUN_ID")
            attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
            invocation = (
                f"{server}/{repo}/actions/runs/{run_id}/attempts/{attempt}" if run_id else None
            )
            return cls(f"{server}/{workflow}", invocation, version, tuple(tools))
        return cls(LOCAL_BUILDER, None, version, tuple(tools))


def build_type(repo: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown provenance kind {kind!r}; one of {', '.join(KINDS)}")
    return BUILD_TYPE.format(repo=repo, kind=kind)


def predicate(
    *,
    kind: str,
    github_repo: str,
    external: Mapping[str, object],
    materials: Sequence[Material],
    builder: Builder,
    started: str,
    finished: str,
    internal: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """An SLSA v1 provenance predicate (https://slsa.dev/spec/v1.0/provenance)."""
    run_builder: dict[str, object] = {"id": builder.id}
    if builder.version:
        run_builder["version"] = dict(sorted(builder.version.items()))
    if builder.tools:
        run_builder["builderDependencies"] = [m.descriptor() for m in builder.tools]
    # Times only for what this run built; an artifact an earlier run pushed has none.
    metadata: dict[str, object] = {
        key: value for key, value in (("startedOn", started), ("finishedOn", finished)) if value
    }
    if builder.invocation:
        metadata["invocationId"] = builder.invocation
    definition: dict[str, object] = {
        "buildType": build_type(github_repo, kind),
        "externalParameters": dict(external),
        "resolvedDependencies": [m.descriptor() for m in materials],
    }
    if internal:
        definition["internalParameters"] = dict(internal)
    return {
        "buildDefinition": definition,
        "runDetails": {"builder": run_builder, "metadata": metadata},
    }


def oci_purl(name: str, digest: str, repository: str = "", arch: str = "") -> str:
    """`pkg:oci/<name>@sha256%3A<hex>[?arch=..&repository_url=..]`: an image by digest."""
    qualifiers = []
    if arch:
        qualifiers.append(f"arch={arch}")
    if repository:
        qualifiers.append("repository_url=" + quote(repository, safe=""))
    suffix = "?" + "&".join(qualifiers) if qualifiers else ""
    return f"pkg:oci/{name}@{quote(digest, safe='')}{suffix}"


def dependency_digests(predicate_body: Mapping[str, object], prefix: str = "") -> set[str]:
    """`sha256:<hex>` of every resolved dependency (whose name starts with prefix)."""
    definition = predicate_body.get("buildDefinition")
    items = definition.get("resolvedDependencies") if isinstance(definition, Mapping) else None
    found = set()
    for item in items if isinstance(items, list) else []:
        digest = item.get("digest") or {}
        if str(item.get("name", "")).startswith(prefix) and "sha256" in digest:
            found.add("sha256:" + digest["sha256"])
    return found


# --- facts from files and git -------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_material(root: Path, github_repo: str, tag: str | None) -> Material:
    """The commit built, as SLSA names a git source: under the release tag when the
    release tags it, else by the commit alone (a chart-only fix is not the tag)."""
    commit = git.head(root)
    where = f"refs/tags/{tag}" if tag else commit
    return Material(
        name="source",
        uri=f"git+https://github.com/{github_repo}@{where}",
        digest={"gitCommit": commit},
    )


def file_materials(root: Path, relative: Sequence[str]) -> list[Material]:
    """The files (relative to root) that exist, by SHA-256."""
    found = []
    for name in relative:
        path = root / name
        if path.is_file():
            found.append(
                Material(name=name, uri=f"file:{name}", digest={"sha256": sha256_file(path)})
            )
    return found


def wheel_materials(wheelhouse: Path, arch: str) -> list[Material]:
    """The wheels an image of this architecture installs: its machine's and pure ones."""
    machine = WHEEL_MACHINE.get(arch, arch)
    found = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        platform_tag = wheel.stem.rsplit("-", 1)[-1]
        if platform_tag != "any" and machine not in platform_tag:
            continue
        match = _WHEEL_NAME.match(wheel.name)
        uri = (
            f"pkg:pypi/{match['name'].lower().replace('_', '-')}@{match['version']}"
            if match
            else f"file:docker/wheelhouse/{wheel.name}"
        )
        found.append(
            Material(name=f"wheel {wheel.name}", uri=uri, digest={"sha256": sha256_file(wheel)})
        )
    return found


def tool_materials(
    names: Sequence[str], bin_dir: Path = paths.BIN_DIR, manifest: Path = paths.TOOLS_MANIFEST
) -> list[Material]:
    """The pinned tools (tools.toml) by version, and by SHA-256 where bin/ holds them."""
    tools = toolchain.load_manifest(manifest)
    found = [
        Material(name="tools.toml", uri="file:tools.toml", digest={"sha256": sha256_file(manifest)})
    ]
    for name in names:
        tool = tools[name]
        if tool.go_module:
            uri = f"pkg:golang/{tool.go_module}@{tool.go_version or tool.version}"
        else:
            uri = f"urn:brokkr:tool:{tool.name}@{tool.version}"
        binary = bin_dir / tool.binary
        digest = {"sha256": sha256_file(binary.resolve())} if binary.exists() else {}
        found.append(Material(name=f"tool {tool.name}", uri=uri, digest=digest))
    return found


def now() -> str:
    """The current UTC time in RFC 3339, as provenance timestamps are written."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
