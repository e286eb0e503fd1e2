"""Checks that must pass before a release changes anything; each failure says why
and how to fix it. All checks run, so the maintainer sees every problem at once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from brokkr_dev.base import git, paths
from brokkr_dev.release import ReleaseError, chart_images
from brokkr_dev.release.plan import Options, Plan
from brokkr_dev.release.registry import Registry, is_loopback
from brokkr_dev.release.stamp import read_chart, read_project_version


def find_tool(name: str, bin_dir: Path = paths.BIN_DIR) -> str | None:
    """The tool from the project's bin/ (pinned) or else from PATH."""
    local = bin_dir / name
    return str(local) if local.exists() else shutil.which(name)


def required_tools(options: Options) -> list[str]:
    # cosign even without signing: the air-gap bundles are made with `cosign save`
    needed = ["git", "podman", "helm", "cosign"]
    if options.sbom:
        needed.append("syft")
    return needed


def check_tools(options: Options, bin_dir: Path = paths.BIN_DIR) -> list[str]:
    return [
        f"`{name}` is not installed: run `nox -s tools -- {name}` "
        "(or `invoke system.install` for git/podman)"
        for name in required_tools(options)
        if find_tool(name, bin_dir) is None
    ]


def check_helm_key(options: Options) -> list[str]:
    """Helm's chart signing needs both the key's name and the secret keyring."""
    if bool(options.helm_key) != bool(options.helm_keyring):
        return [
            "Helm chart signing needs both --helm-key NAME and --helm-keyring FILE (the "
            "secret keyring, e.g. `gpg --export-secret-keys NAME > secring.gpg`)"
        ]
    if options.helm_keyring and not Path(options.helm_keyring).is_file():
        return [
            f"Helm keyring {options.helm_keyring} does not exist; export it with "
            "`gpg --export-secret-keys NAME > secring.gpg`"
        ]
    return []


def check_credentials(options: Options, env: Mapping[str, str]) -> list[str]:
    problems = []
    if not is_loopback(options.host) and not (
        (env.get("REGISTRY_USERNAME") and env.get("REGISTRY_PASSWORD")) or env.get("GITHUB_TOKEN")
    ):
        problems.append(
            f"no credentials for {options.host}: set REGISTRY_USERNAME and REGISTRY_PASSWORD "
            "(for ghcr.io: your GitHub user and a token with write:packages), or GITHUB_TOKEN in CI"
        )
    if options.sign:
        if options.cosign_key:
            if not Path(options.cosign_key).is_file():
                problems.append(
                    f"cosign key {options.cosign_key} does not exist; create one with "
                    "`cosign generate-key-pair` or omit --cosign-key for keyless signing in CI"
                )
            if "COSIGN_PASSWORD" not in env:
                problems.append("set COSIGN_PASSWORD (may be empty) to unlock the cosign key")
        elif not env.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
            problems.append(
                "keyless signing needs a GitHub Actions OIDC token (permission id-token: write); "
                "outside Actions pass --cosign-key cosign.key, or --no-sign for a test registry"
            )
    problems += check_helm_key(options)
    if options.github_release and not env.get("GITHUB_TOKEN"):
        problems.append(
            "GITHUB_TOKEN is not set, so the GitHub release cannot be created; set it "
            "(a token with contents: write) or pass --skip-github-release"
        )
    return problems


def check_tree(options: Options) -> list[str]:
    dirty = git.dirty_paths(options.root)
    if not dirty:
        return []
    shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
    return [
        f"the work tree has uncommitted changes ({shown}); a release must be built from a "
        "commit: commit or stash them (`git stash -u`), then re-run"
    ]


def check_versions(options: Options) -> list[str]:
    """Unparseable files are problems; disagreeing versions are simply stamped."""
    problems = []
    try:
        read_project_version(options.root / "pyproject.toml")
        for chart in sorted(options.charts.glob("*/Chart.yaml")):
            read_chart(chart)
    except ReleaseError as exc:
        problems.append(str(exc))
    return problems


def check_not_released(options: Options, plan: Plan) -> list[str]:
    """Refuse a release that already exists; allow resuming an unfinished one."""
    version = options.version
    problems = []
    tagged = git.tag_commit(options.root, version.tag)
    head = git.head(options.root)
    if tagged and tagged != head:
        problems.append(
            f"{version.tag} is already released: git tag {version.tag} points at {tagged[:12]}, "
            f"not at HEAD ({head[:12]}); choose the next version"
        )
    if tagged == head and plan.file_changes:
        problems.append(
            f"HEAD is tagged {version.tag} but its files do not carry {version.plain} "
            f"({plan.file_changes[0].describe(options.root)}); delete the tag, run "
            f"`nox -s release -- {version.tag}` locally to stamp and tag, and push both"
        )
    for chart in plan.charts:
        if chart.published_digest and chart.published_app_version != chart.app_version:
            problems.append(
                f"chart {chart.name} {chart.version} is already published (appVersion "
                f"{chart.published_app_version}, not {chart.app_version}) and a published chart "
                "is never overwritten; release the next version instead"
            )
    complete = all(i.published_digest for i in plan.images) and all(
        c.published_digest for c in plan.charts
    )
    if complete and (tagged or not options.git_tag):
        problems.append(
            f"{version.tag} is already released: every image and chart is in {options.registry}"
            + (f" and git tag {version.tag} exists" if tagged else "")
            + "; choose the next version"
        )
    return problems


def check_chart_images(
    options: Options, plan: Plan, registry: Registry, helm: str | None
) -> list[str]:
    """Each chart's default Brokkr image tag must be one that is published."""
    if helm is None:
        return []  # reported by check_tools
    published = {(i.name, c.tag) for i in plan.images for c in i.tags}
    prefix = options.registry.split("/", 1)[1]
    problems = []
    for chart in plan.charts:
        try:
            problems += chart_images.check_stamped(
                helm,
                options.charts / chart.name,
                options.version,
                published,
                lambda name, tag: registry.digest(f"{prefix}/{name}", tag) is not None,
            )
        except ReleaseError as exc:
            problems.append(str(exc))
    return problems


def run(
    options: Options,
    plan: Plan,
    env: Mapping[str, str] | None = None,
    bin_dir: Path = paths.BIN_DIR,
    registry: Registry | None = None,
) -> list[str]:
    """Every problem that stops this release (an empty list means go)."""
    environment = os.environ if env is None else env
    return [
        *check_tools(options, bin_dir),
        *check_credentials(options, environment),
        *check_tree(options),
        *check_versions(options),
        *check_not_released(options, plan),
        *(
            check_chart_images(options, plan, registry, find_tool("helm", bin_dir))
            if registry
            else []
        ),
    ]
