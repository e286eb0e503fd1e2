"""The user namespace check: what it finds missing and the commands it names."""

from __future__ import annotations

from pathlib import Path

from brokkr_dev.containers import userns


def programs(tmp_path: Path, *names: str) -> str:
    """A PATH holding executables of these names (only their presence is checked)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return str(folder)


def etc_with(tmp_path: Path, subuid: str, subgid: str) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "subuid").write_text(subuid)
    (etc / "subgid").write_text(subgid)
    return etc


def test_a_user_with_uidmap_and_full_ranges_by_name_or_uid_is_ready(tmp_path: Path) -> None:
    path = programs(tmp_path, "newuidmap", "newgidmap", "unshare")
    etc = etc_with(tmp_path, "alice:100000:65536\n", "1001:100000:65536\n")
    assert userns.problems("alice", 1001, etc, path) == []


def test_missing_ranges_name_one_usermod_with_a_range_nobody_has(tmp_path: Path) -> None:
    path = programs(tmp_path, "newuidmap", "newgidmap", "unshare")
    etc = etc_with(tmp_path, "bob:100000:65536\n", "bob:100000:65536\ndan:200000:65536\n")
    found = userns.problems("carol", 1002, etc, path)
    message = userns.refusal("building the kind node image", found)
    assert "/etc/subuid has no range for carol; /etc/subgid has no range for carol" in message
    assert "Nothing was built" in message
    assert message.endswith(
        "re-run:\n  sudo usermod --add-subuids 265536-331071 --add-subgids 265536-331071 carol"
    )


def test_missing_uidmap_names_the_package(tmp_path: Path) -> None:
    path = programs(tmp_path, "unshare")
    etc = etc_with(tmp_path, "alice:100000:65536\n", "alice:100000:65536\n")
    found = userns.problems("alice", 1001, etc, path)
    assert found == [
        userns.Problem("newuidmap and newgidmap are missing", "sudo apt-get install uidmap")
    ]


def test_only_the_first_range_counts_and_a_short_one_is_replaced(tmp_path: Path) -> None:
    path = programs(tmp_path, "newuidmap", "newgidmap", "unshare")
    etc = etc_with(tmp_path, "alice:100000:1000\nalice:300000:65536\n", "alice:100000:65536\n")
    assert userns.problems("alice", 1001, etc, path) == [
        userns.Problem(
            "alice's first range in /etc/subuid has 1000 ids, not 65536",
            "sudo usermod --del-subuids 100000-100999 --add-subuids 365536-431071 alice",
        )
    ]
