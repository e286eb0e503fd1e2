"""The node image's root file system, assembled as root of its files: as root, or as
a normal user inside a user namespace (`containers/userns.py`).

`python3 -m brokkr_dev.containers.nodeimage.assemble PLAN.json` extracts the node's
Debian root file system, installs kind's node files, our binaries and settings,
writes containerd's base spec and the systemd units, packs the tree into a tarball
with numeric owners, and removes the tree. It must run as (namespace) root so the
files keep their owners and setuid bits; `run()` starts it that way. Only the
decisions made in build.py arrive here (as the plan), and this module and what it
imports use the standard library only: the namespace runs plain `python3`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from brokkr_dev.base.commands import run as run_command
from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.system import sbin_program
from brokkr_dev.containers import foreignarch, userns

MODULE = "brokkr_dev.containers.nodeimage.assemble"
FILES = Path(__file__).parent / "files"
SOURCE_ROOT = Path(__file__).resolve().parents[3]  # src/, for `python3 -m` in the namespace
STEP_TIMEOUT = 1800.0  # extracting or packing about 1.2 GB on a busy machine
ASSEMBLY_TIMEOUT = 3600.0
# kind's units, Debian's containerd and ours; enabled as kind's base image does.
UNITS = (
    "kubelet.service",
    "containerd.service",
    "undo-mount-hacks.service",
    "brokkr-import-images.service",
)
# Device nodes cannot be made in a user namespace, and the container runtime mounts
# its own /dev over the image's: /dev stays empty, as root and as a normal user.
EXCLUDED = ("./dev/*", "dev/*")
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class AssemblyError(AutomationError):
    """The node's root file system could not be assembled; the message says why."""


@dataclass(frozen=True)
class NodeAssembly:
    """Everything the assembly reads and writes; decided by build.py."""

    rootfs_tar: Path  # the node's Debian root file system (mmdebstrap's tarball)
    kind_files: Path  # kind's images/base/files of the pinned kind module
    binaries: dict[str, Path]  # kubelet, kubectl and kubeadm
    images_tar: Path  # the component images (`docker save`); moved into the image
    texts: dict[str, str]  # path in the image -> generated content (configs, manifests)
    work: Path  # created here for the tree, and removed before the assembly ends
    output: Path  # the image tarball, with numeric owners
    arch: str  # the node's architecture (Go name); another one than the host's runs in QEMU
    host_arch: str

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), default=str, indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> NodeAssembly:
        data = json.loads(path.read_text())
        return cls(
            rootfs_tar=Path(data["rootfs_tar"]),
            kind_files=Path(data["kind_files"]),
            binaries={name: Path(p) for name, p in data["binaries"].items()},
            images_tar=Path(data["images_tar"]),
            texts=dict(data["texts"]),
            work=Path(data["work"]),
            output=Path(data["output"]),
            arch=data["arch"],
            host_arch=data["host_arch"],
        )


def run(plan_file: Path, python: str = sys.executable) -> None:
    """Assemble as root of the files: directly as root, else in a user namespace
    (call `userns.ensure_available` first for the clear message when it can't)."""
    search = [str(SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    run_command(
        [*userns.prefix(), python, "-m", MODULE, str(plan_file)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(search)},
        timeout=ASSEMBLY_TIMEOUT,
    )


def assemble(plan: NodeAssembly) -> None:
    """Extract, install, configure, pack; the tree is removed even when a step fails."""
    plan.work.mkdir()  # never an existing folder: it is removed at the end
    try:
        rootfs = plan.work / "rootfs"
        rootfs.mkdir(mode=0o755)
        extract(plan.rootfs_tar, rootfs)
        install_node_files(rootfs, plan)
        with foreignarch.emulator_in(rootfs, plan.arch, plan.host_arch):
            containerd_spec(rootfs)
        systemd_units(rootfs)
        (rootfs / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
        pack(rootfs, plan.output)
    finally:
        shutil.rmtree(plan.work)


def extract(tarball: Path, rootfs: Path) -> None:
    """Owners by number (a name would be looked up in this machine's /etc/passwd),
    modes with their setuid bits, /dev left empty."""
    excludes = [f"--exclude={pattern}" for pattern in EXCLUDED]
    run_command(
        [
            "tar",
            "--numeric-owner",
            "--same-owner",
            "--same-permissions",
            "--anchored",
            *excludes,
            "-C",
            str(rootfs),
            "-xf",
            str(tarball),
        ],
        timeout=STEP_TIMEOUT,
    )


def install_node_files(rootfs: Path, plan: NodeAssembly) -> None:
    """kind's node conventions, our binaries and settings, inside the root filesystem."""
    for top in ("etc", "kind", "usr"):
        copy_tree(plan.kind_files / top, rootfs / top, executable=("usr/local/bin", "kind/bin"))
    install(plan.binaries["kubelet"], rootfs / "usr/bin/kubelet", 0o755)
    install(plan.binaries["kubectl"], rootfs / "usr/bin/kubectl", 0o755)
    install(plan.binaries["kubeadm"], rootfs / "usr/lib/brokkr/kubeadm", 0o755)
    install(FILES / "kubeadm-wait.sh", rootfs / "usr/bin/kubeadm", 0o755)
    # kind's units expect containerd in /usr/local/bin; Debian installs it in /usr/bin.
    (rootfs / "usr/local/bin/containerd").symlink_to("/usr/bin/containerd")
    (rootfs / "opt/cni").mkdir(mode=0o755, parents=True, exist_ok=True)
    (rootfs / "opt/cni/bin").symlink_to("/usr/lib/cni")
    install(FILES / "10-brokkr-bridge.conflist", rootfs / "etc/cni/net.d/10-brokkr-bridge.conflist")
    install(FILES / "99-brokkr-bridge.conf", rootfs / "etc/sysctl.d/99-brokkr-bridge.conf")
    install(
        FILES / "brokkr-import-images.service",
        rootfs / "etc/systemd/system/brokkr-import-images.service",
    )
    images = rootfs / "kind/images/images.tar"
    images.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    shutil.move(plan.images_tar, images)  # a rename: the archive is large
    images.chmod(0o644)
    for relative, text in plan.texts.items():
        target = rootfs / relative
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o644)


def install(source: Path, target: Path, mode: int = 0o644) -> None:
    """Copy content only: the copy belongs to (namespace) root and gets `mode`."""
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    target.chmod(mode)


def copy_tree(source: Path, target: Path, executable: tuple[str, ...]) -> None:
    """Copy kind's files with normal modes (the module cache's copies are read-only);
    scripts below the `executable` directories (relative to the root) get 0755."""
    root = target.parent
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(mode=0o755, parents=True, exist_ok=True)
            continue
        relative = destination.relative_to(root).as_posix()
        script = any(relative.startswith(prefix + "/") for prefix in executable)
        install(path, destination, 0o755 if script else 0o644)


def containerd_spec(rootfs: Path) -> None:
    """containerd's default OCI spec from the node's own ctr, with kind's hook and
    without rlimits (as kind's base image has it)."""
    chroot = sbin_program("chroot") or "chroot"  # /usr/sbin: not on a user's PATH
    output = run_command(
        [chroot, str(rootfs), "ctr", "oci", "spec"],
        env={**os.environ, "PATH": STANDARD_PATH},
        timeout=120,
    ).stdout
    try:
        spec = json.loads(output)
    except ValueError as exc:
        raise AssemblyError(f"`ctr oci spec` printed no JSON: {output[:300]!r}") from exc
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append(
        {"path": "/kind/bin/mount-product-files.sh"}
    )
    spec.get("process", {}).pop("rlimits", None)
    (rootfs / "etc/containerd/cri-base.json").write_text(json.dumps(spec, indent=2))


def systemd_units(rootfs: Path) -> None:
    """Only the services a kind node runs, as kind's base image sets them up."""
    for pattern in (
        "lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
        "lib/systemd/system/multi-user.target.wants/*",
        "etc/systemd/system/*.wants/*",
        "lib/systemd/system/local-fs.target.wants/*",
        "lib/systemd/system/sockets.target.wants/*udev*",
        "lib/systemd/system/sockets.target.wants/*initctl*",
        "lib/systemd/system/basic.target.wants/*",
    ):
        for path in rootfs.glob(pattern):
            path.unlink()
    with (rootfs / "etc/systemd/journald.conf").open("a") as journald:
        journald.write("ReadKMsg=no\n")
    systemctl = ["systemctl", f"--root={rootfs}"]
    run_command([*systemctl, "enable", *UNITS], timeout=120)
    run_command([*systemctl, "mask", "systemd-binfmt.service"], timeout=120)


def pack(rootfs: Path, output: Path) -> None:
    """The tree as an image tarball with numeric owners, written whole or not at all."""
    partial = output.with_name(output.name + ".partial")
    try:
        run_command(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            timeout=STEP_TIMEOUT,
        )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print(
            "usage: python3 -m brokkr_dev.containers.nodeimage.assemble PLAN.json", file=sys.stderr
        )
        return 2
    if os.geteuid() != 0:
        print(
            "error: the assembly must run as root of its files; start it with "
            "brokkr_dev.containers.nodeimage.assemble.run(), which uses a user namespace",
            file=sys.stderr,
        )
        return 2
    try:
        assemble(NodeAssembly.load(Path(argv[0])))
    except AutomationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
