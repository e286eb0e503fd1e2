"""Images for another CPU architecture: which binaries an archive holds, and how a
chroot runs one of them through QEMU's binfmt_misc entry.

Standard library only (plus base): the node image's assembly imports it inside a user
namespace, where only plain `python3` runs.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tarfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from brokkr_dev.base.errors import AutomationError

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# e_machine of an ELF header, by Go architecture name.
ELF_MACHINES = {"amd64": 62, "arm64": 183}
# QEMU's (and binfmt_misc's) names of those architectures.
QEMU_NAMES = {"amd64": "x86_64", "arm64": "aarch64"}
ELF_MAGIC = b"\x7fELF"
PT_INTERP = 3  # the program header of a dynamically linked executable
GZIP_MAGIC = b"\x1f\x8b"
TAR_MAGIC_OFFSET = 257  # "ustar" in a POSIX tar header
HEAD = TAR_MAGIC_OFFSET + 8


class ForeignArchError(AutomationError):
    """Binaries of another architecture cannot be run or checked; the message says why."""


def elf_machine(head: bytes) -> int | None:
    """The e_machine of an ELF file's first 20 bytes (little-endian, as on amd64 and
    arm64); None for anything that is not ELF."""
    if len(head) < 20 or not head.startswith(ELF_MAGIC):
        return None
    return int.from_bytes(head[18:20], "big" if head[5] == 2 else "little")


def needs_interpreter(binary: Path) -> bool:
    """Whether a 64-bit ELF executable names a program interpreter (PT_INTERP), i.e.
    is linked dynamically and needs a C library in the image that runs it."""
    data = binary.read_bytes()
    if elf_machine(data[:20]) is None or data[4] != 2:  # EI_CLASS 2: 64-bit
        raise ForeignArchError(f"{binary} is not a 64-bit ELF file")
    order: typing.Literal["little", "big"] = "big" if data[5] == 2 else "little"
    offset = int.from_bytes(data[32:40], order)  # e_phoff
    size = int.from_bytes(data[54:56], order)  # e_phentsize
    count = int.from_bytes(data[56:58], order)  # e_phnum
    kinds = (
        int.from_bytes(data[at : at + 4], order)
        for at in range(offset, offset + size * count, size)
    )
    return PT_INTERP in kinds


def architecture_of(machine: int) -> str:
    names = {number: arch for arch, number in ELF_MACHINES.items()}
    return names.get(machine, f"e_machine {machine}")


def wrong_binaries(archive: Path, arch: str) -> list[str]:
    """Every ELF file in the tar `archive`, and in the tars inside it (an image's
    layers, the node's saved component images), that is not built for `arch`:
    "path (architecture)", with the path through the nested archives."""
    if arch not in ELF_MACHINES:
        raise ForeignArchError(
            f"cannot check binaries for {arch!r}; known: {', '.join(ELF_MACHINES)}"
        )
    with archive.open("rb") as stream:
        return list(_wrong_in(stream, ELF_MACHINES[arch], prefix=""))


def _wrong_in(stream: IO[bytes], machine: int, prefix: str) -> Iterator[str]:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if not member.isfile() or member.size < 20:
                continue
            content = tar.extractfile(member)
            if content is None:
                continue
            path = f"{prefix}{member.name.removeprefix('./')}"
            head = _head(content)
            found = elf_machine(head)
            if found is not None and found != machine:
                yield f"{path} ({architecture_of(found)})"
            elif head.startswith(GZIP_MAGIC):
                unzipped = typing.cast(IO[bytes], gzip.GzipFile(fileobj=content))
                if _is_tar(_head(unzipped)):
                    yield from _wrong_in(unzipped, machine, prefix=f"{path}!")
            elif _is_tar(head):
                yield from _wrong_in(content, machine, prefix=f"{path}!")


def _head(stream: IO[bytes]) -> bytes:
    """The first bytes of a buffered stream, left unread (one read fills the buffer)."""
    return stream.peek(HEAD)[:HEAD]  # type: ignore[attr-defined]


def _is_tar(head: bytes) -> bool:
    return head[TAR_MAGIC_OFFSET:].startswith(b"ustar")


def binfmt_entry(arch: str) -> Path:
    """QEMU's binfmt_misc entry for `arch` (it exists once qemu-user-static registered it)."""
    return BINFMT / f"qemu-{QEMU_NAMES.get(arch, arch)}"


@contextlib.contextmanager
def emulator_in(rootfs: Path, arch: str, host_arch: str) -> Iterator[None]:
    """Let a chroot into `rootfs` run `arch` binaries on a `host_arch` machine.

    The kernel runs them through QEMU's binfmt_misc entry (Debian: qemu-user-static).
    Without its F flag, the kernel opens the interpreter by path inside the chroot, so
    a copy of it sits there for the duration and is removed after: the image never
    ships it."""
    if arch == host_arch:
        yield
        return
    entry = binfmt_entry(arch)
    fix = f"sudo apt-get install qemu-user-static (its binfmt_misc entry {entry.name})"
    try:
        lines = entry.read_text().splitlines()
    except OSError:
        raise ForeignArchError(f"running {arch} binaries here needs QEMU: {fix}") from None
    if "enabled" not in lines:
        raise ForeignArchError(f"{entry} is disabled; enable it, or {fix}")
    fields = dict(line.split(" ", 1) for line in lines if " " in line)
    if "F" in fields.get("flags:", ""):
        yield
        return
    interpreter = Path(fields["interpreter"])
    copy = rootfs / interpreter.relative_to("/")
    if copy.exists():
        raise ForeignArchError(f"{copy} exists already: the root filesystem would ship it")
    created = [parent for parent in copy.parents if not parent.exists()]
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(interpreter.resolve(), copy)
    copy.chmod(0o755)
    try:
        yield
    finally:
        copy.unlink()
        for directory in created:  # innermost first
            if directory.is_relative_to(rootfs) and directory != rootfs:
                directory.rmdir()
