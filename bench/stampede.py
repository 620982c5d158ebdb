"""1,000 concurrent misses on one key with a 50 ms loader: how many times does the loader run?

cachetier is measured on Redis and PostgreSQL; the peers on Redis with their
stampede protection switched on as documented (cashews `@cache(..., lock=True)`,
aiocache `@cached_stampede`); the raw client is naive cache-aside.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiocache import RedisCache, cached_stampede
from cashews import Cache as CashewsCache
from redis.asyncio import BlockingConnectionPool, Redis

from bench.postgres_tier import DSN
from bench.redis_tier import CODEC, HOST, PORT, URL
from cachetier import CacheConfig, create_cache
from cachetier.adapters.pg_leases import drop_sql

CALLERS = 1000
LOAD_SECONDS = 0.05


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def load(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(LOAD_SECONDS)
        return {"expensive": True}


async def _storm(call: Callable[[], Awaitable[Any]]) -> tuple[float, str]:
    """Wall seconds, and a note about callers that failed or got a wrong value."""
    began = time.perf_counter()
    results = await asyncio.gather(*(call() for _ in range(CALLERS)), return_exceptions=True)
    took = time.perf_counter() - began
    errors = [r for r in results if isinstance(r, BaseException)]
    wrong = sum(1 for r in results if not isinstance(r, BaseException) and r != {"expensive": True})
    note = f"{len(errors)} callers raised ({type(errors[0]).__name__}: {errors[0]})" if errors else ""
    if wrong:
        note += f" {wrong} callers got a wrong value"
    return took, note.strip()


async def rows(run: str) -> list[tuple[str, int, float, str]]:
    """(contender, loader calls, wall seconds for all 1,000 callers, note)."""
    out: list[tuple[str, int, float, str]] = []
    for name, config in {
        "cachetier on Redis": CacheConfig(adapter="redis", redis_url=URL, namespace=f"bench{run}st"),
        "cachetier on PostgreSQL": CacheConfig(
            adapter="postgres", database_url=DSN, namespace=f"bench{run}st", table_name=f"bench_{run}_st"
        ),
    }.items():
        counter = Counter()
        cache = create_cache(config)
        await cache.start()
        took, note = await _storm(lambda: cache.get("hot", counter.load, ttl=60))  # noqa: B023 - awaited within the iteration
        out.append((name, counter.calls, took, note))
        await cache.clear()
        await cache.close()
    conn = await asyncpg.connect(DSN)
    await conn.execute(drop_sql(f"bench_{run}_st"))
    await conn.close()

    raw = Redis(connection_pool=BlockingConnectionPool(host=HOST, port=PORT, max_connections=64, timeout=None))
    counter = Counter()
    key = f"bench{run}st:raw"

    async def naive() -> Any:
        data = await raw.get(key)
        if data is not None:
            return CODEC.decode(data)
        loaded = await counter.load()
        await raw.set(key, CODEC.encode(loaded), ex=60)
        return loaded

    took, note = await _storm(naive)
    out.append(("raw redis.asyncio, naive cache-aside", counter.calls, took, note))

    cashews = CashewsCache()
    cashews.setup(URL)
    counter = Counter()

    @cashews(ttl="1m", key=f"bench{run}st:cw", lock=True)
    async def cw_load() -> Any:
        return await counter.load()

    took, note = await _storm(cw_load)
    out.append(("cashews @cache(lock=True)", counter.calls, took, note))
    await cashews.close()

    counter = Counter()
    # aiocache logs a traceback per failed caller; the table already counts them.
    logging.getLogger("aiocache").setLevel(logging.CRITICAL)

    @cached_stampede(lease=2, ttl=60, cache=RedisCache, key=f"bench{run}st:aio", endpoint=HOST, port=PORT)
    async def aio_load() -> Any:
        return await counter.load()

    took, note = await _storm(aio_load)
    out.append(("aiocache @cached_stampede", counter.calls, took, note))

    cursor: int | None = None
    while cursor != 0:
        cursor, found = await raw.scan(cursor or 0, match=f"*bench{run}st*", count=1000)
        if found:
            await raw.unlink(*found)
    await raw.aclose()
    return out
