"""The signatures and attestations attached to an artifact digest, read straight
from the registry, in both of cosign's layouts:

- cosign v3 (the bundle format, what releases sign with now): every signature and
  every attestation is its own Sigstore bundle, one layer of an OCI 1.1 referrer
  manifest whose `subject` is the digest and whose annotation
  `dev.sigstore.bundle.predicateType` names what it holds; a signature is an
  in-toto statement of type `https://sigstore.dev/cosign/sign/v1`. Registries
  without the referrers API list them in the index tagged `sha256-<hex>`
  (registry.referrers);
- cosign v2 (releases signed before the switch): the signatures in the manifest
  tagged `sha256-<hex>.sig`, every attestation a DSSE envelope layer of the
  manifest tagged `sha256-<hex>.att`.

These reads are NOT verification (cosign verify and verify-attestation are): the
pipeline uses them to know what is attached already, so a resumed run adds only
what is missing, and to read back published documents (the SBOMs and the VEX
attached to a release).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.registry import Registry, referrers_tag

DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
# cosign v3: a Sigstore bundle per referrer manifest (application/vnd.dev.sigstore.bundle.v0.3+json)
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle"
BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
# what `cosign sign` of v3 signs: an in-toto statement of this type about the digest
SIGNATURE = "https://sigstore.dev/cosign/sign/v1"
SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
OPENVEX = "https://openvex.dev/ns"
# The name cosign's --type takes for each predicate type we attest (a URI is taken as is).
COSIGN_TYPES = {SPDX: "spdxjson", CYCLONEDX: "cyclonedx", OPENVEX: "openvex"}


def attestation_tag(digest: str) -> str:
    """Where cosign v2 stored the attestations of a digest: tag `sha256-<hex>.att`."""
    return referrers_tag(digest) + ".att"


def cosign_type(predicate_type: str) -> str:
    return COSIGN_TYPES.get(predicate_type, predicate_type)


def decode(envelope: bytes | str) -> dict:
    """The in-toto statement inside a DSSE envelope (JSON), without checking signatures."""
    try:
        outer = json.loads(envelope)
        statement = json.loads(base64.b64decode(outer["payload"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"not a DSSE envelope holding an in-toto statement ({exc})") from None
    if not isinstance(statement, dict):
        raise ReleaseError("the DSSE payload is not an in-toto statement (a JSON object)")
    return statement


def _checked_blob(registry: Registry, repo: str, digest: str) -> bytes:
    data = registry.blob(repo, digest)
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise ReleaseError(f"attestation blob {repo}@{digest} does not match its digest")
    return data


@dataclass(frozen=True)
class Bundle:
    """One Sigstore bundle referring to a digest: its referrer manifest, the predicate
    type it claims and the DSSE envelope inside (JSON, signatures unchecked)."""

    manifest: str
    predicate_type: str
    envelope: bytes


def bundle_envelope(data: bytes) -> bytes:
    """The DSSE envelope (JSON) inside a Sigstore bundle (JSON)."""
    try:
        envelope = json.loads(data)["dsseEnvelope"]
    except (ValueError, KeyError, TypeError):
        raise ReleaseError("not a Sigstore bundle holding a DSSE envelope") from None
    return json.dumps(envelope).encode()


def bundle_layers(body: object, subject: str) -> tuple[str, list[dict]]:
    """What a referrer manifest (parsed JSON) of `subject` holds as Sigstore bundles:
    the predicate type its annotation claims, and its bundle layers (none when it
    refers to another digest or holds no bundle). Read from a registry or a layout."""
    if not isinstance(body, dict) or (body.get("subject") or {}).get("digest") != subject:
        return "", []
    claimed = str((body.get("annotations") or {}).get(BUNDLE_PREDICATE, ""))
    layers = [
        layer
        for layer in body.get("layers") or []
        if str(layer.get("mediaType", "")).startswith(BUNDLE_MEDIA_TYPE)
    ]
    return claimed, layers


def bundles(registry: Registry, repo: str, digest: str) -> list[Bundle]:
    """The Sigstore bundles (cosign v3) whose referrer manifests name repo@digest."""
    found = []
    for descriptor in registry.referrers(repo, digest):
        if not str(descriptor.get("artifactType", BUNDLE_MEDIA_TYPE)).startswith(BUNDLE_MEDIA_TYPE):
            continue  # another tool's referrer
        manifest = registry.manifest(repo, descriptor["digest"])
        if manifest is None:
            continue  # listed in a stale fallback index
        claimed, layers = bundle_layers(json.loads(manifest.body), digest)
        for layer in layers:
            envelope = bundle_envelope(_checked_blob(registry, repo, layer["digest"]))
            kind = str(decode(envelope).get("predicateType") or claimed)
            found.append(Bundle(manifest.digest, kind, envelope))
    return found


def legacy_statements(registry: Registry, repo: str, digest: str) -> list[dict]:
    """The in-toto statements in cosign v2's `sha256-<hex>.att` manifest (empty when none)."""
    manifest = registry.manifest(repo, attestation_tag(digest))
    if manifest is None:
        return []
    found = []
    for layer in json.loads(manifest.body).get("layers") or []:
        if layer.get("mediaType") != DSSE_LAYER:
            continue
        found.append(decode(_checked_blob(registry, repo, layer["digest"])))
    return found


def statements(registry: Registry, repo: str, digest: str) -> list[dict]:
    """Every in-toto statement attested to repo@digest, in either layout (empty when
    none); v3 signatures (statements of type SIGNATURE) are not attestations."""
    found = [decode(b.envelope) for b in bundles(registry, repo, digest)]
    found = [s for s in found if s.get("predicateType") != SIGNATURE]
    return found + legacy_statements(registry, repo, digest)


def signature_tag(digest: str) -> str:
    """Where cosign v2 stored the signature of a digest: tag `sha256-<hex>.sig`."""
    return referrers_tag(digest) + ".sig"


def is_signed(registry: Registry, repo: str, digest: str) -> bool:
    """Whether repo@digest carries a cosign signature, in either layout (unverified)."""
    if any(b.predicate_type == SIGNATURE for b in bundles(registry, repo, digest)):
        return True
    return signature_tag(digest) in registry.tags(repo)


def predicate_types(registry: Registry, repo: str, digest: str) -> set[str]:
    """The predicate types attached to repo@digest."""
    return {str(s.get("predicateType")) for s in statements(registry, repo, digest)}


def predicate(registry: Registry, repo: str, digest: str, predicate_type: str) -> dict:
    """The (first) predicate of that type attached to repo@digest, or ReleaseError."""
    for found in statements(registry, repo, digest):
        if found.get("predicateType") == predicate_type:
            return dict(found["predicate"])
    raise ReleaseError(
        f"{registry.host}/{repo}@{digest} has no {predicate_type} attestation; re-run the "
        "release to attach it"
    )
