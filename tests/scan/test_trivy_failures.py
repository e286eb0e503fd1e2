"""A Trivy that fails is an error, not "not scanned": planted with real stand-in programs.

Each test puts an executable named `trivy` where the scan looks for the pinned one
(bin/), makes it fail in one way, and runs the real image scan steps on a small
OCI archive. Only an unfetchable vulnerability database (or a seeded directory
without its database file) may be "not scanned"; everything else must fail the
scan, also in ci mode with `trivy-vuln` tolerated, as .ci/run runs it.
"""

from __future__ import annotations

import dataclasses
import io
import stat
import tarfile
from pathlib import Path

import pytest

from brokkr_dev.base import paths
from brokkr_dev.scan import image_scan, trivy
from brokkr_dev.scan.model import ScanError, Status, TargetResult
from brokkr_dev.scan.policy import Mode, Policy, judge

POLICY = Policy(fail_on="HIGH", unrated_severity="HIGH", licences=frozenset({"MIT"}))
TOLERATED = frozenset({trivy.VULN_SCANNER})

# What the real Trivy prints when ghcr.io cannot be reached (its FATAL line, abridged).
DB_FETCH_FAILURE = (
    "FATAL\tFatal error\tinit error: DB error: failed to download vulnerability DB: "
    "OCI artifact error: failed to download artifact from any source: "
    'Get "https://ghcr.io/v2/": dial tcp: lookup ghcr.io: no such host'
)


def plant_trivy(bin_dir: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """A `trivy` shell script in bin_dir, which the scan then runs as the pinned one."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    program = bin_dir / "trivy"
    program.write_text(f"#!/bin/sh\n{body}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(paths, "BIN_DIR", bin_dir)


def oci_archive(path: Path) -> Path:
    """A minimal OCI archive (index.json and an oci-layout file) that unpacks."""
    with tarfile.open(path, "w") as tar:
        for name, content in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", b'{"schemaVersion": 2, "manifests": []}'),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def vuln_result(tmp_path: Path) -> TargetResult:
    """The trivy-vuln result of the real image scan steps on a planted archive."""
    tmp_path.mkdir(exist_ok=True)
    archive = oci_archive(tmp_path / "image.oci.tar")
    workdir = tmp_path / "work" / "broker-amd64"
    workdir.mkdir(parents=True)
    results = image_scan.scan_archive(archive, "brokkr-broker/amd64", "amd64", workdir, POLICY)
    return next(r for r in results if r.scanner == trivy.VULN_SCANNER)


def verdicts(result: TargetResult) -> dict[Mode, list[str]]:
    """The failures each mode finds in this one result (ci tolerating trivy-vuln)."""
    return {
        mode: judge(
            [dataclasses.replace(result)],
            POLICY,
            [],
            mode,
            tolerated=TOLERATED if mode is Mode.CI else frozenset(),
        ).failures
        for mode in Mode
    }


def assert_fails_in_every_mode(result: TargetResult, expected: str) -> None:
    assert result.status is not Status.NOT_SCANNED, result
    assert result.problem and expected in result.problem, result.problem
    for mode, failures in verdicts(result).items():
        assert [f for f in failures if expected in f], (mode, failures)


def test_an_unfetchable_database_is_not_scanned_and_tolerated_only_where_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plant_trivy(tmp_path / "bin", monkeypatch, f"echo '{DB_FETCH_FAILURE}' >&2\nexit 1")
    result = vuln_result(tmp_path)
    assert result.status is Status.NOT_SCANNED
    assert "failed to download vulnerability DB" in (result.problem or "")
    found = verdicts(result)
    assert found[Mode.LOCAL] == [] and found[Mode.CI] == []
    assert [f for f in found[Mode.RELEASE] if "NOT SCANNED" in f]
    untolerated = judge([vuln_result(tmp_path / "again")], POLICY, [], Mode.CI)
    assert [f for f in untolerated.failures if "a failure in ci mode" in f]


def test_a_seeded_directory_without_its_database_is_not_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plant_trivy(tmp_path / "bin", monkeypatch, "echo never run >&2\nexit 3")
    monkeypatch.setenv(trivy.DB_DIR_ENV, str(tmp_path / "empty-cache"))
    result = vuln_result(tmp_path)
    assert result.status is Status.NOT_SCANNED
    assert "has no db/trivy.db" in (result.problem or "")


def test_a_crashing_trivy_is_an_error_in_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plant_trivy(
        tmp_path / "bin",
        monkeypatch,
        "echo 'panic: runtime error: invalid memory address or nil pointer dereference' >&2\n"
        "exit 2",
    )
    assert_fails_in_every_mode(vuln_result(tmp_path), "invalid memory address")


def test_a_trivy_that_cannot_read_the_image_is_an_error_in_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plant_trivy(
        tmp_path / "bin",
        monkeypatch,
        "echo 'FATAL\tFatal error\timage scan error: scan error: unable to initialize a "
        "scanner: unable to initialize an OCI scanner: no valid manifest' >&2\nexit 1",
    )
    assert_fails_in_every_mode(vuln_result(tmp_path), "no valid manifest")


@pytest.mark.parametrize(
    ("output", "expected"),
    [("Segmentation fault, core dumped", "printed no JSON report"), ("[]", "not a report")],
)
def test_a_trivy_that_prints_garbage_is_an_error_in_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, expected: str
):
    plant_trivy(tmp_path / "bin", monkeypatch, f"echo '{output}'\nexit 0")
    assert_fails_in_every_mode(vuln_result(tmp_path), expected)


def test_a_bad_archive_fails_the_image_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    plant_trivy(tmp_path / "bin", monkeypatch, "echo '{}'")
    archive = tmp_path / "image.oci.tar"
    archive.write_bytes(b"not a tar archive at all\n" * 40)
    with pytest.raises(ScanError, match="not a readable OCI archive"):
        image_scan.scan_archive(archive, "brokkr-broker/amd64", "amd64", tmp_path / "w", POLICY)
    # An archive with a layout but no readable manifest: the Debian step is an error.
    results = image_scan.scan_archive(
        oci_archive(tmp_path / "layout.oci.tar"), "b/amd64", "amd64", tmp_path / "w2", POLICY
    )
    debian = next(r for r in results if r.scanner == "debian-security")
    assert debian.problem and "not a readable OCI archive" in debian.problem
    failures = judge(results, POLICY, [], Mode.LOCAL).failures
    assert [f for f in failures if f.startswith("debian-security on b/amd64: ")], failures
