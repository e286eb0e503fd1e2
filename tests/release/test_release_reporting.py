"""What surrounds publishing, end to end with the real pipeline and a real registry:
the test gate, the GitHub release's assets (local GitHub stand-in) and the webhook
notification (local receiver)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys

import pytest
import requests

from brokkr_dev.base import green, paths
from brokkr_dev.release import ReleaseError, attestations
from brokkr_dev.release.registry import Registry
from tests.fixtures.http import GITHUB_TOKEN
from tests.fixtures.release import run

pytestmark = [pytest.mark.release, pytest.mark.slow]
# What the gate runs in the test repository: its unit tests, without third-party plugins.
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
HOOK_PATH = "/hooks/brokkr-release-not-a-real-secret"


def catalog(host: str) -> list[str]:
    return requests.get(f"http://{host}/v2/_catalog", timeout=5).json()["repositories"]


def add_unit_test(repo, body: str, message: str) -> None:
    (repo / "tests").mkdir(exist_ok=True)
    (repo / "tests" / "test_unit.py").write_text(body)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", message, cwd=repo)


def test_a_commit_whose_unit_tests_fail_is_not_released(
    do_release, oci_registry, brokkr_repo, test_env, webhook
):
    test_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    test_env["BROKKR_RELEASE_WEBHOOK_URL"] = webhook.url + HOOK_PATH
    add_unit_test(brokkr_repo, "def test_parser():\n    assert 'v1' == 'v2'\n", "fix: parser")
    head = run("git", "rev-parse", "HEAD", cwd=brokkr_repo)
    with pytest.raises(ReleaseError) as info:
        do_release("v1.0.0", gate=(PYTEST,))
    message = str(info.value)
    assert message.startswith(
        f"refusing to release commit {head[:12]}: `{' '.join(PYTEST)}` failed"
    )
    assert "publishes only a commit whose lint and unit tests pass" in message
    assert "test_parser" in message
    # nothing published, stamped or tagged
    assert catalog(oci_registry.host) == []
    assert run("git", "rev-parse", "HEAD", cwd=brokkr_repo) == head
    assert run("git", "tag", "--list", cwd=brokkr_repo) == ""
    (failed,) = webhook.messages
    assert failed["release"]["status"] == "failed"
    assert failed["text"].startswith("Brokkr v1.0.0 release FAILED: refusing to release commit")

    # fixed and committed: the same command releases
    add_unit_test(brokkr_repo, "def test_parser():\n    assert 'v1' == 'v1'\n", "fix: the test")
    outcome = do_release("v1.0.0", gate=(PYTEST,), sign=False, sbom=False)
    assert outcome is not None
    assert Registry(oci_registry.host).digest("brokkr/brokkr-broker", "v1.0.0")
    assert webhook.messages[-1]["release"]["status"] == "published"


def test_a_tree_without_green_records_of_every_check_is_not_released(
    do_release, oci_registry, brokkr_repo, tmp_path, monkeypatch
):
    """The default gate of the real pipeline: lint, tests, e2e-kind and the scan must
    each have a green record of this tree before anything is published."""
    monkeypatch.setenv(green.RECORDS_ENV, str(tmp_path / "green"))
    monkeypatch.setenv("BROKKR_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(ReleaseError, match=r"missing:\n  - lint: no green record") as info:
        do_release("v1.0.0", records=green.REQUIRED, sign=False, sbom=False)
    for check in green.REQUIRED:
        assert f"  - {check}: no green record" in str(info.value)
    assert catalog(oci_registry.host) == []
    for check in green.REQUIRED:  # what each session's wrapper does when it passes
        green.begin(
            check, ["--images", "--mode", "release"] if check == "scan" else [], brokkr_repo
        )
        assert "passed on tree" in green.finish(check, brokkr_repo)
    outcome = do_release("v1.0.0", records=green.REQUIRED, sign=False, sbom=False)
    assert outcome is not None


def test_release_attaches_assets_and_notifies(
    do_release, oci_registry, test_env, github_stand_in, webhook
):
    test_env.update(
        GITHUB_TOKEN=GITHUB_TOKEN,
        GITHUB_API_URL=github_stand_in.url,
        BROKKR_RELEASE_WEBHOOK_URL=webhook.url + HOOK_PATH,
    )
    log: list[str] = []
    outcome = do_release("v1.0.0", log=log, github_release=True)
    assert outcome is not None
    registry = Registry(oci_registry.host)
    release = github_stand_in.releases["v1.0.0"]
    assets = github_stand_in.assets[release["id"]]
    platforms = ("linux-amd64", "linux-arm64")
    expected = {f"brokkr-{n}-1.0.0.tgz" for n in ("broker", "agent")}
    expected |= {
        f"brokkr-{n}-1.0.0-{p}.{kind}.json"
        for n in ("broker", "agent")
        for p in platforms
        for kind in ("spdx", "cdx")
    }
    expected |= {f"brokkr-{n}-install.yaml" for n in ("broker", "agent")}
    expected.add("brokkr-1.0.0.openvex.json")
    expected |= {f"brokkr-1.0.0-airgap-{p}.tar.gz" for p in platforms}
    assert set(assets) == expected | {"SHA256SUMS"}

    # the files in dist/<tag>/ are the ones uploaded, SHA256SUMS last
    assert [p.name for p in outcome.assets][-1] == "SHA256SUMS"
    assert {p.name: p.read_bytes() for p in outcome.assets} == assets
    directory = outcome.assets[0].parent
    # SHA256SUMS covers every other asset, in `sha256sum -c` format, and verifies
    sums = assets["SHA256SUMS"].decode().splitlines()
    assert {line.split("  ")[1] for line in sums} == expected
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # each chart archive is byte for byte the chart published (and signed) in the registry
    for name in ("brokkr-broker", "brokkr-agent"):
        manifest = registry.manifest(f"brokkr/charts/{name}", outcome.charts[name])
        layer = json.loads(manifest.body)["layers"][0]
        assert (
            "sha256:" + hashlib.sha256(assets[f"{name}-1.0.0.tgz"]).hexdigest() == layer["digest"]
        )
        shown = run(
            str(paths.BIN_DIR / "helm"),
            "show",
            "chart",
            str(directory / f"{name}-1.0.0.tgz"),
        )
        assert "appVersion: 1.0.0" in shown

    # each install manifest runs exactly the image this release published, by digest
    for name in ("brokkr-broker", "brokkr-agent"):
        text = assets[f"{name}-install.yaml"].decode()
        assert text.startswith(f"# Brokkr {name} 1.0.0:")
        pinned = f"image: {oci_registry.host}/brokkr/{name}@{outcome.images[name]}"
        assert pinned in text.replace('"', "")

    # each SBOM is the SPDX document attested to that platform image
    for platform, digest in outcome.platforms["brokkr-agent"].items():
        sbom = json.loads(assets[f"brokkr-agent-1.0.0-{platform.replace('/', '-')}.spdx.json"])
        assert sbom["spdxVersion"].startswith("SPDX-")
        (bundle,) = [  # one bundle (referrer) per predicate type; cosign v3 names it
            b
            for b in attestations.bundles(registry, "brokkr/brokkr-agent", digest)
            if b.predicate_type == "https://spdx.dev/Document"
        ]
        statement = json.loads(base64.b64decode(json.loads(bundle.envelope)["payload"]))
        assert statement["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
        assert statement["predicate"] == sbom

    (published,) = webhook.messages
    facts = published["release"]
    assert facts["status"] == "published"
    assert facts["version"] == "v1.0.0"
    assert facts["release_url"] == release["html_url"] == outcome.github_url
    assert {i["name"]: i["digest"] for i in facts["images"]} == outcome.images
    assert {i["name"]: i["platforms"] for i in facts["images"]} == outcome.platforms
    assert {c["name"]: c["digest"] for c in facts["charts"]} == outcome.charts
    assert release["html_url"] in published["text"]
    assert not any(HOOK_PATH in line for line in log)

    # a re-run (resume) finds the release complete and uploads nothing twice
    uploads = len([r for r in github_stand_in.requests if r["path"].startswith("/uploads/")])
    with pytest.raises(ReleaseError, match="already released"):
        do_release("v1.0.0", github_release=True)
    assert uploads == len(
        [r for r in github_stand_in.requests if r["path"].startswith("/uploads/")]
    )


def test_a_failing_webhook_does_not_fail_the_release(do_release, oci_registry, test_env, webhook):
    webhook.status_override = 503
    test_env["BROKKR_RELEASE_WEBHOOK_URL"] = webhook.url + HOOK_PATH
    log: list[str] = []
    outcome = do_release("v1.0.0", log=log, sign=False, sbom=False)
    assert outcome is not None
    assert Registry(oci_registry.host).digest("brokkr/brokkr-broker", "v1.0.0")
    assert len(webhook.requests) == 1
    assert (
        "notify: published message for v1.0.0 not delivered (webhook answered HTTP 503); "
        "the release is unaffected"
    ) in log
    assert not any(HOOK_PATH in line or webhook.url in line for line in log)
