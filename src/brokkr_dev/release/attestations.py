"""The attestations attached to an artifact digest, read straight from the registry.

cosign (v2 layout) stores every attestation of a digest as one DSSE envelope layer
of the manifest tagged `sha256-<hex>.att`. These reads are NOT verification (cosign
verify-attestation is): the pipeline uses them to know what is attached already,
so a resumed run adds only what is missing, and to read back published documents
(the SBOMs and the VEX attached to a release).
"""

from __future__ import annotations

import base64
import hashlib
import json

from brokkr_dev.release import ReleaseError
from brokkr_dev.release.registry import Registry

DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
OPENVEX = "https://openvex.dev/ns"
# The name cosign's --type takes for each predicate type we attest (a URI is taken as is).
COSIGN_TYPES = {SPDX: "spdxjson", CYCLONEDX: "cyclonedx", OPENVEX: "openvex"}


def attestation_tag(digest: str) -> str:
    """Where cosign stores the attestations of a digest: tag `sha256-<hex>.att`."""
    return digest.replace(":", "-") + ".att"


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


def statements(registry: Registry, repo: str, digest: str) -> list[dict]:
    """Every in-toto statement attached to repo@digest (empty when none)."""
    manifest = registry.manifest(repo, attestation_tag(digest))
    if manifest is None:
        return []
    found = []
    for layer in json.loads(manifest.body).get("layers") or []:
        if layer.get("mediaType") != DSSE_LAYER:
            continue
        data = registry.blob(repo, layer["digest"])
        if "sha256:" + hashlib.sha256(data).hexdigest() != layer["digest"]:
            raise ReleaseError(
                f"attestation blob {repo}@{layer['digest']} does not match its digest"
            )
        found.append(decode(data))
    return found


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
