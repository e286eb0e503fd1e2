"""The release pipeline end to end against a real local OCI registry: images (two
platforms), charts, tag fan-out, signatures, refusals and resuming."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from brokkr_dev.base.errors import AutomationError
from brokkr_dev.release import ReleaseError, attestations
from brokkr_dev.release.attestations import SPDX
from brokkr_dev.release.plan import Options
from brokkr_dev.release.registry import Registry
from brokkr_dev.release.run import chart_patch, prepare, release_chart
from brokkr_dev.release.version import parse
from tests.fixtures.release import commit, run

pytestmark = [pytest.mark.release, pytest.mark.slow]
IMAGES = ("brokkr/brokkr-broker", "brokkr/brokkr-agent")


def tag_digests(registry: Registry, repo: str) -> dict[str, str]:
    """Every human tag of a repository and the digest it points at (no .sig/.att)."""
    return {
        tag: registry.digest(repo, tag) or ""
        for tag in registry.tags(repo)
        if not tag.startswith("sha256-")
    }


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {tag for tag, digest in after.items() if before.get(tag) != digest}


def test_dry_run_prints_the_plan_and_changes_nothing(do_release, oci_registry, brokkr_repo):
    head = run("git", "rev-parse", "HEAD", cwd=brokkr_repo)
    log: list[str] = []
    assert do_release("v1.0.0", log=log, dry_run=True) is None
    plan = "\n".join(log)
    host = oci_registry.host
    for expected in (
        "Release plan for v1.0.0 -- DRY RUN",
        "pyproject.toml: [project] version 0.1.0 -> 1.0.0",
        "charts/brokkr-broker/Chart.yaml: appVersion 0.1.0 -> 1.0.0",
        f"{host}/brokkr/brokkr-agent:v1.0.0: build, push manifest list",
        "tag latest: create",
        f"oci://{host}/brokkr/charts/brokkr-broker:1.0.0 (appVersion 1.0.0)",
        "git tag v1.0.0",
        "dry run: preflight passed; nothing was changed",
    ):
        assert expected in plan
    assert run("git", "rev-parse", "HEAD", cwd=brokkr_repo) == head
    assert run("git", "status", "--porcelain", cwd=brokkr_repo) == ""
    assert requests.get(f"http://{host}/v2/_catalog", timeout=5).json()["repositories"] == []


def test_release_sequence_moves_exactly_the_right_tags(do_release, oci_registry, brokkr_repo):
    registry = Registry(oci_registry.host)
    expected = {
        "v1.0.0": {"v1.0.0", "v1.0", "v1", "latest"},
        "v1.0.1": {"v1.0.1", "v1.0", "v1", "latest"},
        "v1.1.0-rc.1": {"v1.1.0-rc.1"},
        "v1.1.0": {"v1.1.0", "v1.1", "v1", "latest"},
        "v1.0.2": {"v1.0.2", "v1.0"},
    }
    for version, tags in expected.items():
        commit(brokkr_repo, f"fix: change before {version}")
        before = {repo: tag_digests(registry, repo) for repo in IMAGES}
        outcome = do_release(version, sbom=False)  # SBOMs: see the platforms test
        assert outcome is not None
        for repo in IMAGES:
            after = tag_digests(registry, repo)
            # plus the plain alias X.Y.Z, the charts' default image tag
            assert changed(before[repo], after) == tags | {version[1:]}, (version, repo)
            # every tag written points at this release's manifest list
            assert {after[t] for t in tags} == {outcome.images[repo.split("/")[1]]}
        for name in ("brokkr-broker", "brokkr-agent"):
            assert registry.digest(f"brokkr/charts/{name}", version[1:]) == outcome.charts[name]
        assert run("git", "tag", "--points-at", "HEAD", cwd=brokkr_repo) == version

    # the final state, read back from the registry
    broker = tag_digests(registry, "brokkr/brokkr-broker")
    assert broker["latest"] == broker["v1"] == broker["v1.1"] == broker["v1.1.0"]
    assert broker["v1.0"] == broker["v1.0.2"] != broker["v1.0.1"]
    assert broker["1.1.0"] == broker["v1.1.0"]
    assert len(set(broker.values())) == 5  # five distinct releases


def test_manifest_list_has_both_platforms_and_signatures_verify(
    do_release, oci_registry, cosign_keys, release_tools
):
    outcome = do_release("v1.0.0")
    assert outcome is not None
    registry = Registry(oci_registry.host)
    index = registry.manifest("brokkr/brokkr-broker", "v1.0.0")
    assert index is not None
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in json.loads(index.body)["manifests"]
    }
    assert platforms == {"linux/amd64", "linux/arm64"}
    # an SBOM attestation for each platform image
    for digest in outcome.platforms["brokkr-broker"].values():
        assert SPDX in attestations.predicate_types(registry, "brokkr/brokkr-broker", digest)
    public = cosign_keys.with_suffix(".pub")
    refs = [f"{oci_registry.host}/brokkr/brokkr-broker@{outcome.images['brokkr-broker']}"]
    refs.append(f"{oci_registry.host}/brokkr/charts/brokkr-agent@{outcome.charts['brokkr-agent']}")
    flags = ["--allow-http-registry", "--allow-insecure-registry", "--insecure-ignore-tlog=true"]
    for ref in refs:
        verified = subprocess.run(
            [str(release_tools["cosign"]), "verify", "--key", str(public), *flags, ref],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert verified.returncode == 0, verified.stderr
    # a signature by another key does not verify
    other = cosign_keys.parent / "other"
    other.mkdir()
    subprocess.run(
        [str(release_tools["cosign"]), "generate-key-pair"],
        cwd=other,
        env={"COSIGN_PASSWORD": "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
        timeout=60,
    )
    rejected = subprocess.run(
        [
            str(release_tools["cosign"]),
            "verify",
            "--key",
            str(other / "cosign.pub"),
            *flags,
            refs[0],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rejected.returncode != 0


def test_rereleasing_a_version_is_refused(do_release, brokkr_repo):
    do_release("v1.0.0", sbom=False)
    with pytest.raises(ReleaseError, match=r"v1\.0\.0 is already released"):
        do_release("v1.0.0", sbom=False)
    commit(brokkr_repo, "feat: something new")
    with pytest.raises(ReleaseError, match=r"git tag v1\.0\.0 points at"):
        do_release("v1.0.0", sbom=False)


def test_dirty_tree_is_refused(do_release, brokkr_repo, oci_registry):
    (brokkr_repo / "pyproject.toml").write_text(
        (brokkr_repo / "pyproject.toml").read_text() + "# local edit\n"
    )
    (brokkr_repo / "scratch.txt").write_text("untracked\n")
    with pytest.raises(ReleaseError, match="uncommitted changes") as info:
        do_release("v1.0.0")
    assert "pyproject.toml" in str(info.value)
    assert "scratch.txt" in str(info.value)
    assert (
        requests.get(f"http://{oci_registry.host}/v2/_catalog", timeout=5).json()["repositories"]
        == []
    )


def test_interrupted_release_completes_on_rerun(do_release, oci_registry, tiny_images, brokkr_repo):
    def drop_registry(step: str) -> None:
        if step == "images":
            oci_registry.stop()  # the registry goes away right after the image push

    # the registry's own error or the failed push's: both say how to resume
    with pytest.raises(AutomationError, match="re-run"):
        do_release("v1.0.0", after_step=drop_registry, sign=False, sbom=False)
    assert tiny_images.builds == 2
    assert run("git", "tag", "--list", cwd=brokkr_repo) == ""
    oci_registry.start()
    registry = Registry(oci_registry.host)
    pushed = registry.digest("brokkr/brokkr-broker", "v1.0.0")
    assert pushed is not None
    assert registry.tags("brokkr/charts/brokkr-broker") == set()

    log: list[str] = []
    outcome = do_release("v1.0.0", log=log, sign=False, sbom=False)
    assert outcome is not None
    assert tiny_images.builds == 2  # nothing rebuilt or re-pushed
    assert outcome.images["brokkr-broker"] == pushed
    assert any("already published" in line for line in log)
    assert (
        registry.digest("brokkr/charts/brokkr-broker", "1.0.0") == outcome.charts["brokkr-broker"]
    )
    assert set(tag_digests(registry, "brokkr/brokkr-broker")) == {
        "v1.0.0",
        "1.0.0",
        "v1.0",
        "v1",
        "latest",
    }
    assert run("git", "tag", "--list", cwd=brokkr_repo) == "v1.0.0"


def test_chart_only_fix_keeps_app_version_and_never_overwrites(
    do_release, oci_registry, brokkr_repo, cosign_keys, test_env
):
    do_release("v1.0.0", sbom=False)
    registry = Registry(oci_registry.host)
    chart_patch(brokkr_repo, "brokkr-broker", log=lambda _m: None)
    run("git", "commit", "-qam", "fix(chart): probe timeout", cwd=brokkr_repo)
    settings = {
        "root": brokkr_repo,
        "cosign_key": str(cosign_keys),
        "env": test_env,
        "log": lambda _m: None,
    }
    outcome = release_chart("brokkr-broker", f"{oci_registry.host}/brokkr", **settings)
    metadata = registry.chart_metadata("brokkr/charts/brokkr-broker", "1.0.1")
    assert metadata is not None
    assert (metadata["version"], metadata["appVersion"]) == ("1.0.1", "1.0.0")
    assert (
        registry.digest("brokkr/charts/brokkr-broker", "1.0.1") == outcome.charts["brokkr-broker"]
    )
    # the 1.0.0 chart is untouched, and 1.0.1 is never pushed again
    assert registry.chart_metadata("brokkr/charts/brokkr-broker", "1.0.0")["appVersion"] == "1.0.0"
    with pytest.raises(ReleaseError, match="already published and is never overwritten"):
        release_chart("brokkr-broker", f"{oci_registry.host}/brokkr", **settings)
    # an app release v1.0.1 would need chart 1.0.1 again: refused, with the way out
    with pytest.raises(ReleaseError, match=r"brokkr-broker 1\.0\.1 is already published"):
        do_release("v1.0.1", sbom=False)
    assert do_release("v1.0.2", sbom=False) is not None


def test_chart_whose_default_image_tag_is_not_published_is_refused_before_any_push(
    do_release, oci_registry, brokkr_repo
):
    deployment = brokkr_repo / "charts" / "brokkr-agent" / "templates" / "deployment.yaml"
    # a default tag that no release publishes
    deployment.write_text(
        deployment.read_text().replace('(printf "v%s" $.Chart.AppVersion)', '"edge"')
    )
    run("git", "commit", "-qam", "chore: untagged default", cwd=brokkr_repo)
    with pytest.raises(ReleaseError) as info:
        do_release("v1.0.0", sbom=False)
    message = str(info.value)
    assert "chart brokkr-agent: it deploys" in message
    assert "brokkr-agent:edge by default, but tag 'edge' is not published" in message
    assert (
        requests.get(f"http://{oci_registry.host}/v2/_catalog", timeout=5).json()["repositories"]
        == []
    )


def test_crash_after_signing_resumes_without_signing_twice(do_release, oci_registry, brokkr_repo):
    class Crash(Exception):
        pass

    def crash(step: str) -> None:
        if step == "sign":
            raise Crash(step)

    with pytest.raises(Crash):
        do_release("v1.0.0", sbom=False, after_step=crash)
    registry = Registry(oci_registry.host)
    digest = registry.digest("brokkr/brokkr-agent", "v1.0.0")
    assert digest is not None

    def signatures() -> list[str]:
        # cosign v3 adds one referrer manifest (a bundle) per signature: re-signing shows
        found = attestations.bundles(registry, "brokkr/brokkr-agent", digest)
        return [b.manifest for b in found if b.predicate_type == attestations.SIGNATURE]

    signed_once = signatures()
    assert len(signed_once) == 1
    log: list[str] = []
    outcome = do_release("v1.0.0", log=log, sbom=False)
    assert outcome is not None
    assert signatures() == signed_once
    assert any("already signed" in line for line in log)
    notes = outcome.notes_path.read_text()
    assert f"`{oci_registry.host}/brokkr/brokkr-agent:v1.0.0` `{digest}`" in notes
    assert "cosign verify-attestation --type https://sigstore.dev/cosign/sign/v1 --key" in notes


def test_prepare_then_ci_publishes_the_tagged_commit(do_release, oci_registry, brokkr_repo):
    options = Options(
        version=parse("v1.0.0"), root=brokkr_repo, registry=f"{oci_registry.host}/brokkr"
    )
    prepare(options, log=lambda _m: None)
    assert run("git", "tag", "--points-at", "HEAD", cwd=brokkr_repo) == "v1.0.0"
    assert run("git", "log", "-1", "--format=%s", cwd=brokkr_repo) == "chore(release): v1.0.0"
    assert 'version = "1.0.0"' in (brokkr_repo / "pyproject.toml").read_text()
    with pytest.raises(ReleaseError, match="git tag v1.0.0 already exists"):
        prepare(options, log=lambda _m: None)
    # what the tag-triggered workflow runs: HEAD is the tag, nothing left to stamp
    head = run("git", "rev-parse", "HEAD", cwd=brokkr_repo)
    assert do_release("v1.0.0", sbom=False) is not None
    assert run("git", "rev-parse", "HEAD", cwd=brokkr_repo) == head
    with pytest.raises(ReleaseError, match=r"v1\.0\.0 is already released"):
        do_release("v1.0.0", sbom=False)


def test_tag_on_an_unstamped_commit_is_refused(do_release, brokkr_repo):
    run("git", "tag", "-a", "v2.0.0", "-m", "made by hand", cwd=brokkr_repo)
    with pytest.raises(
        ReleaseError, match=r"HEAD is tagged v2\.0\.0 but its files do not carry 2\.0\.0"
    ):
        do_release("v2.0.0", sbom=False)
