"""Port allocation for local clusters: distinct, free, remembered."""

from __future__ import annotations

import socket

import pytest

from brokkr_dev.clusters import ports


def test_allocate_gives_distinct_ports_that_can_be_bound() -> None:
    chosen = ports.allocate(["a", "b", "c", "d", "e", "f"])
    assert list(chosen) == ["a", "b", "c", "d", "e", "f"]
    assert len(set(chosen.values())) == 6
    for port in chosen.values():
        with socket.socket() as sock:
            sock.bind((ports.HOST, port))  # raises if the port were still taken


def test_allocate_skips_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind((ports.HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert ports.in_use(taken)
        chosen = ports.allocate([f"p{i}" for i in range(20)])
        assert taken not in chosen.values()


def test_saved_ports_load_back(tmp_path) -> None:
    path = tmp_path / "ports.json"
    assert ports.load(path) == {}
    ports.save(path, {"apiserver": 6443, "etcd_client": 2379})
    assert ports.load(path) == {"apiserver": 6443, "etcd_client": 2379}


@pytest.mark.parametrize("content", ["{not json", '["a"]', '{"apiserver": "6443"}'])
def test_a_damaged_ports_file_names_itself_and_the_fix(tmp_path, content: str) -> None:
    path = tmp_path / "ports.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"ports\.json.*delete it"):
        ports.load(path)
