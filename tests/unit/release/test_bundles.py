"""Reading cosign's two layouts from a registry and from an air-gap layout: v3's
Sigstore bundles as OCI 1.1 referrers (the referrers API, or the `sha256-<hex>`
fallback index), and v2's `.sig`/`.att` tags of older releases. The shapes are the
ones cosign v3.1.3 wrote to a Distribution 2.8 registry (docs/cosign-v3-notes.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokkr_dev.release import airgap, attestations, signing
from brokkr_dev.release.attestations import SIGNATURE, SPDX
from brokkr_dev.release.registry import OCI_INDEX, Registry, referrers_tag
from tests.fixtures.http import QuietHandler, Recorder

IMAGE = "sha256:" + "e4" * 32
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def statement(predicate_type: str, subject: str = IMAGE) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": subject.split(":")[1]}}],
        "predicateType": predicate_type,
        "predicate": {},
    }


def envelope(body: dict) -> dict:
    payload = base64.b64encode(json.dumps(body).encode()).decode()
    return {"payload": payload, "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "c2ln"}]}  # fmt: skip


class Store:
    """Manifests (by digest and tag) and blobs of one repository."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.referrers_api = False

    def blob(self, data: bytes) -> dict:
        self.blobs[digest_of(data)] = data
        return {"digest": digest_of(data), "size": len(data)}

    def manifest(self, body: dict, media_type: str, tag: str | None = None) -> dict:
        data = json.dumps(body).encode()
        self.manifests[digest_of(data)] = (data, media_type)
        if tag:
            self.manifests[tag] = (data, media_type)
        return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}

    def bundle(self, predicate_type: str, subject: str = IMAGE) -> str:
        """A referrer manifest as cosign v3 writes it; the fallback index updated."""
        bundle = {"mediaType": BUNDLE, "verificationMaterial": {"publicKey": {"hint": "x"}},
                  "dsseEnvelope": envelope(statement(predicate_type, subject))}  # fmt: skip
        layer = self.blob(json.dumps(bundle).encode())
        config = self.blob(b"{}")
        descriptor = self.manifest(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", **config},
                "layers": [{"mediaType": BUNDLE, **layer}],
                "annotations": {attestations.BUNDLE_PREDICATE: predicate_type},
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 418},
                "artifactType": BUNDLE,
            },
            OCI_MANIFEST,
        )
        tag = referrers_tag(subject)
        index = json.loads(self.manifests[tag][0]) if tag in self.manifests else {
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}  # fmt: skip
        index["manifests"].append({**descriptor, "artifactType": BUNDLE})
        self.manifest(index, OCI_INDEX, tag)
        return descriptor["digest"]


class Server(Recorder):
    def __init__(self, store: Store) -> None:
        super().__init__(Handler)
        self.store = store


class Handler(QuietHandler):
    server: Server

    def _send(self, status: int, data: bytes, media_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        store, parts = self.server.store, self.path.split("/")
        # /v2/brokkr/tiny/<kind>/<reference>
        kind, reference = parts[-2], parts[-1]
        if kind == "referrers" and store.referrers_api:
            found = json.loads(store.manifests.get(referrers_tag(reference), (b"{}", ""))[0])
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                     "manifests": found.get("manifests", [])}  # fmt: skip
            self._send(200, json.dumps(index).encode(), OCI_INDEX)
        elif kind == "manifests" and reference in store.manifests:
            self._send(200, *store.manifests[reference])
        elif kind == "blobs" and reference in store.blobs:
            self._send(200, store.blobs[reference], "application/octet-stream")
        elif parts[-1].startswith("list"):
            tags = [t for t in store.manifests if not t.startswith("sha256:")]
            self._send(200, json.dumps({"tags": tags}).encode(), "application/json")
        else:
            self._send(404, b"404 page not found")  # what Distribution 2.8 answers


@pytest.fixture
def store() -> Iterator[Store]:
    yield Store()


@pytest.fixture
def registry(store: Store) -> Iterator[Registry]:
    server = Server(store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Registry(server.host)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("api", [False, True], ids=["fallback-tag", "referrers-api"])
def test_v3_bundles_are_read_from_the_referrers_api_or_the_fallback_tag(
    store: Store, registry: Registry, api: bool
):
    store.referrers_api = api
    assert registry.referrers("brokkr/tiny", IMAGE) == []
    assert not attestations.is_signed(registry, "brokkr/tiny", IMAGE)
    store.bundle(SPDX)
    store.bundle(SPDX, subject="sha256:" + "ab" * 32)  # another digest's
    # an attestation alone is no signature
    assert not attestations.is_signed(registry, "brokkr/tiny", IMAGE)
    assert attestations.predicate_types(registry, "brokkr/tiny", IMAGE) == {SPDX}
    signature = store.bundle(SIGNATURE)
    assert attestations.is_signed(registry, "brokkr/tiny", IMAGE)
    found = attestations.bundles(registry, "brokkr/tiny", IMAGE)
    assert sorted(b.predicate_type for b in found) == sorted([SPDX, SIGNATURE])
    assert signature in {b.manifest for b in found}
    # the signature's statement is not counted as an attestation
    assert [
        s["predicateType"] for s in attestations.statements(registry, "brokkr/tiny", IMAGE)
    ] == [SPDX]


def test_v2_tags_of_older_releases_are_still_read(store: Store, registry: Registry):
    layer = store.blob(json.dumps(envelope(statement(SPDX))).encode())
    store.manifest(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": store.blob(b"{}"),
         "layers": [{"mediaType": attestations.DSSE_LAYER, **layer}]},
        OCI_MANIFEST, tag=attestations.attestation_tag(IMAGE),
    )  # fmt: skip
    store.manifest({"schemaVersion": 2}, OCI_MANIFEST, tag=attestations.signature_tag(IMAGE))
    assert attestations.is_signed(registry, "brokkr/tiny", IMAGE)
    assert attestations.predicate_types(registry, "brokkr/tiny", IMAGE) == {SPDX}


def test_a_bundle_blob_that_does_not_match_its_digest_is_refused(store: Store, registry: Registry):
    store.bundle(SPDX)
    for digest, data in store.blobs.items():
        if data != b"{}":
            store.blobs[digest] = data.replace(b"vnd.dev", b"vnd.xxx")
    with pytest.raises(Exception, match="does not match its digest"):
        attestations.bundles(registry, "brokkr/tiny", IMAGE)


def test_verify_output_counts_signatures_only():
    attestation = [{"critical": {"type": SPDX}, "optional": {}}]
    assert signing.signed_entries(json.dumps(attestation)) == []
    v3 = [*attestation, {"critical": {"type": SIGNATURE}, "optional": {}}]
    v2 = [{"critical": {"type": "cosign container image signature"}, "optional": None}]
    noise = "WARNING: Skipping tlog verification is an insecure practice\n"
    assert len(signing.signed_entries(noise + json.dumps(v3))) == 1
    assert len(signing.signed_entries(json.dumps(v2))) == 1


def test_keyed_signing_names_no_service_and_no_tuf(tmp_path: Path):
    flags = signing.keyed_material(tmp_path)
    assert flags[0::2] == ["--signing-config", "--trusted-root"]
    config = json.loads(Path(flags[1]).read_text())
    assert config == {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                      "rekorTlogConfig": {}, "tsaConfig": {}}  # fmt: skip
    assert "rekor" not in Path(flags[3]).read_text().lower()
    key = signing.Signer("cosign", key="cosign.key")._key_flags(tmp_path)
    assert "--tlog-upload=false" not in key  # refused by v3 together with a signing config


def test_an_air_gap_layout_finds_the_bundles_cosign_save_left_as_blobs(tmp_path: Path):
    """`cosign save` of v3 lists only the image in index.json; the referrer manifests
    and bundles are blobs beside it."""
    store = Store()
    image = store.manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST}, OCI_MANIFEST)
    signature = store.bundle(SIGNATURE, subject=image["digest"])
    sbom = store.bundle(SPDX, subject=image["digest"])
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for digest, (data, _) in store.manifests.items():
        if digest.startswith("sha256:"):
            (blobs / digest.split(":")[1]).write_bytes(data)
    for digest, data in store.blobs.items():
        (blobs / digest.split(":")[1]).write_bytes(data)
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {**image, "annotations": {airgap.KIND: airgap.IMAGE_KIND}}
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    layout = airgap.read_layout(tmp_path)
    assert (layout.signatures, layout.attestations) == (None, None)
    assert sorted(layout.bundles) == sorted([(signature, SIGNATURE), (sbom, SPDX)])
    assert layout.signed and layout.attested
    assert airgap.layout_problems(tmp_path, image["digest"]) == []
    (blobs / sbom.split(":")[1]).unlink()
    layout = airgap.read_layout(tmp_path)
    assert layout.signed and not layout.attested
