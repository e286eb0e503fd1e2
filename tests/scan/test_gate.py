"""The security scan gate, end to end: real trivy, Checkov, helm, and `invoke scan`.

Each test plants one problem in a copy of docker/ and charts/ and runs the same
task `nox -s scan` runs, then checks that the run fails and names the cause.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from brokkr_dev import charts, localnet, paths

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
