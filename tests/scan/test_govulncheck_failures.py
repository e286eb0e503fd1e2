"""A govulncheck that fails on a tool is an error, not "not scanned" (a real stand-in).

Only x/vulndb that cannot be fetched, or a tool not built, is "not scanned"; a
scanner that fails once the database is there proves nothing and fails the scan in
every mode, test infrastructure included.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from brokkr_dev.base import paths
from brokkr_dev.scan import govulns
from brokkr_dev.scan.model import Status
from brokkr_dev.scan.policy import Mode, Policy, judge

POLICY = Policy("HIGH", "HIGH", frozenset(), accept_test_infrastructure=True)
OSV = {
    "schema_version": "1.3.1",
    "id": "GO-2099-0002",
    "modified": "2099-01-01T00:00:00Z",
    "published": "2099-01-01T00:00:00Z",
    "affected": [{"package": {"name": "stdlib", "ecosystem": "Go"}, "ranges": []}],
}


@pytest.mark.parametrize("test_only", [False, True])
def test_a_failing_govulncheck_is_an_error_in_every_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_only: bool
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "govulncheck"
    program.write_text(
        "#!/bin/sh\necho 'govulncheck: loading packages: exec format error' >&2\nexit 2\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(paths, "BIN_DIR", bin_dir)
    data = tmp_path / "osv"
    data.mkdir()
    (data / "GO-2099-0002.json").write_text(json.dumps(OSV))
    tool = tmp_path / "tool"
    tool.write_bytes(b"\x7fELF not really")
    for mode in Mode:
        (result,) = govulns.scan_binaries(
            {"tool": govulns.GoBinary(tool, test_only=test_only)},
            "HIGH",
            data=data,
            workdir=tmp_path / "work",
        )
        assert result.status is not Status.NOT_SCANNED
        verdict = judge([result], POLICY, [], mode)
        assert [f for f in verdict.failures if "go-vulndb on tool: govulncheck failed" in f], (
            mode,
            verdict,
        )


def test_only_an_optional_test_tool_may_be_absent(tmp_path: Path):
    """A per-minor node build never made here is listed as not built; any other absent
    tool still fails outside local mode."""
    data = tmp_path / "osv"
    data.mkdir()
    (data / "GO-2099-0002.json").write_text(json.dumps(OSV))
    absent = tmp_path / "never-built" / "kubelet"
    binaries = {
        "kubelet (kubernetes-node-1.35)": govulns.GoBinary(absent, test_only=True, optional=True),
        "kwok": govulns.GoBinary(absent, test_only=True),
    }
    results = govulns.scan_binaries(binaries, "HIGH", data=data, workdir=tmp_path / "work")
    by_target = {result.target: result for result in results}
    node = by_target["kubelet (kubernetes-node-1.35)"]
    assert node.status is Status.NOT_BUILT and str(absent) in (node.problem or "")
    for mode in (Mode.CI, Mode.RELEASE):
        verdict = judge(results, POLICY, [], mode)
        assert [f for f in verdict.failures if f.startswith("go-vulndb on kwok: NOT SCANNED")]
        assert not [f for f in verdict.failures if "kubernetes-node-1.35" in f], verdict.failures
