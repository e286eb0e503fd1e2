"""Supply chain: cosign signatures and attestations (by digest), and syft SBOMs.

cosign v3 signs in the Sigstore bundle format: each signature and attestation is a
bundle stored as an OCI 1.1 referrer of the digest (release/attestations.py).

With a key (local tests, air-gapped use) signatures stay out of the public
transparency log: cosign v3 takes that as a signing config that names no service
(no Rekor, no timestamp authority), and a trusted root that names none either, so
that it does not ask Sigstore's TUF repository for one (KEYED_SIGNING_CONFIG,
KEYED_TRUSTED_ROOT). Without a key, cosign signs keyless with the GitHub Actions
OIDC identity, using the public instance's signing config from TUF, and records the
signature in Rekor, which is how users verify it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base.commands import run
from brokkr_dev.release import ReleaseError
from brokkr_dev.release.attestations import (
    CYCLONEDX,
    SIGNATURE,
    SPDX,
    cosign_type,
    decode,
)
from brokkr_dev.release.registry import is_loopback

OIDC_ISSUER = "https://token.actions.githubusercontent.com"
TIMEOUT = 600
# cosign v3's offline signing with a key: no transparency log, no timestamp authority
# (`cosign signing-config create` with no service writes the same), and an empty
# trusted root so that cosign does not fetch one from TUF.
KEYED_SIGNING_CONFIG = {
    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
    "rekorTlogConfig": {},
    "tsaConfig": {},
}
KEYED_TRUSTED_ROOT = {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}
# What `cosign verify --output json` reports as a signature's type: a v3 bundle's
# statement type, and the payload type of v2's simple signing (older releases).
SIGNATURE_TYPES = frozenset({SIGNATURE, "cosign container image signature"})


def signed_entries(output: str) -> list[dict]:
    """The entries of `cosign verify --output json` that are signatures.

    cosign v3 reports every verified bundle about the digest, attestations included
    (`critical.type` is then the predicate type): an image with only an SBOM passes
    `cosign verify`. A signature is an entry of a signature type."""
    found = []
    for raw in output.splitlines():
        line = raw.strip()
        if not line.startswith("["):
            continue
        try:
            entries = json.loads(line)
        except ValueError:
            continue
        for entry in entries if isinstance(entries, list) else []:
            kind = ((entry or {}).get("critical") or {}).get("type")
            if kind in SIGNATURE_TYPES:
                found.append(entry)
    return found


def keyed_material(directory: Path) -> list[str]:
    """The flags of cosign v3's offline keyed signing, their files written to directory."""
    config, root = directory / "signing-config.json", directory / "trusted-root.json"
    config.write_text(json.dumps(KEYED_SIGNING_CONFIG))
    root.write_text(json.dumps(KEYED_TRUSTED_ROOT))
    return ["--signing-config", str(config), "--trusted-root", str(root)]


@dataclass(frozen=True)
class Signer:
    """How to run cosign and syft for one release."""

    cosign: str
    syft: str | None = None
    key: str | None = None  # a cosign private key file; None means keyless
    identity: str | None = None  # keyless: the workflow identity that must have signed

    def _flags(self, host: str) -> list[str]:
        flags = []
        if is_loopback(host):
            flags += ["--allow-http-registry", "--allow-insecure-registry"]
        return flags

    def _run(self, args: list[str], what: str, env: dict[str, str] | None = None) -> str:
        environment = {**os.environ, **(env or {})}
        environment.setdefault("COSIGN_PASSWORD", "")
        return run(args, env=environment, timeout=TIMEOUT, hint=f"{what}: re-run to resume").stdout

    def _key_flags(self, workdir: Path) -> list[str]:
        # Keyed signatures stay out of the public log; keyless ones must be in it.
        return ["--key", self.key, *keyed_material(workdir)] if self.key else []

    def sign(self, host: str, repo: str, digest: str) -> None:
        ref = f"{host}/{repo}@{digest}"
        with tempfile.TemporaryDirectory() as tmp:
            self._run(
                [
                    self.cosign,
                    "sign",
                    "--yes",
                    *self._key_flags(Path(tmp)),
                    *self._flags(host),
                    ref,
                ],
                f"cosign sign {ref}",
            )

    def _verify_flags(self, workdir: Path) -> list[str]:
        if self.key:
            public = workdir / "cosign.pub"
            public.write_text(
                self._run([self.cosign, "public-key", "--key", self.key], "cosign public-key")
            )
            return ["--key", str(public), "--insecure-ignore-tlog=true"]
        if not self.identity:
            raise ReleaseError("keyless verification needs the signing workflow identity")
        return [
            "--certificate-identity",
            self.identity,
            "--certificate-oidc-issuer",
            OIDC_ISSUER,
        ]

    def verify(self, host: str, repo: str, digest: str) -> None:
        """A signature of repo@digest verifies (an attestation alone does not count)."""
        ref = f"{host}/{repo}@{digest}"
        with tempfile.TemporaryDirectory() as tmp:
            out = self._run(
                [
                    self.cosign,
                    "verify",
                    "--output",
                    "json",
                    *self._verify_flags(Path(tmp)),
                    *self._flags(host),
                    ref,
                ],
                f"cosign verify {ref}",
            )
        if not signed_entries(out):
            raise ReleaseError(f"cosign verify {ref}: only attestations verify, no signature")

    def sbom(self, host: str, repo: str, digest: str, workdir: Path) -> dict[str, Path]:
        """SPDX and CycloneDX JSON SBOMs of one platform image (one syft scan of the
        registry copy), by predicate type."""
        if not self.syft:
            raise ReleaseError("syft is not available; run `nox -s tools -- syft`")
        stem = workdir / f"sbom-{digest.split(':')[1][:12]}"
        outputs = {SPDX: stem.with_suffix(".spdx.json"), CYCLONEDX: stem.with_suffix(".cdx.json")}
        env = {"SYFT_CHECK_FOR_APP_UPDATE": "false"}
        if is_loopback(host):
            env["SYFT_REGISTRY_INSECURE_USE_HTTP"] = "true"
        self._run(
            [
                self.syft,
                "scan",
                f"registry:{host}/{repo}@{digest}",
                "-q",
                "-o",
                f"spdx-json={outputs[SPDX]}",
                "-o",
                f"cyclonedx-json={outputs[CYCLONEDX]}",
            ],
            f"syft scan {host}/{repo}@{digest}",
            env=env,
        )
        return outputs

    def attest(
        self, host: str, repo: str, digest: str, predicate: Path, predicate_type: str = SPDX
    ) -> None:
        """Sign a predicate of that type for repo@digest and attach it (cosign attest)."""
        ref = f"{host}/{repo}@{digest}"
        with tempfile.TemporaryDirectory() as tmp:
            self._run(
                [
                    self.cosign,
                    "attest",
                    "--yes",
                    "--type",
                    cosign_type(predicate_type),
                    "--predicate",
                    str(predicate),
                    *self._key_flags(Path(tmp)),
                    *self._flags(host),
                    ref,
                ],
                f"cosign attest {ref}",
            )

    def verify_attestation(
        self, host: str, repo: str, digest: str, predicate_type: str = SPDX
    ) -> list[dict]:
        """The in-toto statements of that type attached to repo@digest whose signatures
        verify (cosign verify-attestation); ReleaseError when there is none."""
        ref = f"{host}/{repo}@{digest}"
        with tempfile.TemporaryDirectory() as tmp:
            out = self._run(
                [
                    self.cosign,
                    "verify-attestation",
                    "--type",
                    cosign_type(predicate_type),
                    *self._verify_flags(Path(tmp)),
                    *self._flags(host),
                    ref,
                ],
                f"cosign verify-attestation {ref}",
            )
        return verified_statements(out)


def verified_statements(output: str) -> list[dict]:
    """The statements in `cosign verify-attestation` output (one DSSE envelope a line)."""
    found = []
    for raw in output.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            try:
                json.loads(line)
            except ValueError:
                continue
            found.append(decode(line))
    return found
