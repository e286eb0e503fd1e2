"""Vulnerability sources and scanner reports: version ranges, parsing, archives."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from brokkr_dev.scan import checkov, debian, govulns, osv, pypi, trivy
from brokkr_dev.scan import image_scan as images

RANGES = [
    {
        "type": "SEMVER",
        "events": [
            {"introduced": "1.2.0"},
            {"fixed": "1.2.5"},
            {"introduced": "2.0.0"},
            {"fixed": "2.1.0"},
        ],
    },
]


def test_semver_precedence_puts_prereleases_before_their_release():
    ordered = ["v1.2.0", "v2.0.0-rc.1", "v2.0.0-rc.2", "v2.0.0", "v2.0.1", "v10.0.0"]
    assert sorted(ordered, key=osv.semver_key) == ordered
    assert osv.fixed_versions(RANGES) == ["1.2.5", "2.1.0"]


def test_vulndb_entries_become_govulnchecks_file_database(tmp_path: Path):
    data = tmp_path / "osv"
    data.mkdir()
    entry = {
        "id": "GO-2026-4529",
        "modified": "2026-02-01T00:00:00Z",
        "affected": [
            {"package": {"name": "github.com/sigstore/cosign/v3"}, "ranges": [
                {"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "3.0.5"}]}]},
        ],
    }  # fmt: skip
    (data / "GO-2026-4529.json").write_text(json.dumps(entry))
    (data / "GO-2020-0001.json").write_text(
        json.dumps({**entry, "id": "GO-2020-0001", "withdrawn": "x"})
    )
    db = govulns.build_db(data, tmp_path / "db")
    assert json.loads((db / "index" / "modules.json").read_text()) == [
        {"path": "github.com/sigstore/cosign/v3",
         "vulns": [{"id": "GO-2026-4529", "modified": "2026-02-01T00:00:00Z", "fixed": "3.0.5"}]}
    ]  # fmt: skip
    assert json.loads((db / "index" / "db.json").read_text()) == {
        "modified": "2026-02-01T00:00:00Z"
    }
    assert sorted(p.name for p in (db / "ID").iterdir()) == ["GO-2026-4529.json"]


def test_only_vulnerable_functions_linked_in_fail():
    stream = "\n".join(
        json.dumps(m)
        for m in [
            {"config": {"scanner_name": "govulncheck"}},
            {"SBOM": {"go_version": "go1.26.8", "modules": [{"path": "a"}, {"path": "b"}]}},
            {"osv": {"id": "GO-1", "summary": "called"}},
            {"osv": {"id": "GO-2", "summary": "imported only"}},
            {"finding": {"osv": "GO-2", "trace": [{"module": "b", "version": "v1.0.0", "package": "b/p"}]}},
            {"finding": {"osv": "GO-1", "fixed_version": "v1.2.3", "trace": [
                {"module": "a", "version": "v1.0.0", "package": "a/p", "receiver": "*T", "function": "Do"}]}},
        ]
    )  # fmt: skip
    modules, called, other = govulns.parse_govulncheck(stream)
    assert (modules, other) == (3, 1)
    assert [f.describe() for f in called] == [
        "GO-1 [UNKNOWN] called at a@v1.0.0 a/p.*T.Do (fixed in v1.2.3)"
    ]


def test_apt_simulation_lines_become_findings():
    text = (
        "Reading package lists...\n"
        "Inst libc6 [2.36-9+deb12u9] (2.36-9+deb12u13 Debian-Security:12/oldstable-security [arm64])\n"
        "Conf libc6 (2.36-9+deb12u13 Debian-Security:12/oldstable-security [arm64])\n"
    )
    [finding] = debian.parse_simulation(text)
    assert finding.id == "pending:libc6"
    assert "2.36-9+deb12u9" in finding.title and "2.36-9+deb12u13" in finding.location


def test_pypi_data_covers_only_the_latest_release():
    latest = {"info": {"version": "6.0.4"}, "vulnerabilities": []}
    assert pypi.findings_for("pyyaml", "6.0.4", latest, "HIGH") == []
    [behind] = pypi.findings_for("pyyaml", "6.0.3", latest, "HIGH")
    assert behind.id == "behind:pyyaml" and "unverified" in behind.title
    vulnerable = {
        "info": {"version": "1.0"},
        "vulnerabilities": [{"id": "PYSEC-1", "summary": "bad", "fixed_in": ["1.1"]}],
    }
    [finding] = pypi.findings_for("x", "1.0", vulnerable, "HIGH")
    assert (finding.id, finding.severity, finding.location) == ("PYSEC-1", "HIGH", "fixed in 1.1")


def test_requirement_pins_are_read_with_their_hash_lines(tmp_path: Path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# header\nPyYAML==6.0.4 \\\n    --hash=sha256:ab\n    # via x\nidna==3.20\n"
    )
    assert pypi.pins(requirements) == {"pyyaml": "6.0.4", "idna": "3.20"}


def test_checkov_report_is_split_per_file_with_unrated_severity():
    report = [
        {"check_type": "kubernetes", "results": {
            "passed_checks": [{"check_id": "CKV_K8S_1", "file_path": "/charts/a/minimal.yaml"}],
            "failed_checks": [{"check_id": "CKV_K8S_16", "check_name": "privileged", "severity": None,
                               "file_path": "/charts/a/minimal.yaml", "resource": "Deployment.x",
                               "file_line_range": [3, 9]}],
        }},
        {"check_type": "dockerfile", "results": {"failed_checks": [], "passed_checks": [
            {"check_id": "CKV_DOCKER_2", "file_path": "/docker/Dockerfile"}]}},
    ]  # fmt: skip
    results = {r.target: r for r in checkov.parse(report, "HIGH", lambda p: p.lstrip("/"))}
    agent = results["charts/a/minimal.yaml"]
    assert agent.checks == 2
    assert agent.findings[0].describe() == "CKV_K8S_16 [HIGH] privileged (Deployment.x) at line 3"
    assert results["docker/Dockerfile"].checks == 1


def test_trivy_misconfigurations_count_successes_and_failures():
    entry = {
        "Target": "docker/Dockerfile",
        "MisconfSummary": {"Successes": 20, "Failures": 1},
        "Misconfigurations": [
            {"ID": "DS-0002", "Title": "root user", "Severity": "HIGH", "Status": "FAIL",
             "CauseMetadata": {"StartLine": 7}},
        ],
    }  # fmt: skip
    assert trivy.misconf_checks(entry) == 21
    assert trivy.misconf_findings(entry)[0].describe() == "DS-0002 [HIGH] root user at line 7"


def test_a_sensitive_configmap_finding_is_split_into_one_per_flagged_key():
    message = (
        "ConfigMap 'b' in 'ns' namespace stores sensitive contents in key(s) or value(s) "
        '\'{"BROKKR__BROKER__PORT", "BROKKR__DATABASE__PORT"}\''
    )
    entry = {
        "Misconfigurations": [
            {"ID": "KSV-01010", "Title": "sensitive", "Severity": "MEDIUM", "Status": "FAIL",
             "Message": message, "CauseMetadata": {"StartLine": 9}},
            {"ID": "KSV-0125", "Title": "registry", "Severity": "MEDIUM", "Status": "FAIL",
             "Message": "untrusted registry"},
        ],
    }  # fmt: skip
    assert [f.describe() for f in trivy.misconf_findings(entry)] == [
        "KSV-01010 [MEDIUM] sensitive (BROKKR__BROKER__PORT) at line 9",
        "KSV-01010 [MEDIUM] sensitive (BROKKR__DATABASE__PORT) at line 9",
        "KSV-0125 [MEDIUM] registry (untrusted registry)",
    ]


def test_licences_come_from_trivys_license_results_not_the_os_packages():
    report = {
        "Results": [
            {"Class": "os-pkgs", "Target": "oci (debian 12.15)", "Packages": [{"Name": "apt"}]},
            {"Class": "lang-pkgs", "Target": "Python", "Packages": [{"Name": "a"}, {"Name": "b"}]},
            {"Class": "license", "Target": "OS Packages",
             "Licenses": [{"PkgName": "apt", "Name": "GPL-2.0-only"}]},
            {"Class": "license", "Target": "Python",
             "Licenses": [{"PkgName": "a", "Name": "MIT", "FilePath": "a/METADATA"},
                          {"PkgName": "b", "Name": "LGPL-3.0-only"}]},
        ]
    }  # fmt: skip
    packages, found = trivy.parse_licences(report)
    assert packages == 2
    assert [(f.package, f.licence) for f in found] == [("a", "MIT"), ("b", "LGPL-3.0-only")]


def test_licence_expressions_need_every_and_part_and_one_or_alternative():
    allowed = frozenset({"MIT", "Apache-2.0", "BSD-2-Clause"})
    assert images.licence_allowed("Apache-2.0 AND BSD-2-Clause", allowed)
    assert not images.licence_allowed("Apache-2.0 AND LGPL-3.0-only", allowed)
    assert images.licence_allowed("(LGPL-3.0-only OR MIT)", allowed)
    assert not images.licence_allowed("LGPL-3.0-only", allowed)


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _layer(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as layer:
        for name, data in files.items():
            _add(layer, name, data)
    return buffer.getvalue()


def test_dpkg_status_comes_from_the_topmost_layer_that_has_it(tmp_path: Path):
    layers = [
        _layer({"var/lib/dpkg/status": b"Package: old\n"}),
        _layer({"opt/app": b"x"}),
        _layer({"var/lib/dpkg/status": b"Package: new\nStatus: install ok installed\n"}),
    ]
    digests = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    manifest = json.dumps({"layers": [{"digest": d} for d in digests]}).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    archive_path = tmp_path / "image.oci.tar"
    with tarfile.open(archive_path, "w") as archive:
        _add(
            archive, "index.json", json.dumps({"manifests": [{"digest": manifest_digest}]}).encode()
        )
        _add(archive, f"blobs/sha256/{manifest_digest[7:]}", manifest)
        for digest, layer in zip(digests, layers, strict=True):
            _add(archive, f"blobs/sha256/{digest[7:]}", layer)
    status = images.dpkg_status(archive_path, tmp_path / "status")
    assert status.read_text().startswith("Package: new")
    assert debian.installed_count(status) == 1


def test_licences_off_the_allowlist_are_findings_once_per_package():
    found = [
        trivy.PackageLicence("pyyaml", "MIT", "/opt/brokkr/lib/pyyaml"),
        trivy.PackageLicence("psycopg", "LGPL-3.0-only", "/opt/brokkr/lib/psycopg"),
        trivy.PackageLicence("psycopg", "LGPL-3.0-only", "/opt/brokkr/lib/psycopg/x"),
    ]
    result = images.licence_result("brokkr-broker/amd64", 21, found, frozenset({"MIT"}))
    assert result.checks == 21
    assert [f.id for f in result.findings] == ["licence:psycopg"]
    assert "LGPL-3.0-only" in result.findings[0].title
