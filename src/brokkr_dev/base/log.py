"""The one type of the progress callback every automation step takes (`log=print`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Log: TypeAlias = Callable[[str], None]
