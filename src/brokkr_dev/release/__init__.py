"""Release automation: one version tag gives signed multi-arch images and OCI charts.

Modules, each a small step with a clear interface:

- `version`: parse and validate `vX.Y.Z[-pre]`;
- `tags`: the pure tag fan-out rules (which registry tags a release creates or moves);
- `stamp`: write the version into pyproject.toml and the charts;
- `registry`: the OCI distribution HTTP API (list tags, read and copy manifests);
- `plan`: what a release will do, printed in full by `--dry-run`;
- `preflight`: refuse a release that cannot or must not run, with the reason;
- `notes`: release notes from git history;
- `signing`: cosign signatures and attestations, syft SBOMs;
- `provenance`: SLSA v1 provenance predicates from the pipeline's facts;
- `attestations`: which attestations a digest carries, read from the registry;
- `github`: the GitHub release through the REST API;
- `airgap`: the per-architecture air-gap bundle asset (charts, image layouts, manifests);
- `pipeline`: the resumable steps that publish everything;
- `verify`: `nox -s verify`, every check a user runs before trusting a release.
"""

from __future__ import annotations

from brokkr_dev.base.errors import AutomationError


class ReleaseError(AutomationError):
    """A release cannot go on; the message names the problem and the fix."""
