"""The one rule that turns a git branch name into an image tag.

Development builds (`invoke images.build`, `nox -s publish-dev`) tag their images
with the branch name; releases write `latest`, `vX`, `vX.Y`, `vX.Y.Z[-pre]`,
`X.Y.Z[-pre]`, per-architecture variants of those, and cosign's signature tags.
Both the image build (here, in containers) and the release wing use this function,
so a branch can never be pushed under a tag that a release owns.
"""

from __future__ import annotations

import re

from brokkr_dev.base.errors import AutomationError

# OCI tag grammar: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; we keep lower case.
_TAG_INVALID = re.compile(r"[^a-z0-9_.-]+")
MAX_TAG = 128
# Shapes of tags that releases, signing and other commits' builds write, each with
# any `-suffix` (a prerelease, or a per-architecture `-amd64`): `latest`, `v1`,
# `v1.2`, `v1.2.3`, `1.2.3`, `sha-<7 hex>`, cosign v2's `sha256-<hex>.sig/.att` and the
# OCI referrers fallback tag `sha256-<hex>` (cosign v3's signatures on registries
# without the referrers API).
RESERVED = re.compile(r"^(latest|v?\d+(\.\d+){0,2}|sha-[0-9a-f]{7}|sha256)(-.*)?$")
RESERVED_PREFIX = "branch-"


class TagNameError(AutomationError):
    """A branch name leaves nothing usable as an image tag."""


def sanitise_branch(branch: str) -> str:
    """A branch name as a valid image tag that can never shadow a reserved tag.

    Lower-case; runs of other characters become one '-'; no leading '.'/'-'; at most
    128 characters. A result in a reserved shape (`latest`, `v1.2`, `1.2.3`,
    `sha-abcdef0`, ...) is prefixed with `branch-`.
    """
    tag = _TAG_INVALID.sub("-", branch.strip().lower())
    tag = re.sub(r"-{2,}", "-", tag).lstrip(".-")[:MAX_TAG].rstrip(".-")
    if not tag:
        raise TagNameError(
            f"branch name {branch!r} has no characters usable in an image tag; "
            "rename the branch to include letters or digits"
        )
    # Checked after cutting to length: a cut can turn `1...1x` into a version shape.
    if RESERVED.match(tag):
        tag = f"{RESERVED_PREFIX}{tag}"[:MAX_TAG].rstrip(".-")
    return tag
