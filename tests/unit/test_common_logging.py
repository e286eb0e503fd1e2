"""Logs are JSON or text, and secrets never reach them."""

import io
import json
import logging

import pytest

from brokkr.common.logging import LogSettings, configure, redact


def test_redact_masks_paks_bearer_tokens_and_url_passwords():
    line = redact(
        "pak brokkr_AbCd1234_secretsecret auth Bearer abc.def "
        "url postgresql://user:hunter2@db:5432/x password=hunter2"
    )
    assert "secretsecret" not in line and "abc.def" not in line and "hunter2" not in line
    assert "postgresql://user:<redacted>@db:5432/x" in line


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_carry_extras_and_are_redacted(restore_root_logger):
    stream = io.StringIO()
    configure(LogSettings(level="info", format="json"), stream)
    logging.getLogger("brokkr.test").info("minted %s", "brokkr_Ab_cdef", extra={"agent": "a1"})
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "info" and entry["logger"] == "brokkr.test"
    assert entry["agent"] == "a1"
    assert "cdef" not in entry["message"]


def test_text_format_and_level(restore_root_logger):
    stream = io.StringIO()
    configure(LogSettings(level="warning", format="text"), stream)
    logging.getLogger("brokkr.test").info("hidden")
    logging.getLogger("brokkr.test").warning("shown")
    assert "hidden" not in stream.getvalue() and "WARNING brokkr.test: shown" in stream.getvalue()
