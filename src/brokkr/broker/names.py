"""The one rule for names of generators, agents (and their cluster_name) and stacks.

A name is 1 to MAX_NAME_LENGTH characters (Unicode code points, as PostgreSQL
counts them), holds at least one visible character (not only spaces or invisible
format characters such as U+200B), and no control character (tab, newline, ESC:
they forge log lines and terminal output). Nothing is trimmed or normalised: a
name is stored and answered exactly as it was sent.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr

MAX_NAME_LENGTH = 255


def name_problem(value: str) -> str | None:
    """Why `value` is not a valid name, or None."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters (got {len(value)})"
    if any(unicodedata.category(char) == "Cc" for char in value):
        return "must not contain control characters (tab, newline, escape ...)"
    if not any(unicodedata.category(char)[0] not in "ZC" for char in value):
        return "must contain a visible character, not only spaces or invisible characters"
    return None


def _checked(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Length first (cheap, and a clear pydantic message), then the characters.
Name = Annotated[
    StrictStr, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_checked)
]
