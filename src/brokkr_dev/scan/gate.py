"""The scan runs behind `nox -s scan` and `nox -s lint`: collect results, judge, report."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from brokkr_dev.base import paths, toolchain
from brokkr_dev.base.log import Log
from brokkr_dev.charts import lint as charts
from brokkr_dev.containers import images as image_build
from brokkr_dev.scan import checkov, debian, govulns, pypi, render, trivy
from brokkr_dev.scan import image_scan as images
from brokkr_dev.scan.model import ScanError, Status, TargetResult, format_table
from brokkr_dev.scan.policy import Mode, Policy, Verdict, judge, load_accepted, load_policy

DOCKER_DIR = paths.REPO_ROOT / "docker"
WORK_DIR = paths.REPO_ROOT / "build" / "scan"
CONFIG_SCANNERS = ("trivy", "checkov")
# The vulnerability data sources (table scanner names) that can be "not scanned".
SOURCE_SCANNERS = (trivy.VULN_SCANNER, debian.SCANNER, pypi.SCANNER, govulns.SCANNER)


def mode_from(value: str) -> Mode:
    """The scan mode: given, else `ci` under CI (the CI variable), else `local`."""
    if not value:
        return Mode.CI if os.environ.get("CI") else Mode.LOCAL
    try:
        return Mode(value)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ScanError(f"unknown scan mode {value!r}; choose one of {choices}") from None


def dockerfiles(directory: Path) -> list[Path]:
    """The Dockerfiles to scan in a directory and below (docker/postgresql/ too)."""
    return sorted([*directory.rglob("Dockerfile"), *directory.rglob("*.Dockerfile")])


def stage(
    docker_dir: Path, charts_dir: Path, root: Path, helm: str
) -> tuple[list[str], list[TargetResult]]:
    """Copy the Dockerfiles and render the charts under root; (target names, render errors)."""
    if root.exists():
        shutil.rmtree(root)
    (root / "docker").mkdir(parents=True)
    targets = []
    for dockerfile in dockerfiles(docker_dir):
        relative = dockerfile.relative_to(docker_dir)
        (root / "docker" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dockerfile, root / "docker" / relative)
        targets.append(f"docker/{relative}")
    if not targets:
        raise ScanError(f"no Dockerfile in {docker_dir}: nothing to scan there")
    errors = []
    for rendering in render.render_all(root / "charts", charts.find_charts(charts_dir), helm=helm):
        if rendering.path is None:
            errors.append(TargetResult("helm", rendering.target, problem=rendering.problem))
        else:
            targets.append(rendering.target)
    return targets, errors


def target_name(relative: str) -> str:
    """A staged file's target name: docker/Dockerfile, brokkr-agent/minimal."""
    path = relative.lstrip("/")
    if path.startswith("charts/"):
        return path.removeprefix("charts/").removesuffix(".yaml")
    return path


def config_results(
    *,
    docker_dir: Path = DOCKER_DIR,
    charts_dir: Path = charts.CHARTS_DIR,
    scanners: Sequence[str] = CONFIG_SCANNERS,
    workdir: Path = WORK_DIR,
    unrated: str = "HIGH",
    trusted_registries: tuple[str, ...] = (),
    helm: str = "helm",
    log: Log = print,
) -> list[TargetResult]:
    """trivy config and Checkov on the Dockerfiles and every chart rendering.

    Every staged target gets a result from every scanner; a target a scanner did
    not report on shows zero checks, which fails the gate.
    """
    unknown = sorted(set(scanners) - set(CONFIG_SCANNERS))
    if unknown:
        raise ScanError(f"unknown config scanner(s) {unknown}; choose from {CONFIG_SCANNERS}")
    root = workdir / "config"
    targets, results = stage(docker_dir, charts_dir, root, helm)
    for scanner in scanners:
        started = time.monotonic()
        if scanner == "trivy":
            found = trivy.config_scan(
                root, workdir / "trivy-cache", target_name, trusted_registries
            )
            name = trivy.SCANNER
        else:
            found = checkov.scan(root, ["dockerfile", "kubernetes"], unrated, target_name)
            name = checkov.SCANNER
        log(f"{name}: {len(targets)} targets in {time.monotonic() - started:.1f} s")
        by_target = {r.target: r for r in found}
        results += [by_target.get(t) or TargetResult(name, t) for t in targets]
        results += [r for r in found if r.target not in targets]
    return results


def go_tool_binaries(
    bin_dir: Path = paths.BIN_DIR, manifest: Path = paths.TOOLS_MANIFEST
) -> dict[str, govulns.GoBinary]:
    """Every Go-built tool of tools.toml (with its companions) -> its binary and role.

    bin/ when linked there, else the machine's tool cache; a tool built nowhere is
    reported "not scanned" by the Go scan. Every Go tool must declare its role, so
    that no tool becomes test infrastructure by omission. A tool never linked into bin/
    (bin_link = false: the kind node's Kubernetes, one entry per minor) is found in its
    cache only and named `<binary> (<entry>)`, since other entries build the same names.
    Such an entry is also optional: a minor this machine never built is listed as "not
    built here" (nothing here can run it) instead of failing as "not scanned".
    """
    binaries = {}
    for tool in toolchain.load_manifest(manifest).values():
        if not (tool.go_module or tool.go_dir):
            continue
        if tool.role is None:
            raise ScanError(
                f'tools.toml [{tool.name}] has no role: add role = "publish" if a release '
                'builds, signs or uploads anything with it, else role = "test"'
            )
        for name in (tool.binary, *tool.companions):
            linked = bin_dir / name
            cached = toolchain.cache_root(tool) / "bin" / name
            path = linked if linked.exists() and tool.bin_link else cached
            target = name if tool.bin_link else f"{name} ({tool.name})"
            test_only = tool.role == "test"
            optional = test_only and tool.on_demand and not tool.bin_link
            binaries[target] = govulns.GoBinary(path, test_only=test_only, optional=optional)
    return binaries


def source_results(unrated: str, workdir: Path = WORK_DIR) -> list[TargetResult]:
    """Vulnerability sources that need no image: PyPI for the pins, govulncheck for Go tools."""
    requirements = image_build.REQUIREMENTS
    results = [pypi.scan(requirements, "docker/requirements.txt", unrated)]
    results += govulns.scan_binaries(go_tool_binaries(), unrated, workdir=workdir)
    return results


def image_results(tag: str, workdir: Path, policy: Policy, log: Log) -> list[TargetResult]:
    """Every image scan for every per-architecture image of this revision."""
    results = []
    for (target, arch), reference in images.references(tag).items():
        started = time.monotonic()
        name = f"brokkr-{target}/{arch}"
        results += images.scan_image(
            reference, name, arch, workdir / "images" / f"{target}-{arch}", policy
        )
        log(f"{name}: image scans in {time.monotonic() - started:.1f} s")
    return results


def run(
    *,
    config: bool = True,
    sources: bool = False,
    image_scans: bool = False,
    mode: Mode = Mode.LOCAL,
    scanners: Sequence[str] = CONFIG_SCANNERS,
    docker_dir: Path = DOCKER_DIR,
    charts_dir: Path = charts.CHARTS_DIR,
    tag: str = "",
    workdir: Path = WORK_DIR,
    tolerate_not_scanned: Sequence[str] = (),
    log: Log = print,
) -> Verdict:
    """Run the selected scans, print the table, and return the verdict.

    tolerate_not_scanned: vulnerability sources (scanner names) whose absence is a
    warning in ci mode, for a CI site that cannot reach them (.ci/run: trivy-vuln).
    """
    unknown = sorted(set(tolerate_not_scanned) - set(SOURCE_SCANNERS))
    if unknown:
        raise ScanError(
            f"cannot tolerate {unknown}: not a vulnerability source; choose from "
            f"{', '.join(SOURCE_SCANNERS)}"
        )
    if tolerate_not_scanned and mode is Mode.RELEASE:
        raise ScanError("release mode tolerates no missing vulnerability source (docs/security.md)")
    policy = load_policy()
    accepted = load_accepted()
    results: list[TargetResult] = []
    if config:
        results += config_results(
            docker_dir=docker_dir,
            charts_dir=charts_dir,
            scanners=scanners,
            workdir=workdir,
            unrated=policy.unrated_severity,
            trusted_registries=policy.trusted_registries,
            log=log,
        )
    if sources:
        results += source_results(policy.unrated_severity, workdir)
    if image_scans:
        results += image_results(tag, workdir, policy, log)
    verdict = judge(results, policy, accepted, mode, tolerated=frozenset(tolerate_not_scanned))
    report = write_report(verdict, mode, workdir / "report.json")
    log(format_table(verdict.results, policy.fail_on))
    for warning in verdict.warnings:
        log(f"warning: {warning}")
    not_scanned = sum(1 for r in verdict.results if r.status is Status.NOT_SCANNED)
    by_policy = sum(r.by_policy for r in verdict.results)
    log(
        f"mode {mode.value}: {len(verdict.results)} results, {not_scanned} not scanned, "
        f"{by_policy} findings in test infrastructure accepted by policy, "
        f"{len(verdict.failures)} failures (threshold {policy.fail_on}); every finding: {report}"
    )
    return verdict


def write_report(verdict: Verdict, mode: Mode, path: Path) -> Path:
    """Every result and every finding, accepted or not, as JSON (build/scan/report.json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "mode": mode.value,
        "failures": verdict.failures,
        "warnings": verdict.warnings,
        "results": [
            {
                "scanner": r.scanner,
                "target": r.target,
                "status": r.status.value if r.status else None,
                "checks": r.checks,
                "test_only": r.test_only,
                "problem": r.problem,
                "findings": [dataclasses.asdict(f) for f in r.findings],
            }
            for r in verdict.results
        ],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path
