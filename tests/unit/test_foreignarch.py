"""Binaries of another architecture: the check that finds every ELF file of the wrong
one in an image tarball and the tarballs inside it, and the QEMU interpreter a chroot
borrows to run one (never left in the root filesystem)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from brokkr_dev.containers import foreignarch
from brokkr_dev.containers.foreignarch import ForeignArchError


def elf(machine: int) -> bytes:
    """An ELF header as Go writes it for a 64-bit little-endian machine, then code."""
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little")
    return header + machine.to_bytes(2, "little") + bytes(200)


AMD64, ARM64 = elf(62), elf(183)


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def test_elf_machine_reads_the_header_and_ignores_anything_else():
    assert foreignarch.elf_machine(AMD64[:20]) == 62
    assert foreignarch.elf_machine(ARM64) == 183
    assert foreignarch.elf_machine(b"#!/bin/sh\necho not a binary\n") is None
    assert foreignarch.elf_machine(b"\x7fELF") is None  # too short to hold e_machine


def test_every_binary_of_another_architecture_is_named_with_its_path_through_the_archives(
    tmp_path: Path,
):
    layer = tar_of({"usr/local/bin/etcd": AMD64, "usr/local/bin/pause": ARM64})
    saved_images = tar_of({
        "blobs/sha256/aaaa": layer,
        "blobs/sha256/bbbb": gzip.compress(tar_of({"bin/coredns": AMD64})),
        "index.json": b'{"schemaVersion": 2, "manifests": []}',
    })  # fmt: skip
    node = tmp_path / "node.tar"
    node.write_bytes(
        tar_of({
            "./usr/bin/kubelet": ARM64,
            "./usr/bin/kubectl": AMD64,
            "./usr/local/bin/entrypoint": b"#!/bin/bash\nexec \"$@\"\n" * 20,
            "./kind/images/images.tar": saved_images,
        })
    )  # fmt: skip
    assert foreignarch.wrong_binaries(node, "arm64") == [
        "usr/bin/kubectl (amd64)",
        "kind/images/images.tar!blobs/sha256/aaaa!usr/local/bin/etcd (amd64)",
        "kind/images/images.tar!blobs/sha256/bbbb!bin/coredns (amd64)",
    ]
    assert foreignarch.wrong_binaries(node, "amd64") == [
        "usr/bin/kubelet (arm64)",
        "kind/images/images.tar!blobs/sha256/aaaa!usr/local/bin/pause (arm64)",
    ]


def test_an_unknown_architecture_is_refused_with_the_known_ones(tmp_path: Path):
    (tmp_path / "empty.tar").write_bytes(tar_of({}))
    with pytest.raises(
        ForeignArchError, match=r"cannot check binaries for 'riscv64'; known: amd64, arm64"
    ):
        foreignarch.wrong_binaries(tmp_path / "empty.tar", "riscv64")


@pytest.fixture
def binfmt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A binfmt_misc folder of our own, and an interpreter to point its entry at."""
    folder = tmp_path / "binfmt_misc"
    folder.mkdir()
    monkeypatch.setattr(foreignarch, "BINFMT", folder)
    interpreter = tmp_path / "host" / "qemu-aarch64-static"
    interpreter.parent.mkdir()
    interpreter.write_bytes(b"the emulator")
    return folder


def entry(folder: Path, interpreter: Path, flags: str, state: str = "enabled") -> None:
    (folder / "qemu-aarch64").write_text(
        f"{state}\ninterpreter {interpreter}\nflags: {flags}\noffset 0\nmagic 7f454c46\n"
    )


def test_the_interpreter_is_in_the_chroot_only_while_it_runs(binfmt: Path, tmp_path: Path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr").mkdir(parents=True)
    interpreter = tmp_path / "host" / "qemu-aarch64-static"
    entry(binfmt, interpreter, "P")  # no F: the kernel opens it inside the chroot
    inside = rootfs / str(interpreter).lstrip("/")
    with foreignarch.emulator_in(rootfs, "arm64", host_arch="amd64"):
        assert inside.read_bytes() == b"the emulator"
    assert not inside.exists()
    assert sorted(p.relative_to(rootfs).as_posix() for p in rootfs.rglob("*")) == ["usr"]


def test_with_the_f_flag_or_on_the_same_architecture_nothing_is_copied(
    binfmt: Path, tmp_path: Path
):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    entry(binfmt, tmp_path / "host" / "qemu-aarch64-static", "PF")
    with foreignarch.emulator_in(rootfs, "arm64", host_arch="amd64"):
        assert list(rootfs.iterdir()) == []
    with foreignarch.emulator_in(rootfs, "amd64", host_arch="amd64"):
        assert list(rootfs.iterdir()) == []


def test_without_qemu_the_error_names_the_package(binfmt: Path, tmp_path: Path):
    missing = foreignarch.emulator_in(tmp_path, "arm64", host_arch="amd64")
    with pytest.raises(
        ForeignArchError, match=r"needs QEMU: sudo apt-get install qemu-user-static"
    ):
        missing.__enter__()
    entry(binfmt, tmp_path / "host" / "qemu-aarch64-static", "P", state="disabled")
    disabled = foreignarch.emulator_in(tmp_path, "arm64", host_arch="amd64")
    with pytest.raises(ForeignArchError, match=r"qemu-aarch64 is disabled"):
        disabled.__enter__()
