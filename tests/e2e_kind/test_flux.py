"""Flux installs and upgrades the broker chart from an OCI registry (issue 17, GitOps).

Flux's source-controller and helm-controller, built pinned from the Go module proxy
(tools.toml), run as host processes with the kind cluster's kubeconfig, watching only
this test's namespace. source-controller serves its artifacts on 127.0.0.1 and
advertises that address, so helm-controller (also on the host) fetches the chart there.
Their CRDs come from the same modules.

The objects are the GitOps guide's Flux example (docs/operators/gitops.md) for the
broker, read from the guide; the test points them at a local registry (plain http,
`insecure`), has the cosign `verify` check a throw-away public key instead of the
release workflow's keyless identity, and gives the release the kind images and the
bundled PostgreSQL. Each published chart is signed as the release signs it (cosign v3,
a Sigstore bundle referring to the chart's digest, `release/signing.py`):

1. the OCIRepository asks for chart version A before it is published: the source
   reports the pull failure and the HelmRelease stays not Ready (the check can fail);
2. A is published (`helm push`) and signed: the HelmRelease becomes Ready with A
   installed and the broker pods Ready on the kind-loaded images;
3. B is published, signed, and the OCIRepository's tag changed to it: Flux upgrades
   the release to B (helm history: install, then upgrade), pods Ready again;
4. C is published unsigned and the tag changed to it: the source reports that no
   signature matched, and B stays the artifact and the installed release.
"""

from __future__ import annotations

import copy
import datetime
import functools
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from brokkr_dev.base import paths, toolchain
from brokkr_dev.base.commands import run
from brokkr_dev.base.localnet import free_port
from brokkr_dev.base.localnet import wait_for as poll
from brokkr_dev.base.process import stop_child
from brokkr_dev.clusters import e2e_kind
from brokkr_dev.clusters.api import crd_established
from brokkr_dev.release.registry import Registry
from brokkr_dev.release.signing import Signer
from tests.e2e_kind.conftest import (
    BROKER_CHART,
    READY_TIMEOUT,
    Cluster,
    KindImages,
    broker_values,
    ready,
    remove_namespace,
    restricted_namespace,
)
from tests.fixtures import docexec
from tests.fixtures.registry import LocalRegistry

pytestmark = pytest.mark.kind

NAMESPACE = "brokkr-flux"
GUIDE = paths.REPO_ROOT / "docs" / "operators" / "gitops.md"
SOURCE_API = "/apis/source.toolkit.fluxcd.io/v1"
HELM_API = "/apis/helm.toolkit.fluxcd.io/v2"
SOURCES = f"{SOURCE_API}/namespaces/{NAMESPACE}/ocirepositories"
# The chart published under versions of its own (never a real release's); C unsigned.
VERSION_A, VERSION_B, VERSION_C = "0.0.1-flux.1", "0.0.1-flux.2", "0.0.1-flux.3"
CHART_REPOSITORY = "charts/brokkr-broker"
# The Secret with the public key that the OCIRepository's `verify` checks against.
COSIGN_SECRET = "cosign-pub"
START_TIMEOUT = 60


def guide_flux_objects() -> list[dict[str, Any]]:
    """The guide's OCIRepositories and HelmReleases, as written there."""
    return docexec.yaml_objects(GUIDE, "OCIRepository", "HelmRelease")


def guide_broker_objects() -> tuple[dict[str, Any], dict[str, Any]]:
    """The guide's broker OCIRepository (the signed one) and its HelmRelease."""
    documents = guide_flux_objects()
    source = next(d for d in documents if d["kind"] == "OCIRepository" and "verify" in d["spec"])
    release = next(
        d
        for d in documents
        if d["kind"] == "HelmRelease"
        and d["spec"]["chartRef"]["name"] == source["metadata"]["name"]
    )
    return source, release


def local_objects(
    registry: str, tag: str, values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The guide's objects pointed at the local registry, in this test's namespace."""
    guide_source, guide_release = guide_broker_objects()
    source, release = copy.deepcopy(guide_source), copy.deepcopy(guide_release)
    for found in (source, release):
        found["metadata"]["namespace"] = NAMESPACE
    # The guide trusts the release workflow's keyless identity; the charts here are
    # signed with a throw-away key, so Flux checks them against its public key.
    source["spec"]["verify"] = {"provider": "cosign", "secretRef": {"name": COSIGN_SECRET}}
    source["spec"].update(
        url=f"oci://{registry}/charts/brokkr-broker", insecure=True, ref={"tag": tag}
    )
    release["spec"]["values"] = values
    return source, release


class Controller:
    """One Flux controller as a host process, stopped by its PID."""

    def __init__(self, binary: Path, args: list[str], env: dict[str, str], log: Path) -> None:
        self.health = free_port()
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    "--watch-all-namespaces=false",
                    f"--health-addr=127.0.0.1:{self.health}",
                    f"--metrics-addr=127.0.0.1:{free_port()}",
                    "--log-level=debug",
                    *args,
                ],
                env={**env, "RUNTIME_NAMESPACE": NAMESPACE},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.log.name} exited:\n{self.tail()}")
            return requests.get(f"http://127.0.0.1:{self.health}/readyz", timeout=2).ok

        poll(answers, START_TIMEOUT, f"{self.log.stem} to answer /readyz")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        stop_child(self.process, timeout=15)


@dataclass
class Flux:
    """The running controllers and a local registry, in the test's namespace."""

    cluster: Cluster
    registry: LocalRegistry
    work: Path
    controllers: list[Controller]
    signer: Signer

    def publish(self, version: str, *, signed: bool = True) -> None:
        """The working tree's broker chart, as `version`, pushed to the local registry
        and (unless told otherwise) signed by its digest as a release signs it."""
        target = self.work / version
        self.cluster.helm("package", BROKER_CHART, "--version", version, "--destination", target)
        (package,) = target.glob("*.tgz")
        pushed = self.cluster.helm(
            "push", package, f"oci://{self.registry.host}/charts", "--plain-http"
        )
        assert f"{self.registry.host}/{CHART_REPOSITORY}:{version}" in pushed.stdout + pushed.stderr
        if signed:
            digest = Registry(self.registry.host).digest(CHART_REPOSITORY, version)
            assert digest is not None, f"{CHART_REPOSITORY}:{version} is not in the registry"
            self.signer.sign(self.registry.host, CHART_REPOSITORY, digest)

    def logs(self) -> str:
        return "\n".join(f"--- {c.log.name}\n{c.tail()}" for c in self.controllers)


def crd_files() -> list[Path]:
    manifest = toolchain.load_manifest()
    files = []
    for name in ("source-controller", "helm-controller"):
        bases = toolchain.module_dir(manifest[name]) / "config" / "crd" / "bases"
        files += sorted(bases.glob("*.yaml"))
    return files


@pytest.fixture(scope="module")
def flux(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flux]:
    """CRDs, the namespace with the public key's Secret, both controllers Ready, an empty
    local registry and a throw-away cosign key to sign with."""
    work = tmp_path_factory.mktemp("flux")
    manifest = toolchain.load_manifest()
    cosign = toolchain.ensure(manifest["cosign"], log=print)
    run([cosign, "generate-key-pair"], cwd=work, env={**os.environ, "COSIGN_PASSWORD": ""})
    started = time.monotonic()
    binaries = {
        name: toolchain.ensure(manifest[name], log=print)
        for name in ("source-controller", "helm-controller")
    }
    e2e_kind.record("flux_controllers_ensure_s", time.monotonic() - started)
    crds = crd_files()
    for crd in crds:
        cluster.kubectl("apply", "--server-side", "-f", crd)
    for crd in crds:
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        poll(functools.partial(crd_established, cluster.api, name), 60, f"CRD {name} Established")
    restricted_namespace(cluster, NAMESPACE)
    cluster.api.create(
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": COSIGN_SECRET},
            "stringData": {"cosign.pub": (work / "cosign.pub").read_text()},
        },
    )
    registry = LocalRegistry(tmp_path_factory.mktemp("flux-registry"))
    state = Flux(cluster, registry, work, [], Signer(str(cosign), key=str(work / "cosign.key")))
    storage = free_port()
    (work / "artifacts").mkdir()  # source-controller refuses a storage path that is missing
    try:
        registry.start()
        state.controllers.append(
            Controller(
                binaries["source-controller"],
                [
                    f"--storage-path={work / 'artifacts'}",
                    f"--storage-addr=127.0.0.1:{storage}",
                    f"--storage-adv-addr=127.0.0.1:{storage}",
                ],
                cluster.kind.env,
                work / "source-controller.log",
            )
        )
        state.controllers.append(
            Controller(
                binaries["helm-controller"], [], cluster.kind.env, work / "helm-controller.log"
            )
        )
        for controller in state.controllers:
            controller.wait_ready()
        yield state
    finally:
        remove_flux_objects(cluster)
        for controller in state.controllers:
            controller.stop()
        registry.stop()
        remove_namespace(cluster, NAMESPACE)
        for crd in crds:
            cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", crd, check=False)


def remove_flux_objects(cluster: Cluster) -> None:
    """Delete the HelmRelease (helm-controller uninstalls it) and the OCIRepository
    while the controllers run; strip the finalizers of any a dead controller left."""
    collections = [
        f"{HELM_API}/namespaces/{NAMESPACE}/helmreleases",
        f"{SOURCE_API}/namespaces/{NAMESPACE}/ocirepositories",
    ]
    for collection in collections:
        cluster.api.request("DELETE", collection)
    try:
        poll(
            lambda: not any(cluster.api.get(c)["items"] for c in collections),
            120,
            "the Flux objects to be deleted",
        )
    except TimeoutError:
        for collection in collections:
            for item in cluster.api.get(collection)["items"]:
                name = item["metadata"]["name"]
                cluster.api.patch(f"{collection}/{name}", {"metadata": {"finalizers": None}})


def condition(found: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    conditions = found.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def current(found: dict[str, Any]) -> bool:
    """The controller has looked at the object's latest spec."""
    return found.get("status", {}).get("observedGeneration") == found["metadata"]["generation"]


def helm_release(cluster: Cluster) -> dict[str, Any]:
    return cluster.api.get(f"{HELM_API}/namespaces/{NAMESPACE}/helmreleases/brokkr")


def installed_version(cluster: Cluster, version: str) -> dict[str, Any] | None:
    """The HelmRelease when it is Ready with `version` of the chart from the source's
    current artifact installed. helm-controller appends the artifact's digest to the
    chart version (`<version>+<12 hex digits>`), so a re-pushed tag is noticed too."""
    artifact = cluster.api.get(f"{SOURCES}/brokkr-broker").get("status", {}).get("artifact")
    tag, _, digest = (artifact or {}).get("revision", "").partition("@sha256:")
    found = helm_release(cluster)
    latest = (found.get("status", {}).get("history") or [{}])[0]
    deployed = (
        tag == version
        and latest.get("chartVersion") == f"{version}+{digest[:12]}"
        and latest.get("status") == "deployed"
    )
    return (
        found if deployed and current(found) and condition(found).get("status") == "True" else None
    )


def broker_pods_ready(cluster: Cluster, image: str) -> list[dict[str, Any]] | None:
    selector = "app.kubernetes.io/instance=brokkr,app.kubernetes.io/component=broker"
    pods = cluster.pods(NAMESPACE, selector)
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    images = {c["image"] for p in running for c in p["spec"]["containers"]}
    return running if running and all(ready(p) for p in running) and images == {image} else None


def wait(flux: Flux, check: Any, what: str) -> Any:
    try:
        return poll(check, READY_TIMEOUT, what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{flux.logs()}") from exc


def test_flux_installs_the_broker_chart_from_oci_then_upgrades_it(
    flux: Flux, kind_images: KindImages
):
    cluster = flux.cluster
    source, release = local_objects(flux.registry.host, VERSION_A, broker_values(kind_images))
    cluster.api.create(SOURCES, source)
    cluster.api.create(f"{HELM_API}/namespaces/{NAMESPACE}/helmreleases", release)

    # 1. Version A is not published yet: the source fails, nothing is installed.
    failed = wait(
        flux,
        lambda: (
            (found := cluster.api.get(f"{SOURCES}/brokkr-broker"))
            and condition(found).get("status") == "False"
            and condition(found)
        ),
        "the OCIRepository to report the missing tag",
    )
    assert VERSION_A in failed["message"], failed
    waiting = wait(
        flux,
        lambda: (c := condition(helm_release(cluster))).get("reason") == "SourceNotReady" and c,
        "the HelmRelease to report its source not Ready",
    )
    assert waiting["status"] == "False", waiting
    assert not cluster.pods(NAMESPACE, "app.kubernetes.io/instance=brokkr")

    # 2. A is published; a reconcile request (what `flux reconcile` does) picks it up.
    flux.publish(VERSION_A)
    started = time.monotonic()
    requested = datetime.datetime.now(datetime.UTC).isoformat()
    cluster.api.patch(
        f"{SOURCES}/brokkr-broker",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": requested}}},
    )
    wait(flux, lambda: installed_version(cluster, VERSION_A), f"HelmRelease Ready with {VERSION_A}")
    wait(flux, lambda: broker_pods_ready(cluster, kind_images.broker), "broker pods Ready")
    install_s = time.monotonic() - started
    e2e_kind.record("flux_install_to_ready_s", install_s)

    # 3. B is published and the source's tag moved to it: Flux upgrades the release.
    flux.publish(VERSION_B)
    started = time.monotonic()
    cluster.api.patch(f"{SOURCES}/brokkr-broker", {"spec": {"ref": {"tag": VERSION_B}}})
    upgraded = wait(
        flux, lambda: installed_version(cluster, VERSION_B), f"HelmRelease Ready with {VERSION_B}"
    )
    wait(flux, lambda: broker_pods_ready(cluster, kind_images.broker), "broker pods Ready")
    upgrade_s = time.monotonic() - started
    e2e_kind.record("flux_upgrade_to_ready_s", upgrade_s)
    print(
        f"Flux: install from oci:// to Ready {install_s:.1f} s, upgrade to Ready {upgrade_s:.1f} s"
    )

    versions = [h["chartVersion"] for h in upgraded["status"]["history"]]
    assert [v.split("+")[0] for v in versions] == [VERSION_B, VERSION_A], versions
    history = yaml.safe_load(
        cluster.helm("history", "brokkr", "--namespace", NAMESPACE, "--output", "yaml").stdout
    )
    assert [(h["revision"], h["chart"], h["status"]) for h in history] == [
        (1, f"brokkr-broker-{versions[1]}", "superseded"),
        (2, f"brokkr-broker-{versions[0]}", "deployed"),
    ], history
    assert history[1]["description"] == "Upgrade complete", history

    # 4. C is published unsigned and the tag moved to it: verification fails, B stays.
    flux.publish(VERSION_C, signed=False)
    cluster.api.patch(f"{SOURCES}/brokkr-broker", {"spec": {"ref": {"tag": VERSION_C}}})

    def refused_now() -> dict[str, Any] | None:
        # A failed reconcile leaves the object's observedGeneration behind; the
        # condition's own says it is about the new tag.
        found = cluster.api.get(f"{SOURCES}/brokkr-broker")
        verified = condition(found, "SourceVerified")
        about_c = verified.get("observedGeneration") == found["metadata"]["generation"]
        return found if about_c and verified.get("status") == "False" else None

    refused = wait(flux, refused_now, f"the OCIRepository to refuse the unsigned {VERSION_C}")
    verified = condition(refused, "SourceVerified")
    assert "no matching signatures" in verified["message"], verified
    assert refused["status"]["artifact"]["revision"].startswith(f"{VERSION_B}@"), refused["status"]
    still = yaml.safe_load(
        cluster.helm("history", "brokkr", "--namespace", NAMESPACE, "--output", "yaml").stdout
    )
    assert [h["chart"] for h in still] == [h["chart"] for h in history], still


def test_the_guides_flux_objects_pass_a_server_side_dry_run(flux: Flux):
    """All four Flux objects of the guide, as written, against the controllers' CRDs."""
    objects = guide_flux_objects()
    assert len(objects) == 4, objects
    for found in objects:
        # Own names: the other test's objects of the same names may still be there.
        found["metadata"].update(namespace=NAMESPACE, name=f"guide-{found['metadata']['name']}")
        done = flux.cluster.kind.kubectl(
            "apply", "--server-side", "--dry-run=server", "-f", "-",
            input_text=yaml.safe_dump(found), check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
