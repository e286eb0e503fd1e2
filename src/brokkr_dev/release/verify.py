"""`nox -s verify -- vX.Y.Z`: what a user runs before trusting a release.

Everything is read back from the registry and the downloaded release assets, and
every signature and attestation is checked by cosign against the release's key
(`--key cosign.pub`) or its keyless identity (the release workflow of the tag):

- tags: `vX.Y.Z` and `X.Y.Z` of each image point at one multi-platform index, and
  so does every floating tag (`vX.Y`, `vX`, `latest`) that this release must hold
  (the fan-out rules of release/tags.py, given the versions in the registry);
- signatures: each image index, platform image and chart, by digest; and Helm's own
  provenance (`.prov`, `helm verify` against `--helm-keyring`) of each chart signed
  that way;
- provenance: on every image index, platform image and chart, signed, its subject
  the digest it is attached to; an index's provenance names exactly the platform
  images the index holds, a chart's the image it deploys; every provenance names
  the same source commit;
- SBOMs: an SPDX and a CycloneDX attestation, signed, on every platform image;
- VEX: the same signed OpenVEX document on every image, naming only this release's
  images;
- assets: every file listed in SHA256SUMS has that checksum, nothing is unlisted or
  missing, and the chart archives, SBOMs and VEX are the published ones;
- air-gap bundles (one per platform): the files inside match the bundle's own
  SHA256SUMS; its charts are the published ones; each image layout holds exactly
  the published platform image with the registry's signature and attestations, and
  these verify offline (`cosign verify --local-image`); its raw manifests pin that
  platform image.

One table, one row per check; any failed row fails the command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from brokkr_dev.base import paths
from brokkr_dev.base.archives import extract_all
from brokkr_dev.base.commands import CommandError, run
from brokkr_dev.base.log import Log
from brokkr_dev.release import ReleaseError, airgap, provenance
from brokkr_dev.release.assets import (
    CHART_LAYER,
    CHECKSUMS,
    PROVENANCE_LAYER,
    SBOM_SUFFIXES,
    vex_name,
)
from brokkr_dev.release.attestations import (
    CYCLONEDX,
    OPENVEX,
    SIGNATURE,
    SPDX,
    attestation_tag,
    bundles,
    cosign_type,
    signature_tag,
)
from brokkr_dev.release.plan import DEFAULT_REGISTRY, IMAGE_NAMES
from brokkr_dev.release.registry import Registry, is_loopback, split_reference
from brokkr_dev.release.signing import OIDC_ISSUER, signed_entries, verified_statements
from brokkr_dev.release.stamp import CHART_NAMES
from brokkr_dev.release.tags import release_tags
from brokkr_dev.release.version import Version, parse, parse_released

TIMEOUT = 300
SBOM_FIELDS = {SPDX: "spdxVersion", CYCLONEDX: "bomFormat"}
SBOM_LABELS = {SPDX: "sbom spdx", CYCLONEDX: "sbom cyclonedx"}
# What each image layout of an air-gap bundle must carry, signed.
BUNDLE_ATTESTATIONS = {
    provenance.PREDICATE_TYPE: "provenance",
    SPDX: "spdx",
    CYCLONEDX: "cyclonedx",
    OPENVEX: "openvex",
}


@dataclass(frozen=True)
class Check:
    """One row of the table."""

    what: str
    subject: str
    ok: bool
    detail: str = ""


class VerifyError(ReleaseError):
    """The release did not verify; the table above says which checks failed."""

    def __init__(self, message: str, checks: Sequence[Check] = ()) -> None:
        super().__init__(message)
        self.checks = list(checks)


def format_table(checks: Sequence[Check]) -> str:
    """check, subject, result, detail: aligned columns, one row per check."""
    rows = [("check", "subject", "result", "detail")]
    rows += [(c.what, c.subject, "ok" if c.ok else "FAILED", c.detail) for c in checks]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]).rstrip() for row in rows
    ]
    failed = sum(1 for c in checks if not c.ok)
    lines.append(f"{len(checks)} checks, {failed} failed")
    return "\n".join(lines)


@dataclass(frozen=True)
class Trust:
    """Whose signatures count: a public key, or a keyless identity and its issuer."""

    key: Path | None = None
    identity: str | None = None
    issuer: str = OIDC_ISSUER

    def flags(self) -> list[str]:
        if self.key is not None:
            # keyed releases keep their signatures out of the public log (signing.py)
            return ["--key", str(self.key), "--insecure-ignore-tlog=true"]
        if not self.identity:
            raise ReleaseError("verify needs --key FILE or --certificate-identity")
        return ["--certificate-identity", self.identity, "--certificate-oidc-issuer", self.issuer]


@dataclass(frozen=True)
class Request:
    """What `nox -s verify -- ...` asked for."""

    version: Version
    registry: str = DEFAULT_REGISTRY
    trust: Trust = Trust()
    assets: Path | None = None  # default dist/<tag>
    github_repo: str = "colliery-io/brokkr"
    helm_keyring: Path | None = None  # public GPG keyring for the charts' .prov files

    @property
    def assets_dir(self) -> Path:
        return self.assets or paths.REPO_ROOT / "dist" / self.version.tag


def workflow_identity(github_repo: str, version: Version) -> str:
    """The keyless signer of a release: its workflow, run for the tag."""
    return f"https://github.com/{github_repo}/.github/workflows/release.yml@refs/tags/{version.tag}"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ReleaseError(f"{message}; usage: nox -s verify -- vX.Y.Z [options] (see --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nox -s verify --",
        description="Verify a published release: signatures, attestations, VEX, assets, tags.",
    )
    parser.add_argument("version", help="the release, vX.Y.Z")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="image registry and path")
    parser.add_argument("--key", default="", help="cosign public key of a keyed release")
    parser.add_argument(
        "--certificate-identity",
        default="",
        help="keyless signer (default: the release workflow of the tag)",
    )
    parser.add_argument("--certificate-oidc-issuer", default=OIDC_ISSUER)
    parser.add_argument("--assets", default="", help="the release's assets (default dist/vX.Y.Z)")
    parser.add_argument("--github-repo", default="colliery-io/brokkr", help="owner/name")
    parser.add_argument(
        "--helm-keyring", default="", help="public GPG keyring for the charts' Helm .prov files"
    )
    return parser


def parse_args(argv: Sequence[str]) -> Request:
    args = _parser().parse_args(list(argv))
    version = parse(args.version)
    key = Path(args.key) if args.key else None
    if key is not None and not key.is_file():
        raise ReleaseError(f"--key {key}: no such file; pass the release's cosign.pub")
    identity = args.certificate_identity or workflow_identity(args.github_repo, version)
    keyring = Path(args.helm_keyring) if args.helm_keyring else None
    if keyring is not None and not keyring.is_file():
        raise ReleaseError(f"--helm-keyring {keyring}: no such file; pass the public keyring")
    return Request(
        version=version,
        registry=args.registry,
        trust=Trust(key, None if key else identity, args.certificate_oidc_issuer),
        assets=Path(args.assets) if args.assets else None,
        github_repo=args.github_repo,
        helm_keyring=keyring,
    )


def usage() -> str:
    return _parser().format_help()


@dataclass(frozen=True)
class Cosign:
    """cosign's verification commands with one trust setting."""

    binary: str
    trust: Trust
    env: Mapping[str, str] = field(default_factory=dict)

    def _run(self, args: list[str], ref: str) -> str:
        host = ref.split("/", 1)[0]
        flags = ["--allow-http-registry", "--allow-insecure-registry"] if is_loopback(host) else []
        try:
            done = run(
                [self.binary, *args, *self.trust.flags(), *flags, ref],
                env={**os.environ, **self.env},
                timeout=TIMEOUT,
                check=False,
            )
        except CommandError as exc:
            raise ReleaseError(str(exc)) from None
        if done.returncode != 0:
            said = [line for line in (done.stderr or "").splitlines() if line.strip()]
            last = said[-1] if said else f"cosign failed (exit status {done.returncode})"
            for prefix in ("Error: ", "error during command execution: "):
                last = last.removeprefix(prefix)
            raise ReleaseError(last.rstrip(": "))
        return done.stdout

    def verify(self, ref: str) -> None:
        """A signature verifies: cosign v3 also passes an image that carries only
        attestations, so the verified entries must include a signature."""
        if not signed_entries(self._run(["verify", "--output", "json"], ref)):
            raise ReleaseError("no signature verifies (only attestations)")

    def statements(self, ref: str, predicate_type: str) -> list[dict]:
        return verified_statements(
            self._run(["verify-attestation", "--type", cosign_type(predicate_type)], ref)
        )

    def verify_local(self, layout: Path, bundled: bool = True) -> None:
        """The signature inside an OCI layout written by `cosign save` (offline).

        With Sigstore bundles (cosign v3) `cosign verify --local-image` reports no
        statement types, and would pass on attestations alone: the signature is
        checked as the attestation of its own type instead."""
        if bundled:
            self._run(["verify-attestation", "--type", SIGNATURE, "--local-image"], str(layout))
        else:
            self._run(["verify", "--output", "json", "--local-image"], str(layout))

    def statements_local(self, layout: Path, predicate_type: str) -> list[dict]:
        kind = cosign_type(predicate_type)
        return verified_statements(
            self._run(["verify-attestation", "--type", kind, "--local-image"], str(layout))
        )


def short(digest: str) -> str:
    return digest[:19]


def subject_digests(statement: Mapping) -> set[str]:
    return {
        "sha256:" + item["digest"]["sha256"]
        for item in statement.get("subject") or []
        if "sha256" in (item.get("digest") or {})
    }


def purl_digests(document: Mapping) -> set[str]:
    """The image digests an OpenVEX document's products name (`pkg:oci/..@sha256%3A..`)."""
    found = set()
    for item in document.get("statements") or []:
        for product in item.get("products") or []:
            identifier = unquote(str(product.get("@id", "")))
            if identifier.startswith("pkg:oci/") and "@" in identifier:
                found.add(identifier.split("@", 1)[1].split("?", 1)[0])
    return found


class Verifier:
    """All checks of one release; `run()` returns the rows."""

    def __init__(
        self,
        request: Request,
        registry: Registry,
        cosign: Cosign,
        helm: str = str(paths.BIN_DIR / "helm"),
    ) -> None:
        self.request = request
        self.registry = registry
        self.cosign = cosign
        self.helm = helm
        self.host, self.prefix = split_reference(request.registry)
        self.checks: list[Check] = []
        self.indexes: dict[str, str] = {}  # image -> index digest
        self.platforms: dict[str, dict[str, str]] = {}  # image -> platform -> digest
        self.chart_layers: dict[str, str] = {}  # chart -> archive layer digest
        self.chart_provs: dict[str, str] = {}  # chart -> Helm provenance layer digest
        self.sboms: dict[str, dict] = {}  # asset name -> attested SBOM
        self.vex: dict | None = None
        self.commits: dict[str, set[str]] = {}  # commit -> artifacts whose provenance names it

    def add(self, what: str, subject: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(what, subject, ok, detail))

    def run(self) -> list[Check]:
        for name in IMAGE_NAMES:
            self.image(name)
        for chart in CHART_NAMES:
            self.chart(chart)
        self.source()
        self.vex_documents()
        self.assets()
        return self.checks

    # --- images and charts -----------------------------------------------------------

    def image(self, name: str) -> None:
        repo, version = f"{self.prefix}/{name}", self.request.version
        index = self.registry.manifest(repo, version.tag)
        if index is None:
            self.add("tags", name, False, f"{version.tag} is not published in {self.host}/{repo}")
            return
        digest = index.digest
        expected = [c.tag for c in release_tags(version, parse_released(self.registry.tags(repo)))]
        wrong = [t for t in expected if self.registry.digest(repo, t) != digest]
        self.add(
            "tags",
            name,
            not wrong,
            f"{', '.join(wrong)} not on {short(digest)}"
            if wrong
            else f"{', '.join(expected)} -> {short(digest)}",
        )
        platforms = {
            f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
            for m in json.loads(index.body).get("manifests") or []
            if "platform" in m
        }
        if not platforms:
            self.add("index", name, False, f"{version.tag} is not a multi-platform index")
            return
        self.indexes[name], self.platforms[name] = digest, platforms
        self.signature(repo, digest, f"{name} index")
        self.provenance(repo, digest, f"{name} index", inputs=set(platforms.values()))
        for platform, platform_digest in sorted(platforms.items()):
            label = f"{name} {platform}"
            self.signature(repo, platform_digest, label)
            self.provenance(repo, platform_digest, label)
            stem = f"{name}-{version.plain}-{platform.replace('/', '-')}"
            for predicate_type, suffix in SBOM_SUFFIXES.items():
                self.sbom(repo, platform_digest, label, predicate_type, stem + suffix)

    def chart(self, name: str) -> None:
        repo, tag = f"{self.prefix}/charts/{name}", self.request.version.plain
        manifest = self.registry.manifest(repo, tag)
        subject = f"chart {name}"
        if manifest is None:
            self.add("chart", subject, False, f"{tag} is not published in {self.host}/{repo}")
            return
        layers = json.loads(manifest.body).get("layers") or []
        layer = next((x for x in layers if x.get("mediaType") == CHART_LAYER), None)
        if layer is None:
            self.add("chart", subject, False, f"{tag} holds no chart archive layer")
        else:
            self.chart_layers[name] = layer["digest"]
        self.signature(repo, manifest.digest, subject)
        prov = next((x for x in layers if x.get("mediaType") == PROVENANCE_LAYER), None)
        if prov is not None:
            self.chart_provs[name] = prov["digest"]
        if layer is not None:
            self.helm_provenance(name, repo, layer["digest"], prov and prov["digest"])
        image = self.indexes.get(name)
        self.provenance(repo, manifest.digest, subject, inputs={image} if image else None)

    def helm_provenance(self, name: str, repo: str, archive: str, prov: str | None) -> None:
        """`helm verify` of the published chart and its .prov, when either side has one."""
        subject, keyring = f"chart {name}", self.request.helm_keyring
        if prov is None:
            if keyring is not None:
                self.add("helm provenance", subject, False, "no .prov published with the chart")
            return
        if keyring is None:
            self.add(
                "helm provenance", subject, False,
                "the chart carries a .prov: pass --helm-keyring (the release's public keyring)",
            )  # fmt: skip
            return
        with tempfile.TemporaryDirectory() as tmp:
            package = Path(tmp) / f"{name}-{self.request.version.plain}.tgz"
            package.write_bytes(self.registry.blob(repo, archive))
            Path(f"{package}.prov").write_bytes(self.registry.blob(repo, prov))
            try:
                done = run(
                    [self.helm, "verify", str(package), "--keyring", str(keyring)],
                    timeout=TIMEOUT,
                    check=False,
                )
            except CommandError as exc:
                self.add("helm provenance", subject, False, f"{exc}; run `nox -s tools -- helm`")
                return
        said = (done.stderr or done.stdout).strip().splitlines()
        ok = done.returncode == 0
        detail = "helm verify passed" if ok else (said[-1] if said else "helm verify failed")
        self.add("helm provenance", subject, ok, detail.removeprefix("Error: "))

    def signature(self, repo: str, digest: str, subject: str) -> None:
        try:
            self.cosign.verify(f"{self.host}/{repo}@{digest}")
        except ReleaseError as exc:
            self.add("signature", subject, False, str(exc))
        else:
            self.add("signature", subject, True, short(digest))

    def _statements(self, repo: str, digest: str, predicate_type: str) -> list[dict]:
        """Verified statements of a type whose subject is this digest (else ReleaseError)."""
        found = self.cosign.statements(f"{self.host}/{repo}@{digest}", predicate_type)
        if not found:
            raise ReleaseError("no signed attestation of this type")
        for statement in found:
            if digest not in subject_digests(statement):
                raise ReleaseError(
                    f"statement subject {sorted(subject_digests(statement))} is not {digest}"
                )
        return found

    def provenance(
        self, repo: str, digest: str, subject: str, inputs: set[str] | None = None
    ) -> None:
        """Signed SLSA provenance about this digest; an index's or chart's names its inputs."""
        try:
            statements = self._statements(repo, digest, provenance.PREDICATE_TYPE)
        except ReleaseError as exc:
            self.add("provenance", subject, False, str(exc))
            return
        problems = []
        for statement in statements:
            body = statement.get("predicate") or {}
            for item in body.get("buildDefinition", {}).get("resolvedDependencies") or []:
                commit = (item.get("digest") or {}).get("gitCommit")
                if item.get("name") == "source" and commit:
                    self.commits.setdefault(commit, set()).add(subject)
            if inputs is not None:
                named = provenance.dependency_digests(body, prefix="image ")
                if named != inputs:
                    problems.append(
                        f"names images {sorted(map(short, named))}, "
                        f"expected {sorted(map(short, inputs))}"
                    )
        detail = "; ".join(problems) or f"signed, subject {short(digest)}" + (
            f", {len(inputs)} image inputs match" if inputs else ""
        )
        self.add("provenance", subject, not problems, detail)

    def sbom(self, repo: str, digest: str, subject: str, predicate_type: str, asset: str) -> None:
        label = SBOM_LABELS[predicate_type]
        try:
            statements = self._statements(repo, digest, predicate_type)
        except ReleaseError as exc:
            self.add(label, subject, False, str(exc))
            return
        document = statements[0].get("predicate") or {}
        ok = SBOM_FIELDS[predicate_type] in document
        self.sboms[asset] = document
        self.add(label, subject, ok, "signed" if ok else "the predicate is not an SBOM")

    def source(self) -> None:
        """Every provenance must name one and the same source commit."""
        if len(self.commits) == 1:
            (commit,) = self.commits
            self.add("source", "all provenance", True, f"commit {commit[:12]}")
        elif self.commits:
            self.add("source", "all provenance", False, f"several commits: {sorted(self.commits)}")

    def vex_documents(self) -> None:
        """The same signed OpenVEX document on every image, about this release's images."""
        released = set(self.indexes.values()) | {
            d for platforms in self.platforms.values() for d in platforms.values()
        }
        documents: list[dict] = []
        for name, index in self.indexes.items():
            repo = f"{self.prefix}/{name}"
            for digest in [index, *self.platforms[name].values()]:
                try:
                    documents += [
                        s.get("predicate") or {} for s in self._statements(repo, digest, OPENVEX)
                    ]
                except ReleaseError as exc:
                    self.add("vex", f"{name}@{short(digest)}", False, str(exc))
                    return
        if not documents:
            return
        first = documents[0]
        problems = []
        if any(d != first for d in documents):
            problems.append("the images carry different VEX documents")
        if not str(first.get("@context", "")).startswith("https://openvex.dev/ns"):
            problems.append("not an OpenVEX document")
        foreign = purl_digests(first) - released
        if foreign and len(self.indexes) == len(IMAGE_NAMES):  # else reported above
            problems.append(f"names images of another release: {sorted(map(short, foreign))}")
        self.vex = first
        count = len(first.get("statements") or [])
        detail = "; ".join(problems) or f"signed on {len(documents)} images, {count} statements"
        self.add("vex", "all images", not problems, detail)

    # --- assets ----------------------------------------------------------------------

    def expected_assets(self) -> list[str]:
        plain = self.request.version.plain
        names = [f"{c}-{plain}.tgz" for c in CHART_NAMES]
        names += [f"{c}-{plain}.tgz.prov" for c in sorted(self.chart_provs)]
        names += [f"{c}-install.yaml" for c in CHART_NAMES]
        names += [
            f"{image}-{plain}-{platform.replace('/', '-')}{suffix}"
            for image, platforms in sorted(self.platforms.items())
            for platform in sorted(platforms)
            for suffix in SBOM_SUFFIXES.values()
        ]
        names.append(vex_name(self.request.version))
        names += [airgap.bundle_name(self.request.version, p) for p in self.bundle_platforms()]
        return names

    def bundle_platforms(self) -> list[str]:
        return sorted({p for platforms in self.platforms.values() for p in platforms})

    def assets(self) -> None:
        directory = self.request.assets_dir
        sums = directory / CHECKSUMS
        if not sums.is_file():
            self.add(
                "assets",
                str(directory),
                False,
                f"no {CHECKSUMS}; download the assets: gh release download "
                f"{self.request.version.tag} --repo {self.request.github_repo} --dir {directory}",
            )
            return
        listed = {}
        for line in sums.read_text().splitlines():
            if line.strip():
                checksum, _, name = line.partition("  ")
                listed[name.strip()] = checksum.strip()
        for name in self.expected_assets():
            if name not in listed:
                self.add("checksum", name, False, f"missing from {CHECKSUMS}")
        present = {p.name for p in directory.iterdir() if p.is_file() and p.name != CHECKSUMS}
        for name in sorted(present - set(listed)):
            self.add("checksum", name, False, f"not listed in {CHECKSUMS}")
        for name, checksum in sorted(listed.items()):
            path = directory / name
            if not path.is_file():
                self.add("checksum", name, False, "listed but missing")
                continue
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
            same = actual == checksum
            detail = "sha256 matches" if same else f"sha256 {actual[:12]}, listed {checksum[:12]}"
            self.add("checksum", name, same, detail)
        self.published_assets(directory)
        for platform in self.bundle_platforms():
            path = directory / airgap.bundle_name(self.request.version, platform)
            if path.is_file():  # else reported above
                self.bundle(path, platform)

    def published_assets(self, directory: Path) -> None:
        """The chart archives, SBOMs and VEX among the assets are what was published."""
        for chart, layer in self.chart_layers.items():
            path = directory / f"{chart}-{self.request.version.plain}.tgz"
            if path.is_file():
                same = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == layer
                self._same("the signed chart", path, same)
        for chart, layer in self.chart_provs.items():
            path = directory / f"{chart}-{self.request.version.plain}.tgz.prov"
            if path.is_file():
                same = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == layer
                self._same("the chart's published .prov", path, same)
        for name, document in self.sboms.items():
            path = directory / name
            if path.is_file():
                self._same("the attested SBOM", path, _json(path) == document)
        path = directory / vex_name(self.request.version)
        if self.vex is not None and path.is_file():
            self._same("the attested VEX", path, _json(path) == self.vex)

    def _same(self, what: str, path: Path, same: bool) -> None:
        self.add("asset", path.name, same, f"is {what}" if same else f"differs from {what}")

    # --- air-gap bundles -------------------------------------------------------------

    def bundle(self, archive: Path, platform: str) -> None:
        """Unpack one platform's bundle and check what it holds (module docstring)."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                with tarfile.open(archive, mode="r:gz") as tar:
                    extract_all(tar, Path(tmp))
            except (tarfile.TarError, OSError, EOFError) as exc:  # UnsafeArchive is a TarError
                self.add("bundle", archive.name, False, f"cannot unpack it: {exc}")
                return
            root = Path(tmp) / airgap.top_directory(archive.name)
            if not root.is_dir():
                self.add("bundle", archive.name, False, f"holds no {root.name}/ directory")
                return
            problems = airgap.checksum_problems(root)
            detail = "; ".join(problems[:3]) or f"every file matches its {CHECKSUMS}"
            if len(problems) > 3:
                detail += f" (and {len(problems) - 3} more)"
            self.add("bundle", archive.name, not problems, detail)
            for chart in CHART_NAMES:
                self.bundle_chart(root, archive.name, chart, platform)
            for image in sorted(self.platforms):
                digest = self.platforms[image].get(platform)
                if digest is not None:
                    self.bundle_image(root, archive.name, image, digest)

    def bundle_chart(self, root: Path, bundle: str, chart: str, platform: str) -> None:
        """The chart archive and .prov are the published layers; the raw manifest pins
        this platform's image of the chart."""
        plain, problems = self.request.version.plain, []
        layers = {".tgz": self.chart_layers.get(chart), ".tgz.prov": self.chart_provs.get(chart)}
        for suffix, layer in layers.items():
            path = root / airgap.chart_path(f"{chart}-{plain}{suffix}")
            if layer is None:
                continue  # not published: reported by the chart's own rows
            if not path.is_file():
                problems.append(f"no {path.name}")
            elif "sha256:" + provenance.sha256_file(path) != layer:
                problems.append(f"{path.name} is not the published one")
        manifest = root / airgap.manifest_path(f"{chart}-install.yaml")
        pinned = self.platforms.get(chart, {}).get(platform)
        if not manifest.is_file():
            problems.append(f"no {manifest.name}")
        elif pinned and f"@{pinned}" not in manifest.read_text():
            problems.append(f"{manifest.name} does not pin the {platform} image {short(pinned)}")
        detail = "; ".join(problems) or "the published chart; the manifest pins its image"
        self.add("bundle chart", f"{bundle} {chart}", not problems, detail)

    def bundle_image(self, root: Path, bundle: str, image: str, digest: str) -> None:
        """The layout holds the published platform image with the registry's signature
        and attestations of it, and those verify offline."""
        layout_dir, subject = root / airgap.image_directory(image), f"{bundle} {image}"
        problems = airgap.layout_problems(layout_dir, digest)
        if not problems:
            layout, repo = airgap.read_layout(layout_dir), f"{self.prefix}/{image}"
            published = {b.manifest for b in bundles(self.registry, repo, digest)}
            if {d for d, _ in layout.bundles} != published:
                problems.append("its signature and attestation bundles are not the published ones")
            if layout.signatures != self.registry.digest(repo, signature_tag(digest)):
                problems.append("its signature is not the published one")
            if layout.attestations != self.registry.digest(repo, attestation_tag(digest)):
                problems.append("its attestations are not the published ones")
        detail = "; ".join(problems) or f"the published image {short(digest)}"
        self.add("bundle image", subject, not problems, detail)
        if problems:
            return
        try:
            self.cosign.verify_local(layout_dir, bundled=bool(layout.bundles))
        except ReleaseError as exc:
            self.add("bundle signature", subject, False, str(exc))
        else:
            self.add("bundle signature", subject, True, "verifies offline")
        for predicate_type, label in BUNDLE_ATTESTATIONS.items():
            try:
                found = self.cosign.statements_local(layout_dir, predicate_type)
                if not found or any(digest not in subject_digests(s) for s in found):
                    raise ReleaseError(f"no signed attestation about {short(digest)}")
            except ReleaseError as exc:
                self.add("bundle attestation", subject, False, f"{label}: {exc}")
                return
        labels = ", ".join(BUNDLE_ATTESTATIONS.values())
        self.add("bundle attestation", subject, True, f"{labels} verify offline")


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def verify(
    request: Request,
    *,
    cosign: str,
    helm: str = str(paths.BIN_DIR / "helm"),
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = print,
) -> list[Check]:
    """Run every check, print the table, raise VerifyError when any check failed."""
    host, _ = split_reference(request.registry)
    reg = registry or Registry(host)
    reg.ping()
    checks = Verifier(request, reg, Cosign(cosign, request.trust, env or {}), helm).run()
    log(format_table(checks))
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerifyError(
            f"{request.version.tag} did not verify: {len(failed)} of {len(checks)} checks "
            f"failed (first: {failed[0].what} {failed[0].subject}: {failed[0].detail})",
            checks,
        )
    return checks
