"""Debian packages: what counts as installed, and the early refusal without root."""

from __future__ import annotations

import pytest

from brokkr_dev.base import system


def test_a_package_provided_by_an_installed_one_is_not_missing():
    # Docker's containerd.io provides (and conflicts with) Debian's runc
    installed = {"containerd.io": {"containerd.io", "runc", "containerd"}, "git": {"git"}}
    assert system.missing(["runc", "git", "podman"], installed) == ["podman"]


def test_the_real_dpkg_database_knows_python3_is_installed():
    assert "python3" not in system.missing(["python3"])
    assert system.missing(["brokkr-no-such-package"]) == ["brokkr-no-such-package"]


def test_without_root_or_sudo_a_missing_package_stops_everything_naming_the_command(
    monkeypatch,
):
    monkeypatch.setattr(system, "missing", lambda wanted: ["mmdebstrap", "podman"])
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(system, "sudo_prefix", lambda: [])
    with pytest.raises(system.SystemError) as refused:
        system.ensure(["containers"])
    message = str(refused.value)
    assert "missing Debian packages: mmdebstrap podman" in message
    assert "sudo apt-get install -y --no-install-recommends mmdebstrap podman" in message
    assert "nothing was built" in message


def test_a_program_in_sbin_is_found_even_off_a_normal_users_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert system.sbin_program("mmdebstrap") == "/usr/bin/mmdebstrap"
    found = system.sbin_program("useradd")  # Debian's passwd: always in /usr/sbin
    assert found is not None and found.endswith("sbin/useradd")
