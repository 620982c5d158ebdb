"""The manager's link to its backend: chosen once, subscribed to its change feed before L1 fills.

Kept apart from the manager because it is the one piece of state set up lazily
on first use, by whichever call comes first, and torn down on close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cachetier.config import CacheConfig
from cachetier.guard import GuardedAdapter
from cachetier.protocols import InvalidationSource

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
    ) -> None:
        self._l2 = l2
        self._config = config
        self._prefix = prefix
        self._on_change = on_change
        self.selector: object | None = None  # a resolved `SelectingAdapter`, once bypassed
        self.unsubscribe: Callable[[], Awaitable[None]] | None = None  # set once subscribed (or not)
        self._watching: asyncio.Future[None] | None = None

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
                if not (self._config.l1_enabled and self._config.l1_change_feed):
                    return
                if isinstance(adapter, InvalidationSource):
                    unsubscribe = await adapter.subscribe_invalidations(self._prefix, self._on_change)
            except Exception as exc:
                logger.warning("cachetier: no change feed from %s (%s); L1 copies live up to l1_max_ttl", adapter, exc)
        finally:
            self.unsubscribe = unsubscribe

    async def close(self) -> None:
        if self._watching is not None and not self._watching.done():
            await asyncio.wait([self._watching])  # a feed set up after close would never be left
        if self.unsubscribe is not None:
            try:
                await self.unsubscribe()
            except Exception as exc:  # a backend fault: the backend is still closed after this
                logger.warning("cachetier: leaving the change feed failed (%s: %s)", type(exc).__name__, exc)
