"""The node image kind itself publishes, pinned by digest.

kind names one default node image per release, by tag and digest, in its source
(`pkg/apis/config/defaults/image.go`). Where a registry answers, `e2e-kind` pulls
exactly that image and builds nothing; elsewhere it builds its own (build.py). The
pin follows [kind] in tools.toml; a unit test reads kind's source from the Go
module cache and checks that the two agree.
"""

from __future__ import annotations

KIND_VERSION = "v0.33.0"
# From sigs.k8s.io/kind@v0.33.0/pkg/apis/config/defaults/image.go
IMAGE = (
    "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
)
SOURCE_FILE = "pkg/apis/config/defaults/image.go"


def digest(reference: str = IMAGE) -> str:
    """The sha256:... part of a pinned reference."""
    return reference.rpartition("@")[2]


def repository(reference: str = IMAGE) -> str:
    """kindest/node, without tag or digest."""
    return reference.partition("@")[0].rpartition(":")[0]


def tag(reference: str = IMAGE) -> str:
    """v1.37.0: the tag kind's release names (informative; a pull never uses it)."""
    return reference.partition("@")[0].rpartition(":")[2]


def with_digest(other: str, reference: str = IMAGE) -> str:
    """The pinned repository and tag with another digest (an image a test put in a mirror)."""
    return f"{reference.partition('@')[0]}@{other}"


def by_digest(reference: str = IMAGE) -> str:
    """The reference a pull must use: repository@digest (a tag could move)."""
    return f"{repository(reference)}@{digest(reference)}"


def from_kind_source(text: str) -> str | None:
    """The default image named in kind's image.go, or None when it names none."""
    for line in text.splitlines():
        if line.strip().startswith("const Image"):
            return line.partition("=")[2].strip().strip('"') or None
    return None
