"""Supply chain: cosign signatures and attestations (by digest), and syft SBOMs.

With a key (local tests, air-gapped use) signatures stay out of the public
transparency log; without one, cosign signs keyless with the GitHub Actions OIDC
identity and records the signature in Rekor, which is how users verify it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from brokkr_dev.base.commands import run
from brokkr_dev.release import ReleaseError
from brokkr_dev.release.attestations import CYCLONEDX, SPDX, attestation_tag, cosign_type, decode
from brokkr_dev.release.registry import Registry, is_loopback

OIDC_ISSUER = "https://token.actions.githubusercontent.com"
TIMEOUT = 600


def signature_tag(digest: str) -> str:
    """Where cosign stores the signature of a digest: tag `sha256-<hex>.sig`."""
    return digest.replace(":", "-") + ".sig"


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

    def _key_flags(self) -> list[str]:
        # Keyed signatures stay out of the public log; keyless ones must be in it.
        return ["--key", self.key, "--tlog-upload=false"] if self.key else []

    def sign(self, host: str, repo: str, digest: str) -> None:
        ref = f"{host}/{repo}@{digest}"
        self._run(
            [self.cosign, "sign", "--yes", *self._key_flags(), *self._flags(host), ref],
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
        ref = f"{host}/{repo}@{digest}"
        with tempfile.TemporaryDirectory() as tmp:
            self._run(
                [self.cosign, "verify", *self._verify_flags(Path(tmp)), *self._flags(host), ref],
                f"cosign verify {ref}",
            )

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
        self._run(
            [
                self.cosign,
                "attest",
                "--yes",
                "--type",
                cosign_type(predicate_type),
                "--predicate",
                str(predicate),
                *self._key_flags(),
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


def is_signed(registry: Registry, repo: str, digest: str) -> bool:
    return signature_tag(digest) in registry.tags(repo)


def is_attested(registry: Registry, repo: str, digest: str) -> bool:
    return attestation_tag(digest) in registry.tags(repo)
