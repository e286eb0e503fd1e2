"""The reloading TLS context keeps serving the old pair when a new one is broken."""

from pathlib import Path

import pytest

from brokkr.broker.tls import ReloadingContext
from tests.integration.test_tls import issue, make_ca


def test_reload_only_on_change_and_never_to_a_broken_pair(tmp_path: Path):
    ca = make_ca(tmp_path)
    cert, key = issue(tmp_path, ca, "one")
    context = ReloadingContext(str(cert), str(key))
    assert context.reload_if_changed() is False  # unchanged files: nothing to do

    other_cert, _ = issue(tmp_path, ca, "two")
    cert.write_bytes(other_cert.read_bytes())  # certificate no longer matches the key
    assert context.reload_if_changed() is False
    assert context.reloads == 0

    two_cert, two_key = issue(tmp_path, ca, "three")
    cert.write_bytes(two_cert.read_bytes())
    key.write_bytes(two_key.read_bytes())
    assert context.reload_if_changed() is True
    assert context.reloads == 1


def test_unreadable_files_are_a_clear_startup_error(tmp_path: Path):
    with pytest.raises(ValueError, match="BROKKR__BROKER__TLS__CERT_FILE"):
        ReloadingContext(str(tmp_path / "missing.crt"), str(tmp_path / "missing.key"))
