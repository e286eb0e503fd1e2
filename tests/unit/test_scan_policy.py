"""The scan policy: thresholds, accepted findings, zero checks and "not scanned"."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from brokkr_dev.base.toolchain import ToolError
from brokkr_dev.scan import gate, render
from brokkr_dev.scan.model import (
    Finding,
    ScanError,
    Status,
    TargetResult,
    format_table,
    not_scanned,
)
from brokkr_dev.scan.policy import Accepted, Mode, Policy, judge, load_accepted, load_policy

POLICY = Policy(fail_on="MEDIUM", unrated_severity="HIGH", licences=frozenset({"MIT"}))
TODAY = datetime.date(2026, 11, 30)


def accepted(**overrides: object) -> Accepted:
    fields: dict = {
        "scanner": "checkov",
        "id": "CKV_K8S_43",
        "reason": "digests are set at release",
        "review_by": datetime.date(2027, 3, 31),
    }
    fields.update(overrides)
    return Accepted(**fields)


def result(
    *findings: Finding, checks: int = 10, target: str = "brokkr-agent/minimal"
) -> TargetResult:
    return TargetResult("checkov", target, checks=checks, findings=list(findings))


def test_a_finding_at_the_threshold_fails_and_a_lower_one_does_not():
    verdict = judge(
        [result(Finding("CKV_1", "MEDIUM", "medium")), result(Finding("CKV_2", "LOW", "low"))],
        POLICY, [], Mode.LOCAL, TODAY,
    )  # fmt: skip
    assert [r.status for r in verdict.results] == [Status.FAILED, Status.PASSED]
    assert len(verdict.failures) == 1 and "CKV_1 [MEDIUM]" in verdict.failures[0]


def test_an_accepted_finding_passes_and_is_counted_as_suppressed():
    verdict = judge(
        [result(Finding("CKV_K8S_43", "HIGH", "digest"))], POLICY, [accepted()], Mode.CI, TODAY
    )
    assert verdict.ok
    assert verdict.results[0].suppressed == 1
    assert verdict.results[0].findings[0].accepted_by == "digests are set at release"


def test_the_target_glob_limits_an_acceptance():
    verdict = judge(
        [result(Finding("CKV_K8S_43", "HIGH", "digest"), target="brokkr-broker/minimal")],
        POLICY, [accepted(target="brokkr-agent/*")], Mode.LOCAL, TODAY,
    )  # fmt: skip
    assert verdict.failures == ["checkov on brokkr-broker/minimal: CKV_K8S_43 [HIGH] digest"]


def test_an_unknown_or_stale_acceptance_fails():
    verdict = judge([result()], POLICY, [accepted(id="CKV_TYPO")], Mode.LOCAL, TODAY)
    assert [f for f in verdict.failures if "CKV_TYPO" in f and "matched nothing" in f]


def test_an_acceptance_for_a_scanner_that_did_not_run_is_not_judged_unused():
    verdict = judge([result()], POLICY, [accepted(scanner="trivy-vuln")], Mode.LOCAL, TODAY)
    assert verdict.ok


def test_an_expired_acceptance_fails_even_when_it_matches():
    verdict = judge(
        [result(Finding("CKV_K8S_43", "HIGH", "digest"))],
        POLICY, [accepted(review_by=datetime.date(2026, 11, 29))], Mode.LOCAL, TODAY,
    )  # fmt: skip
    assert any("expired on 2026-11-29" in f for f in verdict.failures)


def test_zero_checks_is_an_error_not_a_pass():
    verdict = judge([result(checks=0)], POLICY, [], Mode.LOCAL, TODAY)
    assert verdict.results[0].status is Status.ERROR
    assert "ran zero checks" in verdict.failures[0]


def test_not_scanned_warns_locally_and_fails_in_ci_and_release():
    missing = [not_scanned("trivy-vuln", "brokkr-broker/amd64", "database unavailable")]
    local = judge(list(missing), POLICY, [], Mode.LOCAL, TODAY)
    assert local.ok and "NOT SCANNED" in local.warnings[0]
    for mode in (Mode.CI, Mode.RELEASE):
        strict = judge(
            [not_scanned("trivy-vuln", "x", "database unavailable")], POLICY, [], mode, TODAY
        )
        assert not strict.ok and f"failure in {mode.value} mode" in strict.failures[0]
        assert strict.results[0].status is Status.NOT_SCANNED


def test_a_tolerated_source_warns_in_ci_and_is_refused_in_release():
    tolerated = frozenset({"trivy-vuln"})
    missing = [
        not_scanned("trivy-vuln", "brokkr-broker/amd64", "database unavailable"),
        not_scanned("pypi", "docker/requirements.txt", "unreachable"),
    ]
    verdict = judge(missing, POLICY, [], Mode.CI, TODAY, tolerated=tolerated)
    assert "trivy-vuln" in verdict.warnings[0] and "tolerated in ci mode" in verdict.warnings[0]
    assert len(verdict.failures) == 1 and "pypi" in verdict.failures[0]
    with pytest.raises(ScanError, match="release mode tolerates no missing"):
        judge(missing, POLICY, [], Mode.RELEASE, TODAY, tolerated=tolerated)
    with pytest.raises(ScanError, match="release mode tolerates no missing"):
        gate.run(mode=Mode.RELEASE, config=False, tolerate_not_scanned=["trivy-vuln"])
    with pytest.raises(ScanError, match=r"cannot tolerate \['checkov'\]"):
        gate.run(config=False, tolerate_not_scanned=["checkov"])


def test_the_table_has_one_row_per_result():
    verdict = judge(
        [result(Finding("CKV_K8S_43", "HIGH", "d"), Finding("CKV_9", "HIGH", "x"))],
        POLICY, [accepted()], Mode.LOCAL, TODAY,
    )  # fmt: skip
    lines = format_table(verdict.results, "MEDIUM").splitlines()
    assert lines[0].split() == [
        "scanner", "target", "checks", "failed", "suppressed", "policy", "status"
    ]  # fmt: skip
    assert lines[1].split() == ["checkov", "brokkr-agent/minimal", "10", "1", "1", "0", "failed"]


def test_the_committed_policy_and_accepted_findings_load():
    policy = load_policy()
    assert policy.fail_on in ("LOW", "MEDIUM", "HIGH", "CRITICAL")
    for entry in load_accepted():
        assert entry.reason and entry.review_by > datetime.date(2026, 1, 1)


def test_an_accepted_entry_without_reason_or_date_is_named(tmp_path: Path):
    bad = tmp_path / "accepted.toml"
    bad.write_text('[[finding]]\nscanner = "checkov"\nid = "CKV_1"\nreview_by = 2027-01-01\n')
    with pytest.raises(ScanError, match=r"#1 \(CKV_1\) lacks reason"):
        load_accepted(bad)
    bad.write_text(
        '[[finding]]\nscanner = "checkov"\nid = "CKV_1"\nreason = "r"\nreview_by = "soon"\n'
    )
    with pytest.raises(ScanError, match="review_by must be a date"):
        load_accepted(bad)


def test_one_entry_can_accept_several_ids_with_one_reason(tmp_path: Path):
    path = tmp_path / "accepted.toml"
    path.write_text(
        '[[finding]]\nscanner = "go-vulndb"\nids = ["GO-1", "GO-2"]\ntarget = "helm"\n'
        'reason = "the Go release"\nreview_by = 2027-01-31\n'
    )
    entries = load_accepted(path)
    assert [(e.id, e.target, e.reason) for e in entries] == [
        ("GO-1", "helm", "the Go release"),
        ("GO-2", "helm", "the Go release"),
    ]
    verdict = judge(
        [TargetResult("go-vulndb", "helm", checks=5, findings=[Finding("GO-1", "HIGH", "x")])],
        POLICY, entries, Mode.LOCAL, TODAY,
    )  # fmt: skip
    assert [f for f in verdict.failures if "GO-2" in f and "matched nothing" in f]


def go_tool(name: str, *findings: Finding, test_only: bool) -> TargetResult:
    return TargetResult("go-vulndb", name, 50, list(findings), test_only=test_only)


def test_test_infrastructure_findings_are_accepted_by_policy_and_publishing_ones_fail():
    policy = Policy("MEDIUM", "HIGH", frozenset(), accept_test_infrastructure=True)
    verdict = judge(
        [
            go_tool("kubelet", Finding("GO-1", "HIGH", "x"), test_only=True),
            go_tool("cosign", Finding("GO-1", "HIGH", "x"), test_only=False),
        ],
        policy, [], Mode.RELEASE, TODAY,
    )  # fmt: skip
    kubelet, cosign = verdict.results
    assert kubelet.status is Status.PASSED and kubelet.by_policy == 1 and kubelet.suppressed == 0
    assert "test infrastructure" in (kubelet.findings[0].accepted_by or "")
    assert cosign.status is Status.FAILED
    assert verdict.failures == ["go-vulndb on cosign: GO-1 [HIGH] x"]
    row = format_table(verdict.results, "MEDIUM").splitlines()[1].split()
    assert row == ["go-vulndb", "kubelet", "50", "0", "0", "1", "passed"]


def test_without_the_policy_rule_test_infrastructure_fails_like_the_rest():
    verdict = judge(
        [go_tool("kubelet", Finding("GO-1", "HIGH", "x"), test_only=True)],
        POLICY, [], Mode.LOCAL, TODAY,
    )  # fmt: skip
    assert verdict.failures == ["go-vulndb on kubelet: GO-1 [HIGH] x"]


def test_an_accepted_entry_for_test_infrastructure_is_unused_under_the_policy():
    policy = Policy("MEDIUM", "HIGH", frozenset(), accept_test_infrastructure=True)
    entry = accepted(scanner="go-vulndb", id="GO-1", target="kubelet")
    verdict = judge(
        [go_tool("kubelet", Finding("GO-1", "HIGH", "x"), test_only=True)],
        policy, [entry], Mode.LOCAL, TODAY,
    )  # fmt: skip
    assert [f for f in verdict.failures if "GO-1" in f and "matched nothing" in f]


def test_an_unscanned_test_tool_follows_the_one_rule_for_not_scanned():
    """Accepting test tools' findings by policy does not excuse a source that did not
    answer: a warning locally or where its source is tolerated, never in release."""
    policy = Policy("MEDIUM", "HIGH", frozenset(), accept_test_infrastructure=True)

    def unbuilt() -> list[TargetResult]:
        tool = not_scanned("go-vulndb", "kubelet", "not installed")
        tool.test_only = True
        return [tool]

    assert judge(unbuilt(), policy, [], Mode.LOCAL, TODAY).warnings
    in_ci = judge(unbuilt(), policy, [], Mode.CI, TODAY)
    assert [f for f in in_ci.failures if "kubelet" in f and "a failure in ci mode" in f]
    tolerated = judge(unbuilt(), policy, [], Mode.CI, TODAY, tolerated=frozenset({"go-vulndb"}))
    assert tolerated.ok and "tolerated in ci mode" in tolerated.warnings[0]
    in_release = judge(unbuilt(), policy, [], Mode.RELEASE, TODAY)
    assert [f for f in in_release.failures if "kubelet" in f and "a failure in release mode" in f]


def test_detail_globs_accept_each_flagged_key_on_its_own(tmp_path: Path):
    path = tmp_path / "accepted.toml"
    path.write_text(
        '[[finding]]\nscanner = "trivy-config"\nid = "KSV-01010"\n'
        'details = ["*_PORT", "*_WAIT"]\nreason = "numbers"\nreview_by = 2027-01-31\n'
    )
    entries = load_accepted(path)
    assert [e.detail for e in entries] == ["*_PORT", "*_WAIT"]
    flagged = [Finding("KSV-01010", "MEDIUM", "cm", detail=key) for key in ("A_PORT", "PASSWORD")]
    verdict = judge(
        [TargetResult("trivy-config", "brokkr-broker/minimal", 9, flagged)],
        POLICY, entries, Mode.LOCAL, TODAY,
    )  # fmt: skip
    assert verdict.failures[0] == (
        "trivy-config on brokkr-broker/minimal: KSV-01010 [MEDIUM] cm (PASSWORD)"
    )
    assert "detail *_WAIT) matched nothing" in verdict.failures[1]


def test_policy_settings_are_read_and_a_wrong_rule_is_named(tmp_path: Path):
    path = tmp_path / "policy.toml"
    base = 'fail_on = "HIGH"\nunrated_severity = "HIGH"\nlicences = []\n'
    path.write_text(base)
    assert load_policy(path).accept_test_infrastructure is False
    path.write_text(base + 'test_infrastructure = "accept"\ntrusted_registries = ["ghcr.io"]\n')
    policy = load_policy(path)
    assert policy.accept_test_infrastructure and policy.trusted_registries == ("ghcr.io",)
    path.write_text(base + 'test_infrastructure = "ignore"\n')
    with pytest.raises(ScanError, match="test_infrastructure = 'ignore'; use 'accept' or 'fail'"):
        load_policy(path)


def test_a_misspelt_severity_in_the_policy_is_named(tmp_path: Path):
    bad = tmp_path / "policy.toml"
    bad.write_text('fail_on = "SEVERE"\nunrated_severity = "HIGH"\nlicences = []\n')
    with pytest.raises(ScanError, match="unknown severity 'SEVERE'"):
        load_policy(bad)


def test_rendered_objects_get_the_release_namespace_except_cluster_scoped_ones():
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n  namespace: other\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: c\n"
    )
    documents = list(yaml.safe_load_all(render.with_namespace(text, "ns")))
    assert [d["metadata"].get("namespace") for d in documents] == ["ns", "other", None]


def test_scan_mode_defaults_to_ci_under_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CI", raising=False)
    assert gate.mode_from("") is Mode.LOCAL
    monkeypatch.setenv("CI", "true")
    assert gate.mode_from("") is Mode.CI
    assert gate.mode_from("release") is Mode.RELEASE
    with pytest.raises(
        ScanError, match="unknown scan mode 'prod'; choose one of local, ci, release"
    ):
        gate.mode_from("prod")


def test_target_names_drop_the_staging_prefixes():
    assert gate.target_name("/docker/Dockerfile") == "docker/Dockerfile"
    assert gate.target_name("charts/brokkr-agent/minimal.yaml") == "brokkr-agent/minimal"


def test_every_go_tool_and_companion_is_scanned_with_its_role():
    binaries = gate.go_tool_binaries()
    for name in ("helm", "cosign", "kube-apiserver", "kubectl", "trivy", "govulncheck"):
        assert name in binaries
    assert "checkov" not in binaries and "hadolint" not in binaries
    # What the release runs (release/signing.py, manifests.py, the image build) publishes.
    publishing = {name for name, binary in binaries.items() if not binary.test_only}
    assert publishing == {"helm", "cosign", "syft", "docker-buildx"}
    assert binaries["kube-apiserver"].test_only
    # The kind node's Kubernetes, one entry per minor, each from its own cache directory.
    for node in ("kubernetes-node-1.35", "kubernetes-node-1.37"):
        for name in ("kubelet", "kube-apiserver"):
            binary = binaries[f"{name} ({node})"]
            assert binary.test_only and binary.path.parent.parent.parent.name == node
            assert binary.optional  # a minor no session here built is "not built here"
    assert "kubelet" not in binaries
    assert not binaries["kube-apiserver"].optional  # [kubernetes] runs in every test run
    assert not binaries["helm"].optional


def test_a_go_tool_without_a_role_or_with_a_wrong_one_is_refused(tmp_path: Path):
    manifest = tmp_path / "tools.toml"
    entry = '[newtool]\nversion = "v1.0.0"\ngo_module = "example.com/newtool"\n'
    manifest.write_text(entry)
    with pytest.raises(ScanError, match=r'\[newtool\] has no role: add role = "publish"'):
        gate.go_tool_binaries(tmp_path, manifest)
    manifest.write_text(entry + 'role = "shipped"\n')
    with pytest.raises(ToolError, match="role = 'shipped'; use one of 'publish', 'test'"):
        gate.go_tool_binaries(tmp_path, manifest)
