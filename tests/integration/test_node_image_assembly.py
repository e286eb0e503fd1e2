"""The kind node image's assembly, for real, as root and in a user namespace.

The assembly (`brokkr_dev.containers.nodeimage.assemble`) gets a small fake Debian
root file system made here, with what it must keep: files owned by uids 0, 100
and 65534, a setuid and a setgid program, a directory of uid 101, a symlink and a
device node. Its `ctr` is a shell script run by a copy of this machine's dash (with
its libraries), so `chroot ROOTFS ctr oci spec` runs for real; systemctl and tar are
the real ones. Nothing of Kubernetes is built: the binaries are small stand-ins.

Who builds: as a normal user (CI's `runner`), that user, in the user namespace, as
build.py does it; this needs uidmap and a subordinate id range (else the test fails
with the fix). As root, both paths: root's own (no namespace), and the namespace
path as the throw-away user `nodeimg-test` (created here when missing, with the ids
200000-265535 in /etc/subuid and /etc/subgid) started by `runuser`, with Debian's
`/usr/bin/python3` (root's interpreter may be out of that user's reach).
"""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brokkr_dev.base import toolchain
from brokkr_dev.base.commands import CommandError
from brokkr_dev.containers import userns
from brokkr_dev.containers.nodeimage import assemble, build, recipe

SOURCE = Path(assemble.__file__).resolve().parents[3]
THROWAWAY_USER = "nodeimg-test"
THROWAWAY_IDS = "200000-265535"
PINS = {
    "kubernetes-node": "v1.36.3",
    "etcd": "v3.6.16",
    "coredns": "v1.14.2",
    "pause": "v3.10.2",
    "kube-router": "v2.1.0",
    "local-path-provisioner": "v0.0.30",
    "kind": "v0.33.0",
}
SPEC = {
    "ociVersion": "1.1.0",
    "process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024}]},
}
KIND_CONTAINERD = 'version = 2\n  sandbox_image = "registry.k8s.io/pause:3.10"\n  restrict_oom_score_adj = false\n'
UNIT = "[Unit]\nDescription={}\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"

# path in the image -> (uid, gid, mode) the assembly must keep from the Debian tarball
KEPT = {
    "./usr/bin/passwd": (0, 0, 0o4755),
    "./usr/bin/chage": (0, 42, 0o2755),
    "./var/lib/by-number": (100, 100, 0o640),
    "./var/lib/service": (101, 102, 0o750),
    "./var/lib/service/state": (101, 102, 0o600),
    "./var/lib/nobody": (65534, 65534, 0o644),
}
# path in the image -> mode of what the assembly installs (all owned by 0:0)
INSTALLED = {
    "./usr/bin/kubelet": 0o755,
    "./usr/bin/kubectl": 0o755,
    "./usr/bin/kubeadm": 0o755,
    "./usr/lib/brokkr/kubeadm": 0o755,
    "./usr/local/bin/entrypoint": 0o755,
    "./kind/bin/mount-product-files.sh": 0o755,
    "./etc/containerd/config.toml": 0o644,
    "./etc/containerd/cri-base.json": 0o644,
    "./etc/cni/net.d/10-brokkr-bridge.conflist": 0o644,
    "./etc/systemd/system/kubelet.service": 0o644,
    "./kind/images/images.tar": 0o644,
    "./kind/manifests/default-cni.yaml": 0o644,
    "./kind/version": 0o644,
}


@dataclass
class Builder:
    """Who assembles, in which folder (theirs), and how."""

    name: str
    uid: int
    workspace: Path
    assemble: Callable[[Path], None]


def builders() -> list[str]:
    return ["as-root", "in-user-namespace"] if os.geteuid() == 0 else ["in-user-namespace"]


@pytest.fixture(params=builders())
def builder(request: pytest.FixtureRequest) -> Iterator[Builder]:
    # Not pytest's tmp_path: root's is closed to the throw-away user.
    workspace = Path(tempfile.mkdtemp(prefix="brokkr-assembly-test-"))
    me = pwd.getpwuid(os.geteuid())
    if request.param == "as-root":
        yield Builder(me.pw_name, me.pw_uid, workspace, assemble.run)
    elif me.pw_uid != 0:
        yield Builder(me.pw_name, me.pw_uid, workspace, as_this_user)
    else:
        uid = throwaway_user()
        os.chown(workspace, uid, uid)
        yield Builder(THROWAWAY_USER, uid, workspace, as_throwaway_user)
    shutil.rmtree(workspace)


def as_this_user(plan_file: Path) -> None:
    """build.py's two calls, as this (normal) user."""
    userns.ensure_available("the node image assembly test")
    assemble.run(plan_file)


def throwaway_user() -> int:
    """The normal user with subordinate ids that root's run of this test builds as."""
    try:
        entry = pwd.getpwnam(THROWAWAY_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", THROWAWAY_USER], check=True)
        entry = pwd.getpwnam(THROWAWAY_USER)
    ranges = []
    for name in ("subuid", "subgid"):
        Path("/etc", name).touch()
        ranges.append(userns.first_range(THROWAWAY_USER, entry.pw_uid, Path("/etc", name)))
    if any(r is None or r[1] < userns.NEEDED_IDS for r in ranges):
        subprocess.run(
            [
                "usermod",
                "--add-subuids",
                THROWAWAY_IDS,
                "--add-subgids",
                THROWAWAY_IDS,
                THROWAWAY_USER,
            ],
            check=True,
        )
    return entry.pw_uid


def as_throwaway_user(plan_file: Path) -> None:
    """build.py's two calls, made by the throw-away user with a normal user's PATH."""
    script = (
        "import sys; from pathlib import Path\n"
        "from brokkr_dev.containers import userns\n"
        "from brokkr_dev.containers.nodeimage import assemble\n"
        "userns.ensure_available('the node image assembly test')\n"
        "assemble.run(Path(sys.argv[1]))\n"
    )
    home = pwd.getpwnam(THROWAWAY_USER).pw_dir
    env = [f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={SOURCE}"]
    result = subprocess.run(
        [
            "runuser",
            "-u",
            THROWAWAY_USER,
            "--",
            "env",
            "-i",
            *env,
            "/usr/bin/python3",
            "-c",
            script,
            str(plan_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise CommandError(result.args, result.returncode, result.stderr)


def add(
    tar: tarfile.TarFile,
    name: str,
    *,
    data: bytes | None = None,
    owner: tuple[int, int] = (0, 0),
    mode: int = 0o644,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
    uname: str = "",
) -> None:
    member = tarfile.TarInfo(name)
    member.uid, member.gid = owner
    member.uname = member.gname = uname
    member.mode = mode
    member.type = kind
    member.linkname = link
    if kind == tarfile.CHRTYPE:
        member.devmajor, member.devminor = 1, 3
    member.size = len(data or b"")
    tar.addfile(member, None if data is None else io.BytesIO(data))


def fake_debian_rootfs(target: Path, with_ctr: bool = True) -> Path:
    """A tiny root file system shaped like mmdebstrap's tarball (./-prefixed names)."""
    shell = Path("/bin/sh").resolve()
    libraries = re.findall(
        r"(/\S+) \(0x",
        subprocess.run(["ldd", str(shell)], capture_output=True, text=True, check=True).stdout,
    )
    directories = {
        ".",
        "./bin",
        "./dev",
        "./dev/pts",
        "./etc",
        "./etc/containerd",
        "./etc/sysctl.d",
        "./etc/systemd",
        "./etc/systemd/system",
        "./lib",
        "./lib/systemd",
        "./lib/systemd/system",
        "./lib/systemd/system/multi-user.target.wants",
        "./usr",
        "./usr/bin",
        "./usr/sbin",
        "./usr/lib",
        "./usr/lib/cni",
        "./usr/local",
        "./usr/local/bin",
        "./var",
        "./var/lib",
    }
    for library in libraries:
        parent = Path(library).parent
        while parent != Path("/"):
            directories.add(f".{parent}")
            parent = parent.parent
    with tarfile.open(target, "w", format=tarfile.GNU_FORMAT) as tar:
        for directory in sorted(directories):
            add(tar, directory, kind=tarfile.DIRTYPE, mode=0o755)
        add(tar, "./bin/sh", data=shell.read_bytes(), mode=0o755)
        for library in libraries:
            add(tar, f".{library}", data=Path(library).resolve().read_bytes(), mode=0o755)
        if with_ctr:
            script = f"#!/bin/sh\necho '{json.dumps(SPEC)}'\n"
            add(tar, "./usr/bin/ctr", data=script.encode(), mode=0o755)
        add(tar, "./usr/bin/passwd", data=b"setuid", mode=0o4755)
        add(tar, "./usr/bin/chage", data=b"setgid", owner=(0, 42), mode=0o2755)
        # `daemon` is uid 1 on this machine: only a numeric extraction keeps 100
        add(tar, "./var/lib/by-number", data=b"x", owner=(100, 100), mode=0o640, uname="daemon")
        add(tar, "./var/lib/service", kind=tarfile.DIRTYPE, owner=(101, 102), mode=0o750)
        add(tar, "./var/lib/service/state", data=b"s", owner=(101, 102), mode=0o600)
        add(tar, "./var/lib/nobody", data=b"n", owner=(65534, 65534))
        add(tar, "./usr/sbin/init", kind=tarfile.SYMTYPE, link="/lib/systemd/systemd", mode=0o777)
        add(tar, "./dev/null", kind=tarfile.CHRTYPE, mode=0o666)
        add(tar, "./etc/containerd/config.toml", data=b"# Debian's, replaced by kind's\n")
        add(tar, "./etc/systemd/journald.conf", data=b"[Journal]\n")
        add(tar, "./lib/systemd/system/containerd.service", data=UNIT.format("containerd").encode())
        add(
            tar,
            "./lib/systemd/system/multi-user.target.wants/getty.target",
            kind=tarfile.SYMTYPE,
            link="../getty.target",
            mode=0o777,
        )
    return target


def fake_kind_module(kind_dir: Path) -> Path:
    """kind's images/base/files, read-only as in the Go module cache."""
    files = build.node_files(kind_dir)
    contents = {
        "etc/containerd/config.toml": KIND_CONTAINERD,
        "etc/systemd/system/kubelet.service": UNIT.format("kubelet"),
        "etc/systemd/system/undo-mount-hacks.service": UNIT.format("undo mount hacks"),
        "kind/bin/mount-product-files.sh": "#!/bin/sh\n",
        "usr/local/bin/entrypoint": '#!/bin/sh\nexec "$@"\n',
    }
    for relative, text in contents.items():
        (files / relative).parent.mkdir(parents=True, exist_ok=True)
        (files / relative).write_text(text)
        (files / relative).chmod(0o444)
    return kind_dir


def plan_for(builder: Builder, with_ctr: bool = True) -> tuple[assemble.NodeAssembly, Path]:
    """build.py's plan for the fake inputs, all in the builder's own folder."""
    workspace = builder.workspace
    inputs = workspace / "inputs"
    inputs.mkdir()
    binaries = {}
    for name in ("kubelet", "kubectl", "kubeadm"):
        binaries[name] = inputs / name
        binaries[name].write_text(f"#!/bin/sh\necho {name}\n")
        binaries[name].chmod(0o755)
    plan = build.node_assembly(
        fake_debian_rootfs(inputs / "node-rootfs.tar", with_ctr),
        fake_kind_module(inputs / "kind"),
        binaries=binaries,
        versions=PINS,
        images=recipe.component_images(PINS),
        work=workspace,
        arch=toolchain.host_platform()[1],
    )
    plan.images_tar.write_bytes(b"component images")
    plan_file = plan.save(workspace / "assembly.json")
    if builder.uid != os.geteuid():
        subprocess.run(["chown", "-R", f"{builder.name}:", str(workspace)], check=True)
    return plan, plan_file


def owner_of(path: Path) -> int:
    return path.stat().st_uid


def content(tar: tarfile.TarFile, name: str) -> bytes:
    file = tar.extractfile(name)
    assert file is not None, f"{name} is not a regular file"
    return file.read()


def test_the_image_keeps_debians_owners_and_ours_belong_to_root(builder: Builder) -> None:
    plan, plan_file = plan_for(builder)

    builder.assemble(plan_file)

    assert not plan.work.exists(), "the assembly must remove its tree"
    assert not plan.images_tar.exists(), "the component images are moved into the image"
    assert owner_of(plan.output) == builder.uid, "docker import reads it as this user"
    with tarfile.open(plan.output) as tar:
        members = {m.name: m for m in tar.getmembers()}
        spec = json.loads(content(tar, "./etc/containerd/cri-base.json"))
        journald = content(tar, "./etc/systemd/journald.conf").decode()
        version = content(tar, "./kind/version").decode()
        images = content(tar, "./kind/images/images.tar")

    def owner_and_mode(name: str) -> tuple[int, int, int]:
        member = members[name]
        return member.uid, member.gid, stat.S_IMODE(member.mode)

    assert {name: owner_and_mode(name) for name in KEPT} == KEPT
    assert members["./usr/sbin/init"].issym()
    assert members["./usr/sbin/init"].linkname == "/lib/systemd/systemd"
    assert {name: owner_and_mode(name) for name in INSTALLED} == {
        name: (0, 0, mode) for name, mode in INSTALLED.items()
    }
    # /dev is left to the container runtime: the directory stays, the device goes
    assert members["./dev"].isdir()
    assert [name for name in members if name.startswith("./dev/")] == []
    # containerd's spec came from the node's own ctr, through chroot
    assert spec["hooks"]["createContainer"] == [{"path": "/kind/bin/mount-product-files.sh"}]
    assert "rlimits" not in spec["process"]
    # systemd: our units enabled, Debian's defaults gone, binfmt masked
    wants = "./etc/systemd/system/multi-user.target.wants"
    for unit in assemble.UNITS:
        assert members[f"{wants}/{unit}"].issym(), unit
    assert "./lib/systemd/system/multi-user.target.wants/getty.target" not in members
    assert members["./etc/systemd/system/systemd-binfmt.service"].linkname == "/dev/null"
    assert journald.endswith("ReadKMsg=no\n")
    assert version == "v1.36.3\n"
    assert images == b"component images"
    assert all(m.uname == "" for m in members.values()), "owners are numbers only"


def test_a_failed_assembly_leaves_no_tree_and_no_tarball(builder: Builder) -> None:
    plan, plan_file = plan_for(builder, with_ctr=False)

    with pytest.raises(CommandError, match="ctr oci spec"):
        builder.assemble(plan_file)

    assert not plan.work.exists()
    assert not plan.output.exists()
    assert list(plan.output.parent.glob("*.partial")) == []
