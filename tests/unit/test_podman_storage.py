"""Podman storage choice: overlay in our own store when it works, else vfs, never silently."""

from __future__ import annotations

import pytest

from brokkr_dev.containers import podman_storage
from brokkr_dev.containers.podman_storage import Storage, StorageError


def _value(flags: tuple[str, ...], name: str) -> str:
    return flags[flags.index(name) + 1]


def test_overlay_uses_its_own_root_run_and_tmp_dirs(tmp_path):
    storage = podman_storage.overlay(tmp_path / "store")
    assert storage.driver == "overlay"
    assert _value(storage.flags, "--storage-driver") == "overlay"
    assert _value(storage.flags, "--root") == str(tmp_path / "store" / "graph")
    run_root = _value(storage.flags, "--runroot")
    tmp_dir = _value(storage.flags, "--tmpdir")
    # Never the machine-wide store's directories (another driver lives there).
    assert not run_root.startswith("/run/containers") and run_root != tmp_dir
    assert not tmp_dir.startswith("/run/libpod")
    # One store, one run directory: every process shares its locks.
    assert podman_storage.overlay(tmp_path / "store").flags == storage.flags
    assert _value(podman_storage.overlay(tmp_path / "other").flags, "--runroot") != run_root
    assert "--storage-opt" not in storage.flags


def test_fuse_overlayfs_is_passed_as_mount_program(tmp_path):
    storage = podman_storage.overlay(tmp_path, "/usr/bin/fuse-overlayfs")
    assert _value(storage.flags, "--storage-opt") == "overlay.mount_program=/usr/bin/fuse-overlayfs"
    assert "fuse-overlayfs" in storage.reason


def test_auto_takes_native_overlay_when_it_works():
    tried: list[Storage] = []

    def works(storage: Storage) -> None:
        tried.append(storage)

    chosen = podman_storage.select("auto", is_root=True, fuse_program="/f", check=works)
    assert chosen.driver == "overlay" and "native overlay" in chosen.reason
    assert len(tried) == 1


def test_auto_falls_back_to_fuse_overlayfs_then_vfs_and_says_why():
    def native_fails(storage: Storage) -> str | None:
        return None if "--storage-opt" in storage.flags else "overlay not supported"

    chosen = podman_storage.select("auto", is_root=True, fuse_program="/f", check=native_fails)
    assert chosen.driver == "overlay" and "fuse-overlayfs" in chosen.reason

    chosen = podman_storage.select(
        "auto", is_root=True, fuse_program=None, check=lambda _s: "overlay not supported"
    )
    assert chosen.flags == podman_storage.vfs().flags
    assert "overlay not supported" in chosen.reason
    assert "fuse-overlayfs is not installed" in chosen.reason


def test_auto_without_root_is_the_users_rootless_overlay_store_when_it_opens():
    probed: list[Storage] = []

    def opens(storage: Storage) -> str | None:
        probed.append(storage)
        return None

    chosen = podman_storage.select("auto", is_root=False, fuse_program="/f", check=opens)
    assert chosen.driver == "overlay" and "rootless" in chosen.reason
    # the user's own store: no --root under a shared cache another user owns
    assert "--root" not in chosen.flags
    assert probed == [chosen]


def test_auto_without_root_falls_back_to_vfs_with_the_reason():
    chosen = podman_storage.select(
        "auto", is_root=False, fuse_program=None, check=lambda _s: "overlay not supported"
    )
    assert chosen.driver == "vfs" and "overlay not supported" in chosen.reason


def test_overlay_requested_but_unusable_is_an_error_naming_the_way_out():
    with pytest.raises(StorageError, match="BROKKR_PODMAN_STORAGE=vfs"):
        podman_storage.select(
            "overlay", is_root=False, fuse_program=None, check=lambda _s: "no overlay here"
        )


def test_vfs_requested_is_the_machine_wide_store():
    chosen = podman_storage.select("vfs", is_root=True, fuse_program="/f")
    assert chosen.flags == ("--storage-driver", "vfs")


def test_an_unknown_choice_names_the_valid_ones():
    with pytest.raises(StorageError, match="auto, overlay, vfs"):
        podman_storage.select("btrfs", is_root=True, fuse_program=None)


def test_probe_reports_a_driver_podman_cannot_open(tmp_path):
    # The real podman on a store of our own: an unknown driver comes back as a reason
    # (so does a missing podman), never as a usable store.
    flags = ("--storage-driver", "nonsense", "--root", str(tmp_path / "graph"))
    flags += ("--runroot", str(tmp_path / "run"))
    reason = podman_storage.probe(Storage("nonsense", flags, ""))
    assert reason
