"""Process-wide logging for the broker and the agent: JSON or text, secrets masked.

`configure(LogSettings)` installs one handler on the root logger. Every record
passes through `redact`, which masks anything shaped like a PAK
(`brokkr_<short>_<long>`), a `Bearer` token or a password inside a URL, so a
secret that reaches a log call by mistake is still not written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

_SECRET_PATTERNS = (
    (re.compile(r"brokkr_[A-Za-z0-9]+_[A-Za-z0-9]+"), "brokkr_<redacted>"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1<redacted>"),
    (re.compile(r"(://[^:/@\s]*:)[^@\s]+@"), r"\1<redacted>@"),
    (re.compile(r"(?i)(password=)\S+"), r"\1<redacted>"),
)
# LogRecord attributes that are not user-supplied `extra` fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn duplicates the message with ANSI colours
}


class LogSettings(BaseModel):
    """`BROKKR__LOG__LEVEL` and `BROKKR__LOG__FORMAT`."""

    model_config = ConfigDict(extra="forbid")
    level: Literal["debug", "info", "warning", "error", "DEBUG", "INFO", "WARNING", "ERROR"] = (
        "info"
    )
    format: Literal["json", "text"] = "json"


def redact(text: str) -> str:
    """Mask secrets (PAKs, bearer tokens, URL passwords) in a string."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """Human-readable lines with extras appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(line)


def configure(settings: LogSettings, stream: Any = None) -> None:
    """Route all logging (ours, uvicorn's, psycopg's) through one redacting handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Our own middleware reports requests; uvicorn's access log would duplicate it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
