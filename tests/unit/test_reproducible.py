"""What normalise strips from a docker-format config, and how it rewrites an image
copy; real builds: tests/images/test_reproducible.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from brokkr_dev.containers.reproducible import rewrite_config, strip_build_identity

# The shape podman 4.3 writes for a docker-format image (abridged).
CONFIG = {
    "architecture": "amd64",
    "config": {"Hostname": "4494d998bb9a", "User": "10001:10001", "Labels": {"a": "b"}},
    "container": "ba256187365f7a55885ffe8a55355a3fdb85bbd2ad49930e9b8b344c2ee958f6",
    "container_config": {"Hostname": "4494d998bb9a", "User": "10001:10001"},
    "created": "1970-01-01T00:00:00Z",
    "history": [
        {"created": "1970-01-01T00:00:00Z", "created_by": "imported", "comment": "from a tar"},
        {"created": "1970-01-01T00:00:00Z", "created_by": "RUN x", "comment": "FROM 89f7ece78f22"},
    ],
    "os": "linux",
    "parent": "sha256:" + "0" * 64,
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
}


def test_the_build_identity_is_stripped_and_the_image_kept():
    cleaned = strip_build_identity(CONFIG)
    assert "container" not in cleaned and "parent" not in cleaned
    assert cleaned["config"] == {"Hostname": "", "User": "10001:10001", "Labels": {"a": "b"}}
    assert cleaned["container_config"]["Hostname"] == ""
    assert cleaned["history"][0]["comment"] == "from a tar"  # not an intermediate image
    assert "comment" not in cleaned["history"][1]
    for key in ("architecture", "created", "os", "rootfs"):
        assert cleaned[key] == CONFIG[key]
    assert CONFIG["container"], "the input was changed"


def test_two_builds_differing_only_in_identity_strip_to_the_same_config():
    other = json.loads(json.dumps(CONFIG))
    other["container"] = "f" * 64
    other["config"]["Hostname"] = other["container_config"]["Hostname"] = "4c73e62aa8f0"
    other["history"][1]["comment"] = "FROM 122e124285fb"
    other["parent"] = "sha256:" + "2" * 64
    assert strip_build_identity(other) == strip_build_identity(CONFIG)
    other["config"]["User"] = "0:0"  # a real difference stays one
    assert strip_build_identity(other) != strip_build_identity(CONFIG)


def write_copy(directory: Path, config: dict) -> str:
    data = json.dumps(config).encode()
    digest = hashlib.sha256(data).hexdigest()
    (directory / digest).write_bytes(data)
    manifest = {"schemaVersion": 2, "config": {"digest": f"sha256:{digest}", "size": len(data)}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return digest


def test_rewrite_config_replaces_the_blob_and_the_manifest_points_at_it(tmp_path: Path):
    old = write_copy(tmp_path, CONFIG)
    assert rewrite_config(tmp_path) is True
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    digest = manifest["config"]["digest"].removeprefix("sha256:")
    data = (tmp_path / digest).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest and manifest["config"]["size"] == len(data)
    assert json.loads(data) == strip_build_identity(CONFIG)
    assert not (tmp_path / old).exists()
    assert rewrite_config(tmp_path) is False  # already clean: nothing to do
