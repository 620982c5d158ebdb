"""The manager's link to its backend: chosen once, subscribed to its change feed before L1 fills.

Kept apart from the manager because it is the one piece of state set up lazily
on first use, by whichever call comes first, and torn down on close. When `auto`
chose a fallback, it also runs the probe that moves back to the first choice
(`cachetier.move_back`), through `switch_backend`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from cachetier.config import CacheConfig
from cachetier.guard import GuardedAdapter
from cachetier.l1 import L1Store
from cachetier.move_back import LeaveFeed, MoveBackProbe
from cachetier.protocols import InvalidationSource, L2Adapter
from cachetier.selection import SelectingAdapter

logger = logging.getLogger("cachetier")


async def _no_feed() -> None:
    return None


class BackendLink:
    """Resolves a selecting adapter once and subscribes to the change feed, if any, exactly once.

    Concurrent first calls all wait for the one subscription: a read that filled
    L1 before the feed was up could keep a copy whose change nobody reports.
    """

    def __init__(
        self,
        l2: GuardedAdapter,
        config: CacheConfig,
        prefix: str,
        on_change: Callable[[Sequence[str] | None], None],
        l1: L1Store,
    ) -> None:
        self._l2 = l2
        self._config = config
        self._prefix = prefix
        self._on_change = on_change
        self._l1 = l1
        self.selector: object | None = None  # a resolved `SelectingAdapter`, once bypassed
        self.unsubscribe: Callable[[], Awaitable[None]] | None = None  # set once subscribed (or not)
        self._watching: asyncio.Future[None] | None = None
        self._move_back: MoveBackProbe | None = None

    async def connect(self) -> None:
        if self._watching is None:
            self._watching = asyncio.ensure_future(self._subscribe())
        await asyncio.shield(self._watching)

    async def _subscribe(self) -> None:
        unsubscribe: Callable[[], Awaitable[None]] = _no_feed
        try:
            adapter: Any = self._l2.adapter
            resolve = getattr(adapter, "resolve", None)  # SelectingAdapter picks its backend on first use
            try:
                if resolve is not None:
                    adapter = await resolve()
                    # Later calls go straight to the chosen backend: one await less per operation.
                    # The selector stays reachable for its `reason`; closing either closes the backend.
                    self.selector, self._l2.adapter = self._l2.adapter, adapter
                unsubscribe = await self._feed(adapter)
            except Exception as exc:
                logger.warning("cachetier: no change feed from %s (%s); L1 copies live up to l1_max_ttl", adapter, exc)
        finally:
            self.unsubscribe = unsubscribe
        if isinstance(self.selector, SelectingAdapter) and self.selector.preferred is not None:
            self._move_back = MoveBackProbe(self.selector, self.switch_backend, self._prefix)
            self._move_back.start()

    async def _feed(self, adapter: L2Adapter) -> Callable[[], Awaitable[None]]:
        """Subscribe to `adapter`'s change feed, if L1 uses one and the backend has one."""
        if not (self._config.l1_enabled and self._config.l1_change_feed) or not isinstance(adapter, InvalidationSource):
            return _no_feed
        try:
            return await adapter.subscribe_invalidations(self._prefix, self._on_change)
        except Exception as exc:
            logger.warning("cachetier: no change feed from %s (%s); L1 copies live up to l1_max_ttl", adapter, exc)
            return _no_feed

    async def switch_backend(
        self, adapter: L2Adapter, prepare: Callable[[], Awaitable[object]]
    ) -> tuple[L2Adapter, LeaveFeed]:
        """Serve from `adapter` from now on; return the backend replaced (still open) and how to leave its feed.

        The new feed is up before anything is read from `adapter`. New calls wait (on the lock that holds
        them during a replay of owed changes) while `prepare` runs and the adapter is swapped; then L1 is
        emptied and reads still in flight on the old backend may not fill it (the generation moves), so
        nothing read from the old backend outlives the switch. If `prepare` raises, nothing changed.
        """
        unsubscribe = await self._feed(adapter)
        try:
            async with self._l2.pending.lock:
                await prepare()
                old, self._l2.adapter = self._l2.adapter, adapter
                self._l2.breaker.record_success()  # its failures were the old backend's
                self._on_change(None)
                self._l1.clear()
        except BaseException:
            await self._leave(unsubscribe)
            raise
        # No await between the swap and here: a cancelled caller sees either no switch or all of it.
        old_unsubscribe, self.unsubscribe = self.unsubscribe, unsubscribe
        return old, partial(self._leave, old_unsubscribe or _no_feed)

    async def _leave(self, unsubscribe: Callable[[], Awaitable[None]]) -> None:
        try:
            await unsubscribe()
        except Exception as exc:  # a backend fault: the backend is still closed after this
            logger.warning("cachetier: leaving the change feed failed (%s: %s)", type(exc).__name__, exc)

    async def close(self) -> None:
        if self._watching is not None and not self._watching.done():
            await asyncio.wait([self._watching])  # a feed set up after close would never be left
        if self._move_back is not None:
            await self._move_back.stop()  # before leaving the feed: a switch would subscribe a new one
        if self.unsubscribe is not None:
            await self._leave(self.unsubscribe)
