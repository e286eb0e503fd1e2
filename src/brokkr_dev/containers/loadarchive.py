"""Image archives in `docker save`'s format, written from layer tarballs, for
`docker load` and `ctr images import`.

The node image and its component images are made of tarballs we already have (a
Debian root filesystem, one binary each), so they are written directly instead of
imported and built by an engine. That way the image config names the architecture
the files are for: Debian's dockerd 20.10 ignores `docker import --platform` and
the legacy builder's, and writes the engine's own architecture into every config.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Fixed, so that equal inputs give an equal archive.
CREATED = "1970-01-01T00:00:00Z"
CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveImage:
    """One image of an archive: its name, its layers bottom first, its settings."""

    tag: str  # repository:tag, as `docker load` and `ctr images import` name it
    layers: Sequence[Path]  # uncompressed layer tarballs
    env: Sequence[str] = ()
    entrypoint: Sequence[str] = ()
    labels: dict[str, str] = field(default_factory=dict)


def layer_digest(layer: Path) -> str:
    """The sha256 of an uncompressed layer: its diff ID, and its ID in the archive."""
    digest = hashlib.sha256()
    with layer.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def config(image: ArchiveImage, arch: str, diff_ids: Sequence[str]) -> bytes:
    """The image configuration: platform, process settings, and the layers' diff IDs."""
    settings: dict[str, object] = {}
    if image.env:
        settings["Env"] = list(image.env)
    if image.entrypoint:
        settings["Entrypoint"] = list(image.entrypoint)
    if image.labels:
        settings["Labels"] = dict(image.labels)
    document = {
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": CREATED, "created_by": "brokkr"} for _ in diff_ids],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def write(output: Path, images: Sequence[ArchiveImage], arch: str) -> None:
    """Write the archive of `images` for linux/`arch`; a layer shared by several images
    is stored once. Written whole or not at all."""
    digests: dict[Path, str] = {}
    partial = output.with_name(output.name + ".partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            manifest = []
            for image in images:
                layers = []
                for layer in image.layers:
                    if layer not in digests:
                        digests[layer] = layer_digest(layer)
                        archive.add(layer, arcname=f"{digests[layer]}/layer.tar", filter=_plain)
                    layers.append(digests[layer])
                document = config(image, arch, layers)
                name = f"{hashlib.sha256(document).hexdigest()}.json"
                _add_bytes(archive, name, document)
                manifest.append(
                    {
                        "Config": name,
                        "RepoTags": [image.tag],
                        "Layers": [f"{d}/layer.tar" for d in layers],
                    }
                )
            _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=1).encode())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)


def binary_layer(binary: Path, inside: str, output: Path) -> Path:
    """A layer holding one executable at `inside` (e.g. usr/local/bin/etcd), owned by
    root, with its parent directories."""
    with tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as layer:
        parts = inside.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = tarfile.TarInfo("/".join(parts[:depth]))
            directory.type, directory.mode = tarfile.DIRTYPE, 0o755
            layer.addfile(directory)
        layer.add(binary, arcname="/".join(parts), filter=_executable)
    return output


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mtime = 0
    member.mode = 0o644
    return member


def _executable(member: tarfile.TarInfo) -> tarfile.TarInfo:
    _plain(member)
    member.mode = 0o755
    return member


def _add_bytes(archive: tarfile.TarFile, name: str, content: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(content)
    member.mode = 0o644
    archive.addfile(member, io.BytesIO(content))
