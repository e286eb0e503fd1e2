"""The security scan gate, end to end: real trivy, Checkov, helm, and `invoke scan`.

Each test plants one problem in a copy of docker/ and charts/ and runs the same
task `nox -s scan` runs, then checks that the run fails and names the cause.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from brokkr_dev.base import localnet, paths
from brokkr_dev.charts import lint as charts
from brokkr_dev.scan import gate, govulns
from brokkr_dev.scan import image_scan as images
from brokkr_dev.scan.model import Status
from brokkr_dev.scan.policy import Mode, judge, load_policy

pytestmark = [pytest.mark.scan, pytest.mark.slow]

PRIVILEGED_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: planted
spec:
  containers:
    - name: planted
      image: registry.example/planted@sha256:{digest}
      securityContext:
        privileged: true
""".format(digest="a" * 64)


def copy_sources(tmp_path: Path) -> tuple[Path, Path]:
    docker = tmp_path / "docker"
    docker.mkdir()
    shutil.copy2(paths.REPO_ROOT / "docker" / "Dockerfile", docker / "Dockerfile")
    chart_root = tmp_path / "charts"
    shutil.copytree(charts.CHARTS_DIR, chart_root)
    return docker, chart_root


def scan(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[int, str]:
    """`invoke scan ...` as `nox -s scan` runs it; (exit code, stdout + stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "scan", *args],
        cwd=paths.REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_planted_problems_fail_the_scan_naming_each_scanners_check(tmp_path: Path):
    docker, chart_root = copy_sources(tmp_path)
    with (docker / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("USER root\n")
    (chart_root / "brokkr-agent" / "templates" / "planted.yaml").write_text(PRIVILEGED_POD)
    code, output = scan(
        "--docker-dir", str(docker), "--charts-dir", str(chart_root), "--work-dir", str(tmp_path / "work")
    )  # fmt: skip
    assert code == 1, output
    # trivy config: the root user and the privileged container, by check ID.
    assert "trivy-config on docker/Dockerfile: DS-0002" in output, output
    assert "trivy-config on brokkr-agent/minimal: KSV-0017" in output, output
    # Checkov: the same two problems, by its own check IDs.
    assert "checkov on docker/Dockerfile: CKV_DOCKER_8" in output, output
    assert "checkov on brokkr-agent/minimal: CKV_K8S_16" in output, output
    # Its image comes from a registry outside policy.toml's trusted_registries.
    assert "trivy-config on brokkr-agent/minimal: KSV-0125" in output, output


def test_a_chart_that_does_not_render_fails_the_scan(tmp_path: Path):
    docker, chart_root = copy_sources(tmp_path)
    planted = chart_root / "brokkr-broker" / "templates" / "planted.yaml"
    planted.write_text('{{ fail "planted render failure" }}\n')
    code, output = scan(
        "--scanners", "checkov", "--docker-dir", str(docker), "--charts-dir", str(chart_root),
        "--work-dir", str(tmp_path / "work"),
    )  # fmt: skip
    assert code == 1, output
    assert "helm on brokkr-broker/minimal: did not render" in output
    assert "planted render failure" in output


def test_an_unreachable_vulnerability_source_fails_in_release_mode_and_warns_locally(
    tmp_path: Path,
):
    closed = f"http://127.0.0.1:{localnet.free_port()}"
    offline = {
        "GOPROXY": closed,
        "GOMODCACHE": str(tmp_path / "gomodcache"),  # no cached x/vulndb either
        "BROKKR_PYPI_JSON_URL": f"{closed}/pypi",
    }
    code, output = scan("--no-config", "--sources", "--mode", "release", env=offline, timeout=600)
    assert code == 1, output
    assert "pypi on docker/requirements.txt: NOT SCANNED" in output
    assert "go-vulndb on cosign: NOT SCANNED" in output
    assert "(a failure in release mode)" in output
    code, output = scan("--no-config", "--sources", "--mode", "local", env=offline, timeout=600)
    assert code == 0, output
    assert "warning: pypi on docker/requirements.txt: NOT SCANNED" in output


# One OSV entry in x/vulndb's format: every Go release's fmt.Println is "vulnerable".
PLANTED_VULN = {
    "schema_version": "1.3.1",
    "id": "GO-2099-0001",
    "modified": "2099-01-01T00:00:00Z",
    "published": "2099-01-01T00:00:00Z",
    "summary": "Planted vulnerability in fmt.Println",
    "affected": [
        {
            "package": {"name": "stdlib", "ecosystem": "Go"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
            "ecosystem_specific": {"imports": [{"path": "fmt", "symbols": ["Println"]}]},
        }
    ],
}


def test_a_go_vulnerability_fails_a_publishing_tool_and_is_accepted_by_policy_in_a_test_tool(
    tmp_path: Path,
):
    source = tmp_path / "tool"
    source.mkdir()
    (source / "go.mod").write_text("module example.com/planted\n\ngo 1.22\n")
    (source / "main.go").write_text(
        'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("planted") }\n'
    )
    binary = tmp_path / "planted"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=source, env={**os.environ, "GOTOOLCHAIN": "local"}, check=True, timeout=300,
    )  # fmt: skip
    data = tmp_path / "osv"
    data.mkdir()
    (data / "GO-2099-0001.json").write_text(json.dumps(PLANTED_VULN))
    same_binary = {
        "publisher": govulns.GoBinary(binary, test_only=False),
        "tester": govulns.GoBinary(binary, test_only=True),
    }
    policy = load_policy()  # the committed policy: test_infrastructure = "accept"
    results = govulns.scan_binaries(
        same_binary, policy.unrated_severity, data=data, workdir=tmp_path / "work"
    )
    verdict = judge(results, policy, [], Mode.RELEASE)
    publisher, tester = verdict.results
    assert publisher.status is Status.FAILED
    assert [f for f in verdict.failures if f.startswith("go-vulndb on publisher: GO-2099-0001")]
    assert not [f for f in verdict.failures if "tester" in f], verdict.failures
    assert tester.status is Status.PASSED and tester.by_policy == 1
    # Reported, not dropped: the report lists the test tool's finding and why it passes.
    report = json.loads(gate.write_report(verdict, Mode.RELEASE, tmp_path / "r.json").read_text())
    listed = {r["target"]: r["findings"] for r in report["results"]}
    assert listed["tester"][0]["id"] == "GO-2099-0001"
    assert listed["tester"][0]["accepted_by"].startswith("accepted by policy: test infrastructure")
    assert listed["publisher"][0]["accepted_by"] is None


@pytest.mark.images
def test_the_image_scans_run_on_a_real_image(built_images, tmp_path: Path):
    """Every image scan reads the exported image and checks something (or says it did not)."""
    reference = built_images.ref("broker", "amd64")
    results = {
        r.scanner: r
        for r in images.scan_image(reference, "broker/amd64", "amd64", tmp_path, load_policy())
    }
    assert set(results) == {"sbom", "licence", "trivy-image", "trivy-vuln", "debian-security"}
    for scanner in ("sbom", "licence", "trivy-image", "debian-security"):
        assert results[scanner].problem is None and results[scanner].checks > 0, results[scanner]
    # psycopg is LGPL-3.0, off the allowlist (accepted in accepted.toml, not here).
    assert "licence:psycopg" in {f.id for f in results["licence"].findings}
    vulns = results["trivy-vuln"]  # Trivy's DB: scanned where reachable, else said so
    assert vulns.checks > 0 or vulns.status is Status.NOT_SCANNED, vulns
