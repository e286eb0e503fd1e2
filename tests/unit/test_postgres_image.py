"""The PostgreSQL test image's recipe: cache keys, chart values, slimming (no podman)."""

from __future__ import annotations

import pytest

from brokkr_dev.containers import baseimages, postgres_image
from brokkr_dev.containers.podman import ContainerError


def test_the_base_has_debians_server_and_its_own_tarball_and_tag():
    base = postgres_image.base_for("amd64")
    assert f"postgresql-{postgres_image.MAJOR}" in base.packages
    assert base.tag == "localhost/brokkr-postgresql-base:bookworm-amd64"
    plain = baseimages.for_arch("amd64")
    assert base.key != plain.key
    assert base.tarball().name.startswith("postgresql-base-bookworm-amd64-")
    # The Python base keeps its old key and tarball name, so caches stay valid.
    assert plain.tarball().name == f"bookworm-amd64-{plain.key}.tar"


def test_the_tag_follows_every_input(tmp_path, monkeypatch):
    for name in ("Dockerfile", "entrypoint.sh"):
        (tmp_path / name).write_text(f"{name} v1\n")
    monkeypatch.setattr(postgres_image, "CONTEXT", tmp_path)
    image = postgres_image.PostgresImage("amd64")
    before = image.tag
    assert before.startswith(f"{postgres_image.MAJOR}-amd64-")
    (tmp_path / "entrypoint.sh").write_text("entrypoint.sh v2\n")
    assert image.tag != before
    assert postgres_image.PostgresImage("arm64").tag != image.tag


def test_chart_values_point_the_broker_chart_at_the_local_image():
    image = postgres_image.PostgresImage("amd64")
    values = image.chart_values()
    assert f"{values['registry']}/{values['repository']}:{values['tag']}" == image.reference
    assert values["pullPolicy"] == "Never"


def test_unknown_architecture_is_refused():
    with pytest.raises(ContainerError, match="no base image for 'mips'"):
        postgres_image.base_for("mips")


def test_drop_removes_files_links_and_trees(tmp_path):
    (tmp_path / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "usr/lib/x86_64-linux-gnu/libLLVM-14.so.1").write_text("big")
    (tmp_path / "usr/lib/x86_64-linux-gnu/libLLVM.so").symlink_to("libLLVM-14.so.1")
    (tmp_path / "usr/lib/x86_64-linux-gnu/libpq.so.5").write_text("kept")
    (tmp_path / "etc/postgresql/15/main").mkdir(parents=True)
    (tmp_path / "etc/postgresql/15/main/postgresql.conf").write_text("")
    baseimages.drop(tmp_path, postgres_image.DROP)
    assert sorted(p.name for p in (tmp_path / "usr/lib/x86_64-linux-gnu").iterdir()) == [
        "libpq.so.5"
    ]
    assert list((tmp_path / "etc/postgresql").iterdir()) == []
