"""Single-flight: concurrent callers for one key share one run of the work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


class SingleFlight:
    """The first caller for a key starts `work` as a task; every caller, the first included, awaits it.

    An exception reaches every waiter. The work belongs to no caller: a caller
    that is cancelled (say its client went away) stops waiting, and the work
    goes on for the others, so it is neither cancelled under them nor started
    again. Work that nobody waits for any more still finishes (the loader
    timeout bounds it) and its result is stored for the next reader.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have gone

    async def run(self, key: str, work: Callable[[], Awaitable[_T]]) -> _T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        result: _T = await asyncio.shield(task)
        return result
