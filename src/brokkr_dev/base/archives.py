"""Unpacking tar archives that we did not write, safely on every Python 3.11.

Python 3.11.4 added extraction filters (`filter="data"`): no absolute or escaping
paths, no links out of the destination, no device files. Debian 12 ships 3.11.2,
which has none, so there the same refusals are made here before extracting.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath


class UnsafeArchive(tarfile.TarError):
    """A member would land outside the destination, or is a device file."""


def extract_all(tar: tarfile.TarFile, destination: Path) -> None:
    """Extract every member under `destination`, refusing unsafe ones."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
        return
    check_members(tar.getmembers())
    tar.extractall(destination)  # noqa: S202 - every member was checked above


def check_members(members: list[tarfile.TarInfo]) -> None:
    """The `data` filter's refusals, for a Python without filters."""
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise UnsafeArchive(f"{member.name}: outside the destination")
        if member.isdev():
            raise UnsafeArchive(f"{member.name}: a device file")
        if member.issym() or member.islnk():
            link = PurePosixPath(member.linkname)
            base = name.parent if member.issym() else PurePosixPath()
            if link.is_absolute() or _escapes(base / link):
                raise UnsafeArchive(f"{member.name}: links outside the destination")


def _escapes(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part in {".", ""} else 1
        if depth < 0:
            return True
    return False
