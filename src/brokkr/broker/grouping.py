"""Run the same statement for many waiting requests at once (group commit).

The agents' two hot requests (heartbeat, target-state poll) each need one
statement. Requests of one kind that arrive while that kind's statement is in
flight wait and then go together in the next one: no added delay when traffic
is light (a lone request is sent at once), one round trip, one commit and one
Python-side execution for many requests when it is heavy. Each request still
gets its own answer, computed by the statement for its own parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

# Upper bound of requests in one statement (keeps a statement short).
MAX_GROUP = 500


@dataclass
class _Waiting(Generic[Item, Answer]):
    item: Item
    done: asyncio.Future[Answer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Grouped(Generic[Item, Answer]):
    """Collects items and hands them to `run` in groups, one group at a time.

    `run` gets the items of a group and returns one answer per item, in order.
    With `key`, a group holds at most one item per key (for writes to one row
    per item: the second one waits for the next group, so each row is set once
    per statement and the last request wins, as without grouping).
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[list[Answer]]],
        key: Callable[[Item], Hashable] | None = None,
    ) -> None:
        self._run = run
        self._key = key
        self._waiting: list[_Waiting[Item, Answer]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Answer:
        """The answer for `item`; raises what `run` raised for its group."""
        waiting: _Waiting[Item, Answer] = _Waiting(item)
        self._waiting.append(waiting)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await waiting.done

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group = self._next_group()
                if not group:
                    continue
                try:
                    answers = await self._run([w.item for w in group])
                except asyncio.CancelledError:  # shutting down: nobody gets an answer
                    for waiting in group + self._waiting:
                        waiting.done.cancel()
                    self._waiting = []
                    raise
                except Exception as exc:  # each request of the group raises it
                    for waiting in group:
                        if not waiting.done.done():
                            waiting.done.set_exception(exc)
                    continue
                for waiting, answer in zip(group, answers, strict=True):
                    if not waiting.done.done():
                        waiting.done.set_result(answer)
        finally:
            self._task = None

    def _next_group(self) -> list[_Waiting[Item, Answer]]:
        group: list[_Waiting[Item, Answer]] = []
        later: list[_Waiting[Item, Answer]] = []
        keys: set[Hashable] = set()
        for waiting in self._waiting:
            if waiting.done.done():  # the request went away
                continue
            key = self._key(waiting.item) if self._key else None
            if len(group) >= MAX_GROUP or (key is not None and key in keys):
                later.append(waiting)
            else:
                keys.add(key)
                group.append(waiting)
        self._waiting = later
        return group


def array_literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal for a statement parameter (`%s::uuid[]` and the like).

    psycopg adapts a Python list element by element in Python, a large share of a
    grouped statement's cost; the values here are UUIDs, hex digests, booleans,
    integers and None, so their text needs no escaping beyond the quotes.
    """
    return "{" + ",".join(_element(value) for value in values) + "}"


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if '"' in text or "\\" in text:
        raise ValueError(f"array_literal() takes plain values only, got {text!r}")
    return f'"{text}"'
