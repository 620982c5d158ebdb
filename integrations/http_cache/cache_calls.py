"""The drivers' calls into the cache, made fault-tolerant: a cache problem never fails a request.

A read that raises counts as a miss; a write the cache refuses (a value it
cannot encode, a tag list over its limits, a closed cache) leaves the
response unstored. Each failure is logged with what was being done; the
request is answered as if uncached. `AsyncCalls` serves the ASGI driver
over a `CacheManager`, `SyncCalls` the WSGI driver over a `SyncCache`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from cachetier import CacheManager, MSetItem
from cachetier.integrations.http_cache.flow import cache_fault, run_reads
from cachetier.sync import SyncCache


class AsyncCalls:
    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache

    async def read(self, steps: Generator[str, Any, Any]) -> Any:
        """Drive `flow` read steps (the loop of `run_reads`, with await)."""
        try:
            key = next(steps)
            while True:
                try:
                    value = await self.cache.get(key)
                except Exception as exc:
                    cache_fault("read", exc)
                    value = None
                key = steps.send(value)
        except StopIteration as stop:
            return stop.value

    async def write(self, items: list[MSetItem]) -> bool:
        """Store `items`; False when there is nothing to keep or the cache refused them."""
        if not items:
            return False
        try:
            await self.cache.mset(items)
        except Exception as exc:
            cache_fault("store a response", exc)
            return False
        return True

    async def drop(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.cache.delete(key)
            except Exception as exc:
                cache_fault("delete an outdated response", exc)


class SyncCalls:
    def __init__(self, cache: SyncCache) -> None:
        self.cache = cache

    def read(self, steps: Generator[str, Any, Any]) -> Any:
        """Drive `flow` read steps."""
        return run_reads(steps, self.cache.get)

    def write(self, items: list[MSetItem]) -> bool:
        """Store `items`; False when there is nothing to keep or the cache refused them."""
        if not items:
            return False
        try:
            self.cache.mset(items)
        except Exception as exc:
            cache_fault("store a response", exc)
            return False
        return True

    def drop(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.cache.delete(key)
            except Exception as exc:
                cache_fault("delete an outdated response", exc)
