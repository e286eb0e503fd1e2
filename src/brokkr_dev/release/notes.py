"""Release notes: commits since the previous release grouped by conventional-commit
type, then what was published (digests, chart versions) and how to verify it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from brokkr_dev.release.attestations import SIGNATURE
from brokkr_dev.release.version import Version

# type(scope)!: subject
_CONVENTIONAL = re.compile(
    r"^(?P<type>[a-zA-Z]+)(?:\((?P<scope>[^)]*)\))?(?P<bang>!)?:\s*(?P<subject>.+)$"
)
SECTIONS = (
    ("breaking", "Breaking changes"),
    ("feat", "Features"),
    ("fix", "Bug fixes"),
    ("perf", "Performance"),
    ("security", "Security"),
    ("docs", "Documentation"),
    ("refactor", "Refactoring"),
    ("test", "Tests"),
    ("build", "Build and packaging"),
    ("ci", "Continuous integration"),
    ("chore", "Maintenance"),
    ("other", "Other changes"),
)
_KNOWN = {key for key, _ in SECTIONS}


@dataclass(frozen=True)
class Published:
    """One artifact the release pushed, for the notes and the verify commands."""

    kind: str  # "image" or "chart"
    reference: str  # host/path:tag (images) or oci://host/path:version (charts)
    digest: str


def group(commits: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Commit subjects by section key; release commits themselves are left out."""
    grouped: dict[str, list[str]] = {}
    for sha, subject in commits:
        match = _CONVENTIONAL.match(subject)
        if match is None:
            key, text = "other", subject
        else:
            kind = match["type"].lower()
            if kind == "chore" and (match["scope"] or "") == "release":
                continue
            if kind not in _KNOWN and not match["bang"]:
                # not a conventional type (e.g. an area prefix like "images:"): keep it whole
                grouped.setdefault("other", []).append(f"{subject} ({sha})")
                continue
            key = "breaking" if match["bang"] else kind
            scope = f"**{match['scope']}**: " if match["scope"] else ""
            text = scope + match["subject"]
        grouped.setdefault(key, []).append(f"{text} ({sha})")
    return grouped


def verify_commands(item: Published, cosign_key: str | None, identity: str) -> list[str]:
    """Commands a user runs to check an artifact's signature (and SBOM for images)."""
    ref = item.reference.removeprefix("oci://").rsplit(":", 1)[0] + "@" + item.digest
    if cosign_key:
        # A key-signed release is in no transparency log: without this flag cosign v3
        # looks it up there (and needs the network to fail).
        who = f"--key {cosign_key} --insecure-ignore-tlog=true"
    else:
        who = (
            f"--certificate-identity {identity} "
            "--certificate-oidc-issuer https://token.actions.githubusercontent.com"
        )
    # `cosign verify` of v3 also passes on an attestation alone: ask for the signature
    # by its statement type.
    commands = [
        f"cosign verify-attestation --type {SIGNATURE} {who} {ref}",
        f"cosign verify-attestation --type https://slsa.dev/provenance/v1 {who} {ref}",
    ]
    if item.kind == "image":
        commands.append(
            f"cosign verify-attestation --type spdxjson {who} "
            f"{ref.rsplit('@', 1)[0]}@<platform digest from the manifest list>"
        )
    return commands


def render(
    version: Version,
    previous: Version | None,
    commits: list[tuple[str, str]],
    published: list[Published],
    *,
    cosign_key: str | None = None,
    identity: str = "https://github.com/colliery-io/brokkr/.github/workflows/release.yml@refs/tags/",
) -> str:
    """Markdown release notes."""
    lines = [f"# Brokkr {version.tag}", ""]
    if version.is_prerelease:
        lines += ["This is a prerelease: it moves no floating tag (`latest`, `vX`, `vX.Y`).", ""]
    since = previous.tag if previous else "the first commit"
    lines += [f"## Changes since {since}", ""]
    grouped = group(commits)
    if not grouped:
        lines += ["No changes besides the version stamp.", ""]
    for key, title in SECTIONS:
        if key in grouped:
            lines += [f"### {title}", "", *[f"- {entry}" for entry in grouped[key]], ""]
    images = [p for p in published if p.kind == "image"]
    charts = [p for p in published if p.kind == "chart"]
    if images:
        lines += ["## Images (linux/amd64, linux/arm64)", ""]
        lines += [f"- `{p.reference}` `{p.digest}`" for p in images]
        lines.append("")
    if charts:
        lines += ["## Helm charts", ""]
        for p in charts:
            name, chart_version = p.reference.rsplit("/", 1)[1].split(":")
            repo = p.reference.rsplit(":", 1)[0]
            lines.append(
                f"- `{name}` {chart_version} `{p.digest}`: `helm install {name} {repo} --version {chart_version}`"
            )
        lines.append("")
    if published:
        lines += ["## Verify", "", "```sh"]
        images_at = next(
            (p.reference.rsplit("/", 1)[0] for p in published if p.kind == "image"), None
        )
        if images_at:
            key = f" --key {cosign_key}" if cosign_key else ""
            lines += [
                '# everything at once (docs/releasing.md, "Verifying a release"), from a checkout:',
                f"scripts/nox -s verify -- {version.tag} --registry {images_at}{key}",
                "# or artifact by artifact:",
            ]
        for p in published:
            lines += verify_commands(p, cosign_key, identity + version.tag)
        lines += ["```", ""]
    return "\n".join(lines)
