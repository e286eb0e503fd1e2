"""Image archives written from layer tarballs (`docker save`'s format): what
`docker load` and the node's `ctr images import` read, with the platform in each
config (Debian's dockerd writes its own architecture into an imported image)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from brokkr_dev.containers import loadarchive
from brokkr_dev.containers.loadarchive import ArchiveImage


def layer(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return path


def read(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_images_share_their_base_layer_and_each_config_names_the_platform(tmp_path: Path):
    base = layer(tmp_path / "base.tar", {"etc/os-release": b"ID=debian\n"})
    binary = tmp_path / "etcd"
    binary.write_bytes(b"\x7fELF etcd")
    etcd = loadarchive.binary_layer(binary, "usr/local/bin/etcd", tmp_path / "etcd.tar")
    images = [
        ArchiveImage("brokkr.local/node-tools:1", (base,), ("PATH=/usr/bin:/bin",)),
        ArchiveImage("registry.k8s.io/etcd:3.6.16-0", (base, etcd), (), ("/usr/local/bin/etcd",)),
    ]
    archive = tmp_path / "images.tar"
    loadarchive.write(archive, images, "arm64")

    files = read(archive)
    manifest = json.loads(files["manifest.json"])
    base_id = hashlib.sha256(base.read_bytes()).hexdigest()
    etcd_id = hashlib.sha256(etcd.read_bytes()).hexdigest()
    assert [entry["RepoTags"] for entry in manifest] == [[i.tag] for i in images]
    assert manifest[1]["Layers"] == [f"{base_id}/layer.tar", f"{etcd_id}/layer.tar"]
    assert sorted(n for n in files if n.endswith("layer.tar")) == sorted(
        [f"{base_id}/layer.tar", f"{etcd_id}/layer.tar"]
    ), "the shared base layer is stored once"
    assert files[f"{base_id}/layer.tar"] == base.read_bytes()

    etcd_config = json.loads(files[manifest[1]["Config"]])
    assert (etcd_config["os"], etcd_config["architecture"]) == ("linux", "arm64")
    assert etcd_config["rootfs"]["diff_ids"] == [f"sha256:{base_id}", f"sha256:{etcd_id}"]
    assert etcd_config["config"] == {"Entrypoint": ["/usr/local/bin/etcd"]}
    # The config's name is its digest, as `docker load` expects.
    assert (
        manifest[1]["Config"] == hashlib.sha256(files[manifest[1]["Config"]]).hexdigest() + ".json"
    )
    assert not list(tmp_path.glob("*.partial"))


def test_the_binary_layer_holds_one_root_owned_executable_with_its_folders(tmp_path: Path):
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF pause")
    binary.chmod(0o700)
    built = loadarchive.binary_layer(binary, "usr/local/bin/pause", tmp_path / "pause.tar")
    with tarfile.open(built) as tar:
        members = {m.name: m for m in tar}
    assert list(members) == ["usr", "usr/local", "usr/local/bin", "usr/local/bin/pause"]
    executable = members["usr/local/bin/pause"]
    assert (executable.uid, executable.gid, executable.mode) == (0, 0, 0o755)
    assert all(members[d].isdir() and members[d].mode == 0o755 for d in list(members)[:3])


def test_equal_inputs_give_an_equal_archive(tmp_path: Path):
    base = layer(tmp_path / "base.tar", {"a": b"1"})
    image = [ArchiveImage("x:1", (base,), labels={"io.brokkr.kind-node.key": "k"})]
    loadarchive.write(tmp_path / "one.tar", image, "amd64")
    loadarchive.write(tmp_path / "two.tar", image, "amd64")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
