"""The one parser of a release's arguments.

`nox -s release -- v1.2.3 --dry-run` hands its arguments unchanged to `invoke
release -- ...`, whose task calls `parse()`; nothing else reads them. The parser
also knows which tools and Debian packages the asked-for release needs, so the
session does not have to guess from the raw arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from brokkr_dev.base.errors import AutomationError
from brokkr_dev.release.plan import DEFAULT_REGISTRY, Options
from brokkr_dev.release.version import parse as parse_version

BUILDERS = ("auto", "buildx", "podman")


class UsageError(AutomationError):
    """The release's arguments are wrong; the message names the argument and the fix."""


@dataclass(frozen=True)
class Request:
    """What `nox -s release -- ...` asked for."""

    options: Options
    prepare: bool = False

    @property
    def publishes(self) -> bool:
        """True when images and charts are built and pushed (not a dry run or --prepare)."""
        return not (self.options.dry_run or self.prepare)

    @property
    def tools(self) -> list[str]:
        """The pinned CLI tools this release runs."""
        needed = ["helm"]
        if self.publishes:
            needed.append("cosign")  # signs, and makes the air-gap bundles (`cosign save`)
        if self.publishes and self.options.sign:
            needed.append("syft")
        return needed

    @property
    def system_features(self) -> list[str]:
        """The Debian package features it needs (none for a dry run)."""
        return ["base", "containers"] if self.publishes else []


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(
            f"{message}; usage: nox -s release -- vX.Y.Z [--dry-run] [options] (see --help)"
        )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nox -s release --",
        description="Cut a release: signed multi-arch images and OCI charts (docs/releasing.md).",
    )
    parser.add_argument("version", help="the release version, vX.Y.Z or vX.Y.Z-PRERELEASE")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and preflight; change nothing"
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="only stamp the versions, commit and tag (CI releases the tag)",
    )
    parser.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        help=f"image registry and path (default {DEFAULT_REGISTRY})",
    )
    parser.add_argument(
        "--skip-github-release", action="store_true", help="do not create the GitHub release"
    )
    parser.add_argument(
        "--cosign-key", default="", help="sign with this key file (default: keyless OIDC)"
    )
    parser.add_argument(
        "--no-sign", action="store_true", help="no signatures (a scratch registry only)"
    )
    parser.add_argument("--no-sbom", action="store_true", help="no SBOM attestations")
    parser.add_argument(
        "--helm-key",
        default="",
        help="also sign the charts with Helm (.prov) using this GPG key name "
        "(passphrase in BROKKR_HELM_KEY_PASSPHRASE)",
    )
    parser.add_argument("--helm-keyring", default="", help="the secret keyring holding --helm-key")
    parser.add_argument("--github-repo", default="colliery-io/brokkr", help="owner/name on GitHub")
    parser.add_argument(
        "--builder",
        choices=BUILDERS,
        default="auto",
        help="image builder: auto (Buildx when a Docker engine answers), buildx or podman",
    )
    return parser


def parse(argv: Sequence[str]) -> Request:
    """The release asked for by `argv`, or UsageError naming what is wrong."""
    args = _parser().parse_args(list(argv))
    options = Options(
        version=parse_version(args.version),
        registry=args.registry,
        dry_run=args.dry_run,
        github_release=not args.skip_github_release,
        cosign_key=args.cosign_key or None,
        sign=not args.no_sign,
        sbom=not args.no_sbom and not args.no_sign,
        helm_key=args.helm_key or None,
        helm_keyring=args.helm_keyring or None,
        github_repo=args.github_repo,
        builder=args.builder,
    )
    return Request(options=options, prepare=args.prepare)


def usage() -> str:
    """The full help text (`invoke release -- --help`)."""
    return _parser().format_help()
