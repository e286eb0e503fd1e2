"""Podman host set-up logic: containers.conf editing and builder choice errors."""

from __future__ import annotations

import tomllib

import pytest

from brokkr_dev.containers import podman as containers


@pytest.mark.parametrize(
    "before",
    [
        "",
        '[engine]\nruntime = "runc"\n',
        '[containers]\nlog_size_max = 100\n[engine]\nruntime = "runc"\n',
        '[containers]\ndefault_ulimits = ["nofile=1024:2048"]\nnetns = "host"\n',
    ],
)
def test_default_ulimits_are_disabled_and_other_settings_kept(before):
    after = containers.with_default_ulimits_disabled(before)
    parsed = tomllib.loads(after)
    assert parsed["containers"]["default_ulimits"] == []
    for section, values in tomllib.loads(before).items():
        for key, value in values.items():
            if key != "default_ulimits":
                assert parsed[section][key] == value
    assert containers.with_default_ulimits_disabled(after) == after  # idempotent


def test_a_multi_line_ulimits_array_is_replaced_and_comments_kept():
    # The hand-written line editor this replaced left the array's tail behind here.
    before = (
        "# host settings\n[containers]\ndefault_ulimits = [\n"
        '  "nofile=1280:2560",  # too low\n]\nnetns = "host"  # why\n'
    )
    after = containers.with_default_ulimits_disabled(before)
    assert tomllib.loads(after)["containers"] == {"default_ulimits": [], "netns": "host"}
    assert "# host settings" in after and "# why" in after


def test_a_broken_containers_conf_is_named_not_overwritten(tmp_path):
    path = tmp_path / "containers.conf"
    path.write_text("[containers\nnetns = host\n")
    with pytest.raises(containers.ContainerError, match="not valid TOML"):
        containers.ensure_containers_conf(path)
    assert path.read_text() == "[containers\nnetns = host\n"


def test_ensure_containers_conf_writes_once(tmp_path):
    path = tmp_path / "containers.conf"
    assert containers.ensure_containers_conf(path) is True
    assert containers.ensure_containers_conf(path) is False
    assert tomllib.loads(path.read_text())["containers"]["default_ulimits"] == []


def test_unknown_builder_is_refused():
    with pytest.raises(containers.ContainerError, match="unknown builder 'kaniko'.*auto, buildx"):
        containers.choose_builder("kaniko")


def test_a_requested_builder_is_used_without_probing():
    assert containers.choose_builder("podman") == "podman"
    assert containers.choose_builder("buildx") == "buildx"


def test_emulation_for_an_unknown_arch_is_refused(tmp_path):
    with pytest.raises(containers.ContainerError, match="no emulation known"):
        containers.ensure_emulation("riscv64", tmp_path)


def test_emulation_already_enabled_is_left_alone(tmp_path):
    (tmp_path / "qemu-aarch64").write_text(
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64\n"
    )
    assert containers.ensure_emulation("arm64", tmp_path) is False
