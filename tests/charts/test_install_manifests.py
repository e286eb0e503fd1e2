"""The raw install manifests a release attaches (brokkr_dev.release.manifests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from brokkr_dev.base import paths
from brokkr_dev.release import ReleaseError, manifests

pytestmark = [pytest.mark.charts]
CHARTS = paths.REPO_ROOT / "charts"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    files = manifests.write_install_manifests(CHARTS, tmp_path_factory.mktemp("assets"))
    assert [f.name for f in files] == ["brokkr-broker-install.yaml", "brokkr-agent-install.yaml"]
    return {f.name: [d for d in yaml.safe_load_all(f.read_text()) if d] for f in files}


def kinds(documents: list[dict]) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}


def test_no_credential_is_published(rendered):
    for documents in rendered.values():
        assert not [d for d in documents if d["kind"] == "Secret" and d.get("data")]


def test_broker_reads_its_secrets_from_the_documented_names(rendered):
    objects = kinds(rendered["brokkr-broker-install.yaml"])
    assert {"Deployment/brokkr-broker", "StatefulSet/brokkr-broker-postgresql"} <= set(objects)
    spec = objects["Deployment/brokkr-broker"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    # The PAK hash is a mounted Secret file, never an environment variable.
    assert env["BROKKR__BROKER__PAK_HASH_FILE"]["value"] == "/etc/brokkr/admin/pak-hash"
    assert "BROKKR__BROKER__PAK_HASH" not in env
    secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    assert {"brokkr-postgresql", "brokkr-admin"} <= secrets


def test_agent_has_the_documented_names_and_namespace(rendered):
    objects = kinds(rendered["brokkr-agent-install.yaml"])
    config = objects["ConfigMap/brokkr-agent"]["data"]
    assert config["BROKKR__AGENT__AGENT_NAME"] == "brokkr-agent"
    assert config["BROKKR__AGENT__CLUSTER_NAME"] == "default"
    assert config["BROKKR__AGENT__BROKER_URL"] == "http://brokkr-broker.brokkr.svc:3000"
    bindings = [d for d in rendered["brokkr-agent-install.yaml"] if d["kind"].endswith("Binding")]
    assert bindings and all(s["namespace"] == "brokkr" for b in bindings for s in b["subjects"])


def test_the_header_says_how_to_apply(tmp_path: Path):
    text = dict(manifests.install_manifests(CHARTS))["brokkr-agent-install.yaml"]
    assert text.startswith("# Brokkr brokkr-agent ")
    assert "kubectl apply --server-side -n brokkr -f brokkr-agent-install.yaml" in text


def test_a_secret_with_data_is_refused(monkeypatch):
    broker = manifests.INSTALL_MANIFESTS[0]
    minted = manifests.InstallManifest(broker.chart, broker.release, {}, broker.needs)
    with pytest.raises(ReleaseError, match="would publish Secret"):
        manifests.render(CHARTS, minted)
