"""Moving back to the first-choice backend once it answers, after `auto` fell back at start.

With `adapter="auto"`, a manager whose first choice (Redis, in production) did
not answer at start runs on a fallback (the database, or memory). While it does,
`MoveBackProbe` pings the first choice every `MOVE_BACK_INTERVAL` seconds in the
background; once it answers, the manager moves onto it for good
(`BackendLink.switch_backend`) and the fallback is closed. The probe runs only
while on a fallback and stops when the manager closes.

Writes made on the fallback never reached the first choice, so it may still hold
older values for those keys: this cache's namespace is cleared there before it
serves anything (other processes' newer values go too: a miss is safe, an older
value is not), and this process's L1 is emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

from cachetier.protocols import L2Adapter
from cachetier.selection import PING_TIMEOUT, SelectingAdapter, close_quietly

logger = logging.getLogger("cachetier")

MOVE_BACK_INTERVAL: Final = 2.0
"""Seconds between pings of the first choice while on a fallback."""
TASK_NAME: Final = "cachetier-move-back"
_CLOSE_GRACE: Final = 1.0  # calls that picked the fallback just before the switch finish on it, not on a closed one

LeaveFeed = Callable[[], Awaitable[None]]
Switch = Callable[[L2Adapter, Callable[[], Awaitable[object]]], Awaitable[tuple[L2Adapter, LeaveFeed]]]
"""`switch(adapter, prepare)`: runs `prepare`, moves the manager onto `adapter`; returns the old backend and the
coroutine function that leaves its change feed. Raises, having changed nothing, when `prepare` raises."""


class MoveBackProbe:
    """Pings `selector.preferred` every `interval` seconds until it answers, then switches the manager to it."""

    def __init__(
        self, selector: SelectingAdapter, switch: Switch, prefix: str, interval: float = MOVE_BACK_INTERVAL
    ) -> None:
        self._selector = selector
        self._switch = switch
        self._prefix = prefix
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._switched = False  # past the swap, the fallback is closed even when stopping: it must not leak
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None and not self._stopping.is_set():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=TASK_NAME)

    async def stop(self) -> None:
        """Cancel the probe (or, past the swap, let it close the fallback now); returns once it has ended."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if not self._switched:
            task.cancel()
        await asyncio.wait([task])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if await self._attempt():
                    return
            except Exception:  # a bug here must not end the probe silently, nor reach any caller
                logger.exception("cachetier: moving back to the first-choice backend failed; trying again")

    async def _attempt(self) -> bool:
        """One try: True once moved (or nothing to move back to), False while the first choice does not answer."""
        candidate = self._selector.preferred
        if candidate is None:
            return True
        try:
            adapter = candidate.build()
        except Exception as exc:
            logger.debug("cachetier: %s backend still not buildable (%s: %s)", candidate.name, type(exc).__name__, exc)
            return False
        try:
            await asyncio.wait_for(adapter.ping(), PING_TIMEOUT)
            started = time.perf_counter()
            old, leave_old_feed = await self._switch(adapter, partial(adapter.clear, self._prefix))
        except BaseException as exc:  # cancelled by `stop` included: the new backend is not in use, close it
            await close_quietly(adapter)
            if not isinstance(exc, Exception):
                raise
            logger.debug("cachetier: %s backend still unreachable (%s: %s)", candidate.name, type(exc).__name__, exc)
            return False
        self._switched = True
        self._selector.adopt(adapter, f"{candidate.reason}; moved back to it from {old.name} once it answered")
        logger.warning(
            "cachetier: %s backend answers again; moved back to it from %s in %.1f ms (cleared %r there, emptied L1)",
            candidate.name,
            old.name,
            (time.perf_counter() - started) * 1000,
            self._prefix,
        )
        try:
            with contextlib.suppress(Exception):
                await leave_old_feed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _CLOSE_GRACE)
        finally:
            await close_quietly(old)
        return True
