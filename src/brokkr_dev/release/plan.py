"""The release plan: everything a release will do, computed before anything is done.

`--dry-run` prints it and stops; a real run executes it step by step. It is built
from the options, the work tree and what the registry already holds, so it also
shows what a resumed run will skip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base import green, paths
from brokkr_dev.release.registry import Registry, split_reference
from brokkr_dev.release.stamp import CHART_NAMES, FileChange, read_chart, stamp_all
from brokkr_dev.release.tags import TagChange, release_tags
from brokkr_dev.release.testgate import DEFAULT_CHECKS
from brokkr_dev.release.version import Version, parse_released

IMAGE_NAMES = ("brokkr-broker", "brokkr-agent")
PLATFORMS = ("linux/amd64", "linux/arm64")
DEFAULT_REGISTRY = "ghcr.io/colliery-io"


@dataclass(frozen=True)
class Options:
    """What the maintainer asked for (nox -s release -- vX.Y.Z [options])."""

    version: Version
    registry: str = DEFAULT_REGISTRY
    root: Path = paths.REPO_ROOT
    charts_dir: Path | None = None  # default: <root>/charts
    platforms: tuple[str, ...] = PLATFORMS
    sign: bool = True
    cosign_key: str | None = None  # None: keyless (OIDC in GitHub Actions)
    sbom: bool = True
    # Helm's own provenance (<chart>.tgz.prov, `helm verify`): the GPG key's name and
    # the secret keyring holding it; None: the charts are signed with cosign only.
    helm_key: str | None = None
    helm_keyring: str | None = None
    github_release: bool = True
    github_repo: str = "colliery-io/brokkr"
    git_tag: bool = True  # create the git tag when the release completes
    dry_run: bool = False
    builder: str = "auto"  # auto (Buildx when a Docker engine answers), buildx, podman
    # Commands that must pass on the commit before anything is published (gate.py).
    gate: tuple[tuple[str, ...], ...] = DEFAULT_CHECKS
    # Checks whose green record for this tree must exist (base/green.py).
    records: tuple[str, ...] = green.REQUIRED

    @property
    def charts(self) -> Path:
        return self.charts_dir or self.root / "charts"

    @property
    def host(self) -> str:
        return split_reference(self.registry)[0]

    def repo_path(self, name: str) -> str:
        """Repository path inside the registry for an image (or `charts/<chart>`)."""
        return f"{split_reference(self.registry)[1]}/{name}"


@dataclass
class ImagePlan:
    """One image: where it goes and which tags the release writes."""

    name: str
    repository: str  # host/path, without tag
    tags: list[TagChange]
    published_digest: str | None = None  # the exact tag already exists (resumed run)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tags[0].tag}"


@dataclass
class ChartPlan:
    """One chart: the OCI reference its package is pushed to."""

    name: str
    version: str
    app_version: str
    repository: str  # host/path/charts/<name>
    published_digest: str | None = None
    published_app_version: str | None = None  # appVersion of the chart already pushed

    @property
    def reference(self) -> str:
        return f"oci://{self.repository}:{self.version}"


@dataclass
class Plan:
    """Everything a release does, in order."""

    options: Options
    file_changes: list[FileChange]
    images: list[ImagePlan]
    charts: list[ChartPlan]
    previous_tag: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def version(self) -> Version:
        return self.options.version

    def render(self) -> str:
        """The plan as text, one line per change (what --dry-run prints)."""
        o = self.options
        lines = [
            f"Release plan for {o.version.tag}"
            + (" (prerelease)" if o.version.is_prerelease else "")
            + (" -- DRY RUN: nothing will be changed" if o.dry_run else ""),
            f"  registry: {o.registry}   charts: oci://{o.registry}/charts",
            f"  previous release tag: {self.previous_tag or '(none)'}",
            "",
            "0. Test gate: green records of "
            + (", ".join(o.records) or "(none)")
            + " for this tree; then "
            + ("; ".join(f"`{' '.join(c)}`" for c in o.gate) or "(nothing)")
            + " must pass on this commit",
            "1. Stamp versions",
        ]
        if self.file_changes:
            lines += [f"   - {c.describe(o.root)}" for c in self.file_changes]
            lines.append(f"   - git commit -m 'chore(release): {o.version.tag}'")
        else:
            lines.append("   - (all files already carry this version)")
        lines.append(f"2. Build ({o.builder}) and push images for {', '.join(o.platforms)}")
        for image in self.images:
            state = (
                f"already published as {image.published_digest}, skipped"
                if image.published_digest
                else "build, push manifest list"
            )
            lines.append(f"   - {image.reference}: {state}")
            lines += [f"       tag {change.describe()}" for change in image.tags]
        lines.append(f"3. Package and push charts to oci://{o.registry}/charts")
        for chart in self.charts:
            state = (
                f"already published as {chart.published_digest}, never overwritten"
                if chart.published_digest
                else "helm package, helm push"
            )
            lines.append(f"   - {chart.reference} (appVersion {chart.app_version}): {state}")
        if o.helm_key:
            lines.append(f"   - each signed by Helm (.prov) with GPG key {o.helm_key!r}")
        mode = f"key {o.cosign_key}" if o.cosign_key else "keyless (OIDC)"
        if o.sign:
            lines.append(f"4. Sign every image and chart by digest with cosign, {mode}; verify")
            lines.append("   - SLSA provenance attested to every index, platform image and chart")
        else:
            lines.append("4. Signing skipped (--no-sign)")
        if o.sbom:
            lines.append(
                "   - SBOMs (syft, SPDX and CycloneDX JSON) attested to each platform image"
            )
        if o.sign:
            lines.append("   - the OpenVEX document attested to every image")
        lines.append(f"5. Release notes from {self.previous_tag or 'the first commit'} to HEAD")
        if o.github_release:
            lines.append(
                f"6. GitHub release {o.version.tag} in {o.github_repo}, with the chart "
                "archives, install manifests, SBOMs, VEX and SHA256SUMS attached"
            )
        else:
            lines.append("6. GitHub release skipped (--skip-github-release)")
        if o.git_tag:
            lines.append(f"7. git tag {o.version.tag} (created last, when everything is published)")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def released_versions(registry: Registry, repo: str) -> set[Version]:
    """Versions already published to an image repository (from its tags)."""
    return parse_released(registry.tags(repo))


def build_plan(options: Options, registry: Registry, previous_tag: str | None) -> Plan:
    """Compute the plan from the work tree and the registry; changes nothing."""
    version = options.version
    changes = stamp_all(options.root, version, options.charts, write=False)
    images = []
    for name in IMAGE_NAMES:
        repo = options.repo_path(name)
        released = released_versions(registry, repo)
        published = registry.digest(repo, version.tag) if version in released else None
        images.append(
            ImagePlan(
                name=name,
                repository=f"{options.host}/{repo}",
                tags=release_tags(version, released),
                published_digest=published,
            )
        )
    charts = []
    for name in CHART_NAMES:
        current = read_chart(options.charts / name / "Chart.yaml")
        # After stamping, a chart carries the release version unless it was bumped alone.
        stamped = {c.field: c.new for c in changes if c.path.parent.name == name}
        chart_version = stamped.get("version", current.get("version", version.plain))
        app_version = stamped.get("appVersion", current.get("appVersion", version.plain))
        repo = options.repo_path(f"charts/{name}")
        metadata = registry.chart_metadata(repo, chart_version)
        charts.append(
            ChartPlan(
                name=name,
                version=chart_version,
                app_version=app_version,
                repository=f"{options.host}/{repo}",
                published_digest=registry.digest(repo, chart_version) if metadata else None,
                published_app_version=metadata.get("appVersion") if metadata else None,
            )
        )
    return Plan(options, changes, images, charts, previous_tag=previous_tag)
