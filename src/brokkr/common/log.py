"""Logging set-up shared by the services: `BROKKR__LOG__LEVEL` and `BROKKR__LOG__FORMAT`."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator


class LogSettings(BaseModel):
    """The `[log]` section: level name and output format (`text` or `json`)."""

    model_config = ConfigDict(extra="forbid")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _normalise(cls, value: object) -> object:
        # Accept `info` as well as `INFO`, `JSON` as well as `json`.
        if not isinstance(value, str):
            return value
        return value.strip().upper() if value.strip().upper() in _LEVELS else value.strip().lower()


_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(settings: LogSettings) -> None:
    """Send all logs to stderr at the configured level and format (replaces prior handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # urllib3 logs every retry and connection at DEBUG/WARNING; keep our own messages.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
