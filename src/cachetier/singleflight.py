"""Single-flight: concurrent callers for one key share one run of the work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


class SingleFlight:
    """The first caller for a key runs `work`; callers arriving while it runs await its outcome.

    An exception reaches every waiter. When the leader is cancelled (say its
    client went away) the waiters are not: one of them runs its own `work` and
    the others wait for that. A cancelled follower leaves the leader running,
    because it waits through `asyncio.shield`.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[Any]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[_T]]) -> _T:
        running = self._running.get(key)
        if running is not None:
            try:
                shared: _T = await asyncio.shield(running)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not running.cancelled() or (task is not None and task.cancelling()):
                    raise  # this caller was cancelled, not the leader
                return await self.run(key, work)
            return shared
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await work()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: there may be no waiters
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._running[key]
