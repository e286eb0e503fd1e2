"""The Docker engine that kind runs on: found, or started by us (see daemon.py)."""

from __future__ import annotations

from brokkr_dev.containers.engine.daemon import (
    Engine,
    EngineError,
    engine_status,
    ensure_engine,
    find_engine,
    session_engine,
    stop_engine,
)
from brokkr_dev.containers.engine.host import EngineLayout

__all__ = [
    "Engine",
    "EngineError",
    "EngineLayout",
    "engine_status",
    "ensure_engine",
    "find_engine",
    "session_engine",
    "stop_engine",
]
