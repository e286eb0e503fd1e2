"""The release's OpenVEX document, from the accepted findings and the scan report."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from brokkr_dev.scan import vex
from brokkr_dev.scan.model import ScanError
from brokkr_dev.scan.policy import load_accepted

BROKER = vex.ReleasedImage(
    "brokkr-broker",
    "sha256:" + "b0" * 32,
    {"linux/amd64": "sha256:" + "b1" * 32, "linux/arm64": "sha256:" + "b2" * 32},
)
AGENT = vex.ReleasedImage(
    "brokkr-agent",
    "sha256:" + "a0" * 32,
    {"linux/amd64": "sha256:" + "a1" * 32, "linux/arm64": "sha256:" + "a2" * 32},
)
IMAGES = (BROKER, AGENT)
ACCEPTED = """\
[[finding]]
scanner = "trivy-vuln"
id = "CVE-2026-1111"
target = "brokkr-broker/*"
reason = "zlib's inflate path that the CVE needs is never reached: we only deflate."
review_by = 2027-01-31
vex_status = "not_affected"
vex_justification = "vulnerable_code_not_in_execute_path"

[[finding]]
scanner = "pypi"
id = "GHSA-aaaa-bbbb-cccc"
reason = "No fixed release yet; the header limit in front of it bounds the input."
review_by = 2027-01-31
vex_status = "affected"

[[finding]]
scanner = "pypi"
id = "behind:uvicorn"
reason = "not a vulnerability: no VEX statement"
review_by = 2027-01-31

[[finding]]
scanner = "checkov"
id = "CKV_K8S_43"
reason = "charts, not images"
review_by = 2027-01-31
"""


def entries(tmp_path: Path, text: str = ACCEPTED):
    path = tmp_path / "accepted.toml"
    path.write_text(text)
    return load_accepted(path)


def make(accepted, report: Path | None = None) -> dict:
    return vex.release_document(
        accepted,
        IMAGES,
        report=report,
        document_id="https://example.invalid/vex.json",
        author="test",
        timestamp="2026-12-01T00:00:00Z",
    )


def test_purl_names_an_image_by_digest_without_qualifiers():
    assert vex.purl("brokkr-broker", "sha256:abc") == "pkg:oci/brokkr-broker@sha256%3Aabc"


def test_entries_alone_give_one_statement_per_vulnerability_on_the_images_their_target_covers(
    tmp_path: Path,
):
    document = make(entries(tmp_path))
    assert document["@context"] == "https://openvex.dev/ns/v0.2.0"
    assert (document["version"], document["timestamp"]) == (1, "2026-12-01T00:00:00Z")
    by_id = {s["vulnerability"]["name"]: s for s in document["statements"]}
    assert set(by_id) == {"CVE-2026-1111", "GHSA-aaaa-bbbb-cccc"}  # no behind:, no checkov

    cve = by_id["CVE-2026-1111"]
    assert cve["status"] == "not_affected"
    assert cve["justification"] == "vulnerable_code_not_in_execute_path"
    assert cve["impact_statement"].startswith("zlib's inflate path")
    # the broker only (target brokkr-broker/*): its index and both platform images
    assert [p["@id"] for p in cve["products"]] == sorted(BROKER.purls())

    ghsa = by_id["GHSA-aaaa-bbbb-cccc"]
    assert ghsa["status"] == "affected"
    assert ghsa["action_statement"].startswith("No fixed release yet")
    assert "justification" not in ghsa
    # the Python pins are in every image
    assert {p["@id"] for p in ghsa["products"]} == set(BROKER.purls()) | set(AGENT.purls())


def test_with_a_report_only_the_images_where_the_finding_was_seen_are_named(tmp_path: Path):
    accepted = entries(tmp_path)
    report = tmp_path / "report.json"
    finding = {"id": "CVE-2026-1111", "severity": "HIGH", "title": "zlib", "detail": ""}
    report.write_text(
        json.dumps(
            {
                "results": [
                    {
                        "scanner": "trivy-vuln",
                        "target": "brokkr-broker/arm64",
                        "findings": [{**finding, "accepted_by": "zlib's ...", "by_policy": False}],
                    },
                    {  # not accepted: it failed the scan, so no VEX statement
                        "scanner": "trivy-vuln",
                        "target": "brokkr-agent/amd64",
                        "findings": [{**finding, "id": "CVE-2026-2222", "accepted_by": None}],
                    },
                ]
            }
        )
    )
    document = make(accepted, report)
    (statement,) = document["statements"]
    assert statement["vulnerability"]["name"] == "CVE-2026-1111"
    assert [p["@id"] for p in statement["products"]] == sorted(
        [vex.purl("brokkr-broker", BROKER.index), vex.purl("brokkr-broker", "sha256:" + "b2" * 32)]
    )


def test_a_report_accepting_what_no_entry_matches_is_refused(tmp_path: Path):
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "results": [
                    {
                        "scanner": "trivy-vuln",
                        "target": "brokkr-agent/amd64",
                        "findings": [{"id": "CVE-2026-9", "accepted_by": "an old entry"}],
                    }
                ]
            }
        )
    )
    with pytest.raises(ScanError, match="no entry of security/accepted.toml matches it"):
        make(entries(tmp_path), report)


def test_no_accepted_vulnerability_gives_a_document_without_statements(tmp_path: Path):
    document = make([])
    assert document["statements"] == []


def test_an_accepted_image_vulnerability_must_say_its_vex_status(tmp_path: Path):
    base = (
        '[[finding]]\nscanner = "trivy-vuln"\nid = "CVE-2026-1"\nreason = "r"\n'
        "review_by = 2027-01-31\n"
    )
    with pytest.raises(ScanError, match="needs vex_status"):
        entries(tmp_path, base)
    with pytest.raises(ScanError, match="vex_status 'ignored'; use one of"):
        entries(tmp_path, base + 'vex_status = "ignored"\n')
    with pytest.raises(ScanError, match="not_affected needs vex_justification"):
        entries(tmp_path, base + 'vex_status = "not_affected"\n')
    with pytest.raises(ScanError, match="applies only to vex_status not_affected"):
        entries(
            tmp_path, base + 'vex_status = "fixed"\nvex_justification = "component_not_present"\n'
        )
    (entry,) = entries(tmp_path, base + 'vex_status = "under_investigation"\n')
    assert (entry.vex_status, entry.vex_justification) == ("under_investigation", None)
    assert entry.review_by == datetime.date(2027, 1, 31)


def test_the_committed_accepted_findings_give_a_valid_document():
    document = make(load_accepted())
    for statement in document["statements"]:
        assert statement["status"] in ("not_affected", "affected", "fixed", "under_investigation")
        assert statement["products"]
