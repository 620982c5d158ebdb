"""The in-process tier: hit latency, Zipf hit ratio and memory per entry.

Contenders for hits: a bare `dict.get` inside an `async def` (the baseline),
`cachetools.TTLCache` wrapped the same way, cachetier's `await cache.get()`,
and cashews' and aiocache's in-memory backends.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from aiocache import SimpleMemoryCache
from cachetools import TTLCache
from cashews import Cache as CashewsCache

from bench import l1_policy
from bench._measure import Op, Row, compare
from cachetier import create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.l1 import L1Store

KEYS = [f"user:{i}" for i in range(1000)]


def _value(key: str) -> dict[str, Any]:
    return {"id": key, "active": True}


async def hit_rows(ops: int) -> list[Row]:
    plain = {key: _value(key) for key in KEYS}
    ttl_cache: TTLCache[str, Any] = TTLCache(maxsize=10_000, ttl=3600)
    ttl_cache.update(plain)
    cache = create_with_config(adapter=MemoryAdapter(), namespace="bench")
    cashews = CashewsCache()
    cashews.setup("mem://")
    aio = SimpleMemoryCache()
    for key, value in plain.items():
        await cache.set(key, value)
        await cashews.set(key, value, expire=3600)
        await aio.set(key, value, ttl=3600)
    n = len(KEYS)

    async def dict_get(i: int) -> Any:
        return plain.get(KEYS[i % n])

    async def ttl_get(i: int) -> Any:
        return ttl_cache.get(KEYS[i % n])

    def through(get: Any) -> Op:
        async def op(i: int) -> Any:
            return await get(KEYS[i % n])

        return op

    contenders: dict[str, Op] = {
        "dict.get in async def": dict_get,
        "cachetools.TTLCache.get in async def": ttl_get,
        "cachetier await cache.get": through(cache.get),
        "cashews mem:// await cache.get": through(cashews.get),
        "aiocache SimpleMemoryCache await get": through(aio.get),
    }
    try:
        return await compare("L1 hit", contenders, ops=ops, batch=200, rounds=7)
    finally:
        await cache.close()
        await cashews.close()
        await aio.close()


def zipf_hit_ratios(requests: int) -> tuple[float, float]:
    """(cachetools LRU, cachetier S3-FIFO) hit ratios on one Zipf(0.99) trace."""
    l1_policy.REQUESTS = requests
    trace = l1_policy.zipf_trace()
    return l1_policy.hit_ratio_lru(trace), l1_policy.hit_ratio_s3fifo(trace)


def _traced_bytes(fill: Any) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = fill()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return float(after - before)


def memory_per_entry(entries: int) -> dict[str, float]:
    """Bytes each structure adds per entry, beyond the (pre-built) key and value objects."""
    keys = [f"bench:user:{i}" for i in range(entries)]
    values = [f"v{i}" for i in range(entries)]

    def fill_l1() -> Any:
        store = L1Store(entries * 2)
        for key, value in zip(keys, values, strict=True):
            store.set(key, value, time.time() + 3600, (), 40)
        return store

    def fill_dict() -> Any:
        return dict(zip(keys, values, strict=True))

    def fill_ttl() -> Any:
        cache: TTLCache[str, str] = TTLCache(maxsize=entries * 2, ttl=3600)
        for key, value in zip(keys, values, strict=True):
            cache[key] = value
        return cache

    return {
        "dict": _traced_bytes(fill_dict) / entries,
        "cachetools.TTLCache": _traced_bytes(fill_ttl) / entries,
        "cachetier L1Store": _traced_bytes(fill_l1) / entries,
    }
