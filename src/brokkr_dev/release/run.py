"""Entry points behind `nox -s release` and `nox -s publish-dev`: wire the steps."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from brokkr_dev.base import git, paths, toolchain
from brokkr_dev.base.log import Log
from brokkr_dev.containers.podman import podman as podman_command
from brokkr_dev.release import ReleaseError, preflight, provenance
from brokkr_dev.release import testgate as gate
from brokkr_dev.release.github import API, GitHub
from brokkr_dev.release.notify import Notifier
from brokkr_dev.release.pipeline import (
    PROVENANCE_TOOLS,
    ImageBuilder,
    Outcome,
    Pipeline,
    images_builder,
)
from brokkr_dev.release.plan import IMAGE_NAMES, ChartPlan, Options, Plan, build_plan
from brokkr_dev.release.registry import (
    Registry,
    UnreachableRegistry,
    is_loopback,
    split_reference,
)
from brokkr_dev.release.signing import Signer
from brokkr_dev.release.stamp import CHART_NAMES, bump_chart_patch, read_chart, stamp_all
from brokkr_dev.release.tags import dev_tags
from brokkr_dev.release.version import parse, previous_release


def registry_for(options: Options, env: Mapping[str, str]) -> Registry:
    return Registry(options.host, *credentials(env))


def credentials(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Registry user and password: REGISTRY_* first, else the Actions token."""
    if env.get("REGISTRY_USERNAME") and env.get("REGISTRY_PASSWORD"):
        return env["REGISTRY_USERNAME"], env["REGISTRY_PASSWORD"]
    if env.get("GITHUB_TOKEN"):
        return env.get("GITHUB_ACTOR", "github-actions"), env["GITHUB_TOKEN"]
    return None, None


def make_plan(options: Options, registry: Registry) -> Plan:
    previous = previous_release(options.root, options.version)
    return build_plan(options, registry, previous.tag if previous else None)


def login(
    host: str,
    env: Mapping[str, str],
    podman: Sequence[str],
    helm: str | None = None,
    cosign: str | None = None,
) -> None:
    """Log podman (and helm, cosign) in to a remote registry; the password goes via stdin."""
    user, password = credentials(env)
    if is_loopback(host) or not user or not password:
        return
    commands = [[*podman, "login", "--username", user, "--password-stdin", host]]
    if helm:
        commands.append([helm, "registry", "login", "--username", user, "--password-stdin", host])
    if cosign:
        commands.append([cosign, "login", host, "--username", user, "--password-stdin"])
    for command in commands:
        result = subprocess.run(
            command, input=password, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise ReleaseError(f"`{' '.join(command[:3])}` failed: {result.stderr.strip()[-300:]}")


def make_signer(
    options: Options, env: Mapping[str, str], cosign: str | None, bin_dir: Path
) -> Signer | None:
    """cosign with a key, or keyless with the identity of this repository's release workflow."""
    if not options.sign or not cosign:
        return None
    identity = None
    if not options.cosign_key:
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        ref = env.get("GITHUB_REF", f"refs/tags/{options.version.tag}")
        identity = f"{server}/{options.github_repo}/.github/workflows/release.yml@{ref}"
    return Signer(
        cosign=cosign,
        syft=preflight.find_tool("syft", bin_dir),
        key=options.cosign_key,
        identity=identity,
    )


def provenance_builder(env: Mapping[str, str], bin_dir: Path) -> provenance.Builder:
    """Who runs this release, with the pinned publishing tools in bin/ by digest."""
    tools = toolchain.load_manifest()
    names = [
        name
        for name in (*PROVENANCE_TOOLS, "buildx")
        if name in tools and (bin_dir / tools[name].binary).exists()
    ]
    return provenance.Builder.from_env(env, provenance.tool_materials(names, bin_dir))


def release(
    options: Options,
    *,
    env: Mapping[str, str] | None = None,
    log: Log = print,
    builder: ImageBuilder | None = None,
    podman: Sequence[str] | None = None,
    bin_dir: Path = paths.BIN_DIR,
    after_step: Callable[[str], None] | None = None,
) -> Outcome | None:
    """Plan, check, run the test gate and (unless a dry run) publish; returns what was
    published.

    Raises ReleaseError listing every preflight problem when the release must not run,
    or naming the failing check of the gate. A real run reports its end (published or
    failed) to the webhook in BROKKR_RELEASE_WEBHOOK_URL, if set.
    """
    environment = dict(os.environ if env is None else env)
    notifier = Notifier.from_env({} if options.dry_run else environment, log)
    plan = Plan(options, [], [], [])  # what a failure before planning can report
    pipeline: Pipeline | None = None
    try:
        plan, registry = checked_plan(options, environment, log, bin_dir)
        if options.dry_run:
            log("dry run: preflight passed; nothing was changed")
            return None
        gate.require_records(options.root, options.records)
        gate.run_checks(options.root, options.gate, environment, log)
        helm = preflight.find_tool("helm", bin_dir) or "helm"
        # also without signing: the air-gap bundles are made with `cosign save`
        cosign = preflight.find_tool("cosign", bin_dir)
        podman_cmd = list(podman) if podman is not None else podman_command()
        login(options.host, environment, podman_cmd, helm, cosign)
        github = None
        if options.github_release:
            github = GitHub(
                options.github_repo,
                environment.get("GITHUB_TOKEN", ""),
                environment.get("GITHUB_API_URL", API),
            )
        pipeline = Pipeline(
            plan,
            registry,
            builder=builder,
            podman=podman_cmd,
            helm=helm,
            cosign=cosign or "cosign",
            signer=make_signer(options, environment, cosign, bin_dir),
            github=github,
            log=log,
            after_step=after_step,
            provenance_builder=provenance_builder(environment, bin_dir),
        )
        outcome = pipeline.run()
    except Exception as exc:
        notifier.failed(plan, pipeline.outcome if pipeline else None, str(exc) or repr(exc))
        raise
    notifier.completed(plan, outcome)
    return outcome


def checked_plan(
    options: Options, environment: Mapping[str, str], log: Log, bin_dir: Path
) -> tuple[Plan, Registry]:
    """The plan (printed) and the registry, or ReleaseError with every preflight problem."""
    registry = registry_for(options, environment)
    unreachable = None
    try:
        registry.ping()
    except ReleaseError as exc:
        if not options.dry_run:
            raise
        unreachable = str(exc)
        registry = UnreachableRegistry(options.host, unreachable)
    plan = make_plan(options, registry)
    if unreachable:
        plan.notes.append(f"{unreachable}: this plan assumes nothing is published yet")
    log(plan.render())
    problems = preflight.run(options, plan, environment, bin_dir=bin_dir, registry=registry)
    if unreachable:
        problems.append(unreachable)
    if problems:
        raise ReleaseError(
            "refusing to release "
            + options.version.tag
            + ":\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return plan, registry


def prepare(options: Options, log: Log = print) -> None:
    """Stamp the versions, commit and tag locally; pushing the tag starts CI's release."""
    root, version = options.root, options.version
    problems = preflight.check_tree(options) + preflight.check_versions(options)
    if git.tag_commit(root, version.tag):
        problems.append(f"git tag {version.tag} already exists; choose the next version")
    if problems:
        raise ReleaseError(
            "refusing to prepare " + version.tag + ":\n" + "\n".join(f"  - {p}" for p in problems)
        )
    changes = stamp_all(root, version, options.charts, write=not options.dry_run)
    for change in changes:
        log(("would stamp: " if options.dry_run else "stamp: ") + change.describe(root))
    if options.dry_run:
        log(f"would commit 'chore(release): {version.tag}' and tag {version.tag}")
        return
    if changes:
        git.git(root, "add", *sorted({str(c.path) for c in changes}))
        git.git(root, "commit", "-q", "-m", f"chore(release): {version.tag}")
    git.git(root, "tag", "-a", version.tag, "-m", f"Brokkr {version.tag}")
    log(f"tagged {version.tag}; publish with: git push origin HEAD {version.tag}")


def publish_dev(
    registry_ref: str,
    *,
    root: Path = paths.REPO_ROOT,
    env: Mapping[str, str] | None = None,
    log: Log = print,
    builder: ImageBuilder | None = None,
    podman: Sequence[str] | None = None,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
    builder_name: str = "auto",
) -> dict[str, str]:
    """Push a development build as `sha-<7 hex>` and the branch tag; returns digests."""
    builder = builder or images_builder(builder_name)
    environment = dict(os.environ if env is None else env)
    # Actions checks tags out detached; GITHUB_REF_NAME still names the branch.
    branch = git.branch(root) or environment.get("GITHUB_REF_NAME")
    tags = dev_tags(git.head(root), branch)
    host, prefix = split_reference(registry_ref)
    registry = Registry(host, *credentials(environment))
    registry.ping()
    podman_cmd = list(podman) if podman is not None else podman_command()
    login(host, environment, podman_cmd)
    digests = {}
    for name in IMAGE_NAMES:
        repo = f"{prefix}/{name}"
        local = builder(name, platforms)
        target = f"{host}/{repo}:{tags[0]}"
        tls = ["--tls-verify=false"] if is_loopback(host) else []
        result = subprocess.run(
            [*podman_cmd, "manifest", "push", "--all", *tls, local, f"docker://{target}"],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if result.returncode != 0:
            raise ReleaseError(f"push {target} failed: {result.stderr.strip()[-500:]}")
        digest = registry.digest(repo, tags[0])
        if digest is None:
            raise ReleaseError(f"{target} is not in the registry after the push")
        for tag in tags[1:]:
            registry.copy_tag(repo, digest, tag)
        digests[name] = digest
        log(f"dev build: {host}/{repo}:{{{','.join(tags)}}} -> {digest}")
    return digests


def chart_patch(root: Path, chart: str, log: Log = print) -> None:
    """Bump one chart's patch version for a chart-only fix (appVersion unchanged)."""
    if chart not in CHART_NAMES:
        raise ReleaseError(f"unknown chart {chart!r}; choose from {', '.join(CHART_NAMES)}")
    for change in bump_chart_patch(root / "charts" / chart, write=True):
        log(f"{change.describe(root)}; commit it, then run `invoke release.chart --chart {chart}`")


def release_chart(
    chart: str,
    registry_ref: str,
    *,
    root: Path = paths.REPO_ROOT,
    cosign_key: str | None = None,
    sign: bool = True,
    helm_key: str | None = None,
    helm_keyring: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = print,
    bin_dir: Path = paths.BIN_DIR,
) -> Outcome:
    """Publish one chart at its current version (a chart-only fix) and sign it (cosign;
    also Helm's .prov with helm_key and helm_keyring).

    The chart's appVersion must be an already released version whose images exist;
    a chart version that is already published is refused, never overwritten.
    """
    environment = dict(os.environ if env is None else env)
    if chart not in CHART_NAMES:
        raise ReleaseError(f"unknown chart {chart!r}; choose from {', '.join(CHART_NAMES)}")
    fields = read_chart(root / "charts" / chart / "Chart.yaml")
    options = Options(
        version=parse("v" + fields.get("appVersion", "")),
        registry=registry_ref,
        root=root,
        cosign_key=cosign_key,
        sign=sign,
        sbom=False,
        helm_key=helm_key,
        helm_keyring=helm_keyring,
        github_release=False,
        git_tag=False,
    )
    registry = registry_for(options, environment)
    registry.ping()
    repo = options.repo_path(f"charts/{chart}")
    target = ChartPlan(chart, fields["version"], fields["appVersion"], f"{options.host}/{repo}")
    problems = preflight.check_tree(options) + preflight.check_tools(
        replace(options, sbom=False), bin_dir
    )
    problems += preflight.check_helm_key(options)
    if options.sign:
        problems += preflight.check_credentials(options, environment)
    if registry.digest(repo, target.version):
        problems.append(
            f"chart {chart} {target.version} is already published and is never overwritten; "
            f"bump it with `invoke release.chart-patch --chart {chart}` and commit"
        )
    if problems:
        raise ReleaseError(
            f"refusing to publish chart {chart} {target.version}:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    cosign = preflight.find_tool("cosign", bin_dir) if options.sign else None
    helm = preflight.find_tool("helm", bin_dir) or "helm"
    login(options.host, environment, podman_command(), helm, cosign)
    signer = make_signer(options, environment, cosign, bin_dir)
    plan = Plan(options, [], [], [target])
    pipeline = Pipeline(
        plan,
        registry,
        helm=helm,
        signer=signer,
        log=log,
        provenance_builder=provenance_builder(environment, bin_dir),
    )
    return pipeline.run(("charts", "sign", "provenance"))
