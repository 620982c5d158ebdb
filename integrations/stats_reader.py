"""Reading a cache's stats from synchronous metric callbacks (Prometheus collectors, OpenTelemetry observers).

`get_stats()` is a coroutine (it asks the backend for its own figures), while
exporters call their callbacks synchronously, on the cache's loop or on a
thread of their own. From another thread the reader asks the cache's loop and
waits up to `timeout` seconds; on the loop itself, which must not block, it
serves the figures of the last `refresh()`. A `SyncCache` is read directly.
"""

from __future__ import annotations

import asyncio
import contextlib

from cachetier import CacheManager, CacheStats
from cachetier.sync import SyncCache


class StatsReader:
    """The latest `CacheStats` of one cache, fetched the way the calling context allows."""

    def __init__(self, cache: CacheManager | SyncCache, *, timeout: float = 2.0) -> None:
        self.cache = cache
        self.timeout = timeout
        manager = cache.manager if isinstance(cache, SyncCache) else cache
        self.namespace = manager.config.namespace
        self._last: CacheStats | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):  # built outside a loop: learnt at the first refresh()
            self._loop = asyncio.get_running_loop()

    async def refresh(self) -> CacheStats:
        """Read the stats now; `read()` on the cache's loop serves these until the next refresh."""
        if isinstance(self.cache, SyncCache):
            stats = await asyncio.to_thread(self.cache.get_stats)
        else:
            self._loop = asyncio.get_running_loop()
            stats = await self.cache.get_stats()
        self._last = stats
        return stats

    def read(self) -> CacheStats | None:
        """Current stats where they can be fetched without blocking the cache's loop, else the last ones."""
        if isinstance(self.cache, SyncCache):
            self._last = self.cache.get_stats()
            return self._last
        try:
            asyncio.get_running_loop()
            return self._last  # on a loop: blocking here could deadlock the cache's own loop
        except RuntimeError:
            pass
        loop = self._loop
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.cache.get_stats(), loop)
            try:
                self._last = future.result(self.timeout)
            except Exception:
                future.cancel()
        return self._last
