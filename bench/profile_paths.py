"""Profile the default configuration's hot paths on Redis: set, L1-miss get, mget 100 with L1 misses.

Run: python -m bench.profile_paths [set|get|mget|load] [--ops N] [--cprofile]
(py-spy, if installed, samples it the same way: ``py-spy record -o out.svg -- python -m bench.profile_paths get``).
Each path runs `--ops` times in a loop next to the raw redis-py equivalent, and
prints both timings; with `--cprofile` the cachetier loop runs under cProfile and
the top functions by own time are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from bench._measure import compare
from bench.redis_tier import CODEC, HOST, PORT, TTL, URL, value
from cachetier import CacheConfig, CacheManager, create_cache

UNIVERSE = 50_000


async def populate(prefix: str, writer: CacheManager, raw: Redis) -> None:
    """`UNIVERSE` keys for cachetier (written by `writer`, another manager) and as many raw ones."""
    for start in range(0, UNIVERSE, 5000):
        await writer.mset({f"k{i}": value(i) for i in range(start, start + 5000)}, ttl=TTL)
        async with raw.pipeline(transaction=False) as pipe:
            for i in range(start, start + 5000):
                pipe.set(f"{prefix}raw:k{i}", CODEC.encode(value(i)), px=TTL * 1000)
            await pipe.execute()


async def _loop(op: Callable[[int], Awaitable[Any]], first: int, ops: int) -> float:
    began = time.perf_counter()
    for i in range(first, first + ops):
        await op(i)
    return (time.perf_counter() - began) / ops


async def _cpu(op: Callable[[int], Awaitable[Any]], first: int, ops: int) -> float:
    """This process's CPU seconds per op (all threads), which other load on the machine barely moves."""
    began, wall = time.process_time(), time.perf_counter()
    await _loop(op, first, ops)
    took = time.perf_counter() - wall
    await asyncio.sleep(0.01)  # let background work the ops started (echo checks) finish inside the window
    cpu = time.process_time() - began
    print(f"    wall {took / ops * 1e6:.1f}, CPU {cpu / ops * 1e6:.1f} µs/op")
    return cpu / ops


async def main(path: str, ops: int, profile: bool, feed: bool = True) -> None:
    prefix = f"prof{uuid.uuid4().hex[:8]}"
    cache = create_cache(CacheConfig(adapter="redis", redis_url=URL, namespace=prefix, l1_change_feed=feed))
    writer = create_cache(CacheConfig(adapter="redis", redis_url=URL, namespace=prefix, l1_enabled=False))
    raw = Redis(connection_pool=BlockingConnectionPool(host=HOST, port=PORT, max_connections=64))
    await cache.start()
    await writer.start()
    width = 100 if path == "mget" else 1
    universe = UNIVERSE // width  # cycled: far more keys than the default L1 holds, so every read misses L1

    def keys(i: int) -> list[str]:
        first = i % universe * width
        return [f"k{j}" for j in range(first, first + width)]

    async def raw_op(i: int) -> Any:
        if path == "set":
            return await raw.set(f"{prefix}raw:s{i % 1000}", CODEC.encode(value(i)), px=TTL * 1000)
        if path == "get":
            return CODEC.decode(await raw.get(f"{prefix}raw:k{i % UNIVERSE}"))
        if path == "load":
            key = f"{prefix}raw:m{i}"
            if await raw.get(key) is None:
                await raw.set(key, CODEC.encode(value(i)), px=TTL * 1000)
            return None
        return [CODEC.decode(d) for d in await raw.mget([f"{prefix}raw:{k}" for k in keys(i)])]

    async def cache_op(i: int) -> Any:
        if path == "set":
            return await cache.set(f"s{i % 1000}", value(i), ttl=TTL)
        if path == "get":
            return await cache.get(f"k{i % UNIVERSE}")
        if path == "load":
            return await cache.get(f"m{i}", lambda: value(i), ttl=TTL)
        return await cache.mget(keys(i))

    try:
        await populate(prefix, writer, raw)
        await _loop(raw_op, 2 * ops, 50)  # warm-up on indexes the timed loops never use
        await _loop(cache_op, 2 * ops + 50, 50)
        rows = await compare(path, {"raw": raw_op, "cachetier": cache_op}, ops=ops)
        stats = await cache.get_stats()
        print(
            f"{path}: raw {rows[0].median * 1e6:.1f} µs, cachetier {rows[1].median * 1e6:.1f} µs,"
            f" ratio {rows[1].median / rows[0].median:.2f}x (L1 hits {stats.l1.hits} of {stats.l1.requests})"
        )
        cpu: dict[str, list[float]] = {"raw": [], "cachetier": []}
        # A get reads keys the timed loops did not (else they would hit L1); the others repeat them, as timed.
        offset = 5 * ops if path == "get" else 0
        for turn in range(4):
            cpu["raw"].append(await _cpu(raw_op, offset + turn * ops // 4, ops // 4))
            cpu["cachetier"].append(await _cpu(cache_op, offset + turn * ops // 4, ops // 4))
        raw_cpu, our_cpu = min(cpu["raw"]), min(cpu["cachetier"])
        ratio = our_cpu / raw_cpu
        print(f"  client CPU per op: raw {raw_cpu * 1e6:.1f} µs, cachetier {our_cpu * 1e6:.1f} µs ({ratio:.2f}x)")
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await _loop(cache_op, 3 * ops, ops)
            profiler.disable()
            order, top = os.environ.get("SORT", "tottime"), int(os.environ.get("TOP", "30"))
            pstats.Stats(profiler).sort_stats(order).print_stats(top)
    finally:
        await cache.clear()
        await writer.close()
        await cache.close()
        cursor: int | None = None
        while cursor != 0:
            cursor, found = await raw.scan(cursor or 0, match=f"{prefix}raw:*", count=1000)
            if found:
                await raw.unlink(*found)
        await raw.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_paths", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("path", choices=["set", "get", "mget", "load"])
    parser.add_argument("--ops", type=int, default=4000)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--no-feed", action="store_true", help="l1_change_feed=False (not the default)")
    args = parser.parse_args()
    asyncio.run(main(args.path, args.ops, args.cprofile, not args.no_feed))
